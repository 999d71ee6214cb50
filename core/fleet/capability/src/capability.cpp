#include "trainvisor/fleet/capability.hpp"

#include <dlfcn.h>
#include <sched.h>
#include <unistd.h>

#include <torch/version.h>
#include <fstream>
#include <sstream>
#include <thread>

#include "trainvisor/core/version.hpp"

namespace tv::fleet {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The cgroup path of a controller ("" for the v2 unified hierarchy) from /proc/self/cgroup.
std::optional<std::string> cgroup_path(const std::string& proc_cgroup,
                                       const std::string& controller) {
  std::istringstream lines(proc_cgroup);
  std::string line;
  while (std::getline(lines, line)) {
    const auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string ctrls = line.substr(a + 1, b - a - 1);
    const bool match = controller.empty()
                           ? (line.substr(0, a) == "0" && ctrls.empty())
                           : ("," + ctrls + ",").find("," + controller + ",") != std::string::npos;
    if (match) return line.substr(b + 1);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_u64(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  if (s.empty() || s == "max") return std::nullopt;
  try {
    return std::stoull(s);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

std::optional<std::uint64_t> cgroup_memory_limit(const std::string& proc_cgroup,
                                                 const std::string& cgroup_root) {
  if (auto p = cgroup_path(proc_cgroup, "")) {
    if (auto v = parse_u64(read_file(cgroup_root + *p + "/memory.max"))) return v;
  }
  if (auto p = cgroup_path(proc_cgroup, "memory")) {
    for (const std::string& base : {cgroup_root + "/memory" + *p, cgroup_root + *p}) {
      // v1 reports "no limit" as a huge number rounded to the page size.
      if (auto v = parse_u64(read_file(base + "/memory.limit_in_bytes")); v && *v < (1ULL << 60))
        return v;
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> cgroup_cpu_limit(const std::string& proc_cgroup,
                                             const std::string& cgroup_root) {
  if (auto p = cgroup_path(proc_cgroup, "")) {
    std::istringstream in(read_file(cgroup_root + *p + "/cpu.max"));
    std::string quota;
    std::int64_t period = 0;
    if (in >> quota >> period && quota != "max" && period > 0) {
      const std::int64_t q = std::stoll(quota);
      return (q + period - 1) / period;
    }
  }
  if (auto p = cgroup_path(proc_cgroup, "cpu")) {
    // v1: cpu.cfs_quota_us is -1 without a quota.
    for (const std::string& base : {cgroup_root + "/cpu" + *p, cgroup_root + *p}) {
      std::istringstream quota(read_file(base + "/cpu.cfs_quota_us"));
      std::istringstream period(read_file(base + "/cpu.cfs_period_us"));
      std::int64_t q = 0, per = 0;
      if (quota >> q && period >> per && q > 0 && per > 0) return (q + per - 1) / per;
    }
  }
  return std::nullopt;
}

CudaProbe probe_cuda(const std::string& driver) {
  CudaProbe out;
  void* lib = ::dlopen(driver.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    out.detail = "no CUDA driver (" + driver + " not found)";
    return out;
  }
  using Init = int (*)(unsigned);
  using Count = int (*)(int*);
  using Get = int (*)(int*, int);
  using TotalMem = int (*)(std::size_t*, int);
  using Name = int (*)(char*, int, int);
  auto init = reinterpret_cast<Init>(::dlsym(lib, "cuInit"));
  auto count = reinterpret_cast<Count>(::dlsym(lib, "cuDeviceGetCount"));
  auto get = reinterpret_cast<Get>(::dlsym(lib, "cuDeviceGet"));
  auto mem = reinterpret_cast<TotalMem>(::dlsym(lib, "cuDeviceTotalMem_v2"));
  auto name = reinterpret_cast<Name>(::dlsym(lib, "cuDeviceGetName"));
  int n = 0;
  if (!init || !count || !get || !mem || init(0) != 0 || count(&n) != 0 || n == 0) {
    out.detail = "CUDA driver present but no usable device";
    return out;  // the library stays loaded: unloading a driver mid-process is not worth it
  }
  out.available = true;
  out.devices = n;
  for (int i = 0; i < n; ++i) {
    int dev = 0;
    std::size_t bytes = 0;
    if (get(&dev, i) == 0 && mem(&bytes, dev) == 0) {
      out.max_vram_gib = std::max(out.max_vram_gib, static_cast<double>(bytes) / (1u << 30));
      if (i == 0 && name) {
        char buf[128] = {};
        name(buf, sizeof buf - 1, dev);
        out.detail = buf;
      }
    }
  }
  return out;
}

HostCapability detect_capability(const CapabilitySources& from) {
  HostCapability c;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  c.hostname = host;
  cpu_set_t set;
  c.cores = sched_getaffinity(0, sizeof set, &set) == 0
                ? CPU_COUNT(&set)
                : static_cast<std::int64_t>(std::thread::hardware_concurrency());
  const std::string proc_cgroup = read_file(from.proc_cgroup);
  if (auto limit = cgroup_cpu_limit(proc_cgroup, from.cgroup_root))
    c.cores = std::min(c.cores, *limit);
  double ram =
      static_cast<double>(::sysconf(_SC_PHYS_PAGES)) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  if (auto limit = cgroup_memory_limit(proc_cgroup, from.cgroup_root))
    ram = std::min(ram, static_cast<double>(*limit));
  c.ram_gib = ram / (1u << 30);
  const CudaProbe cuda = probe_cuda(from.cuda_driver);
  c.cuda = cuda.available;
  c.cuda_devices = cuda.devices;
  c.vram_gib = cuda.max_vram_gib;
  c.torch_version = TORCH_VERSION;
  c.trainvisor_version = tv::version();
  return c;
}

}  // namespace tv::fleet
