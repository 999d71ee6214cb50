// What this host can run: hostname, cores, memory, CUDA devices and their memory, the libtorch
// and trainvisor versions. CUDA is probed by loading the driver library at run time, so nothing
// about CUDA is needed to build or run; a host without a driver simply reports no CUDA.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "trainvisor/fleet/job_spec.hpp"

namespace tv::fleet {

// Where detection reads from: the running system by default; tests point it at a fake cgroup
// tree and a fake driver library.
struct CapabilitySources {
  std::string proc_cgroup = "/proc/self/cgroup";
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string cuda_driver = "libcuda.so.1";
};

// Detects the running host. Never throws: what cannot be read is reported as zero or absent.
// Cores are the CPUs this process may run on (affinity), capped by the cgroup's CPU quota; RAM is
// physical memory capped by the cgroup's memory limit.
HostCapability detect_capability(const CapabilitySources& from = {});

// The memory limit of a cgroup, in bytes, or nullopt when unlimited or unknown. `proc_cgroup` is
// the text of /proc/self/cgroup; `cgroup_root` is where the hierarchy is mounted. Reads
// memory.max (cgroup v2), falling back to memory.limit_in_bytes (v1).
std::optional<std::uint64_t> cgroup_memory_limit(const std::string& proc_cgroup,
                                                 const std::string& cgroup_root);

// The CPU quota of a cgroup in cores (quota / period, rounded up), or nullopt when unlimited.
// Reads cpu.max (v2), falling back to cpu.cfs_quota_us and cpu.cfs_period_us (v1).
std::optional<std::int64_t> cgroup_cpu_limit(const std::string& proc_cgroup,
                                             const std::string& cgroup_root);

// CUDA through the driver API (`driver`, libcuda.so.1 by default), if a driver is installed:
// device count and the memory of the largest device.
struct CudaProbe {
  bool available = false;
  std::int64_t devices = 0;
  double max_vram_gib = 0;
  std::string detail;  // the first device's name, or why CUDA is not available
};
CudaProbe probe_cuda(const std::string& driver = "libcuda.so.1");

}  // namespace tv::fleet
