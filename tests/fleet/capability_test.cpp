#include "trainvisor/fleet/capability.hpp"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

TEST(Capability, DetectsThisHost) {
  const HostCapability c = detect_capability();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(c.hostname, host);
  cpu_set_t allowed;
  ASSERT_EQ(sched_getaffinity(0, sizeof allowed, &allowed), 0);
  EXPECT_GE(c.cores, 1);
  EXPECT_LE(c.cores, CPU_COUNT(&allowed));
  EXPECT_GT(c.ram_gib, 0.1);
  EXPECT_LE(c.ram_gib, static_cast<double>(::sysconf(_SC_PHYS_PAGES)) *
                           static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1u << 30));
  EXPECT_EQ(c.torch_version.rfind("1.13", 0), 0u) << c.torch_version;
  EXPECT_FALSE(c.trainvisor_version.empty());
  // The capability reports what the probe of this host's driver finds, whatever that is.
  const CudaProbe p = probe_cuda();
  EXPECT_EQ(c.cuda, p.available);
  EXPECT_EQ(c.cuda_devices, p.devices);
  EXPECT_EQ(c.vram_gib, p.max_vram_gib);
}

TEST(Capability, CoresFollowTheAffinityMask) {
  cpu_set_t saved, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof saved, &saved), 0);
  CPU_ZERO(&one);
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &saved)) {
      CPU_SET(cpu, &one);
      break;
    }
  }
  ASSERT_EQ(sched_setaffinity(0, sizeof one, &one), 0);
  const std::int64_t cores = detect_capability().cores;
  ASSERT_EQ(sched_setaffinity(0, sizeof saved, &saved), 0);
  EXPECT_EQ(cores, 1);
}

class FakeCgroup : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("tv-cgroup-" + std::to_string(::getpid()));
    fs::create_directories(root_ / "job" / "slice");
    fs::create_directories(root_ / "memory" / "v1job");
  }
  void TearDown() override { fs::remove_all(root_); }
  void write(const fs::path& p, const std::string& text) { std::ofstream(root_ / p) << text; }
  fs::path root_;
};

TEST_F(FakeCgroup, V2LimitsAreHonoured) {
  write("job/slice/memory.max", "2147483648\n");
  write("job/slice/cpu.max", "150000 100000\n");
  EXPECT_EQ(cgroup_memory_limit("0::/job/slice\n", root_.string()), 2147483648ULL);
  EXPECT_EQ(cgroup_cpu_limit("0::/job/slice\n", root_.string()), 2);
  write("job/slice/memory.max", "max\n");
  write("job/slice/cpu.max", "max 100000\n");
  EXPECT_EQ(cgroup_memory_limit("0::/job/slice\n", root_.string()), std::nullopt);
  EXPECT_EQ(cgroup_cpu_limit("0::/job/slice\n", root_.string()), std::nullopt);
}

TEST_F(FakeCgroup, V1MemoryLimitAndItsNoLimitValue) {
  const std::string proc = "4:memory:/v1job\n0::/\n";
  write("memory/v1job/memory.limit_in_bytes", "1073741824\n");
  EXPECT_EQ(cgroup_memory_limit(proc, root_.string()), 1073741824ULL);
  write("memory/v1job/memory.limit_in_bytes", "9223372036854771712\n");
  EXPECT_EQ(cgroup_memory_limit(proc, root_.string()), std::nullopt);
}

TEST_F(FakeCgroup, V1CpuQuota) {
  const std::string proc = "1:cpu,cpuacct:/v1job\n0::/\n";
  fs::create_directories(root_ / "cpu" / "v1job");
  write("cpu/v1job/cpu.cfs_quota_us", "250000\n");
  write("cpu/v1job/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(cgroup_cpu_limit(proc, root_.string()), 3);
  write("cpu/v1job/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(cgroup_cpu_limit(proc, root_.string()), std::nullopt);
}

TEST_F(FakeCgroup, TheHostsRamAndCoresAreCappedByItsCgroup) {
  write("job/slice/memory.max", "3221225472\n");  // 3 GiB
  write("job/slice/cpu.max", "100000 100000\n");  // one core
  write("self-cgroup", "0::/job/slice\n");
  CapabilitySources from;
  from.proc_cgroup = (root_ / "self-cgroup").string();
  from.cgroup_root = root_.string();
  const HostCapability c = detect_capability(from);
  EXPECT_DOUBLE_EQ(c.ram_gib, 3.0);
  EXPECT_EQ(c.cores, 1);
}

TEST(Capability, AMissingDriverMeansNoCuda) {
  const CudaProbe p = probe_cuda("libcuda-absent.so.1");
  EXPECT_FALSE(p.available);
  EXPECT_EQ(p.devices, 0);
  EXPECT_EQ(p.detail, "no CUDA driver (libcuda-absent.so.1 not found)");
  CapabilitySources from;
  from.cuda_driver = "libcuda-absent.so.1";
  const HostCapability c = detect_capability(from);
  EXPECT_FALSE(c.cuda);
  EXPECT_EQ(c.cuda_devices, 0);
  EXPECT_EQ(c.vram_gib, 0.0);
}

TEST(Capability, ADriverWithDevicesIsProbed) {
  const CudaProbe p = probe_cuda(TV_FAKE_CUDA_DRIVER);
  EXPECT_TRUE(p.available);
  EXPECT_EQ(p.devices, 2);
  EXPECT_DOUBLE_EQ(p.max_vram_gib, 24.0);
  EXPECT_EQ(p.detail, "Fake GPU 8G");
  CapabilitySources from;
  from.cuda_driver = TV_FAKE_CUDA_DRIVER;
  const HostCapability c = detect_capability(from);
  EXPECT_TRUE(c.cuda);
  EXPECT_EQ(c.cuda_devices, 2);
  EXPECT_DOUBLE_EQ(c.vram_gib, 24.0);
}

TEST(Capability, ADriverThatSeesNoDeviceMeansNoCuda) {
  const CudaProbe p = probe_cuda(TV_FAKE_CUDA_DRIVER_NO_DEVICE);
  EXPECT_FALSE(p.available);
  EXPECT_EQ(p.devices, 0);
  EXPECT_EQ(p.detail, "CUDA driver present but no usable device");
}

}  // namespace
}  // namespace tv::fleet
