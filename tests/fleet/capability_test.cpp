#include "trainvisor/fleet/capability.hpp"

#include <gtest/gtest.h>
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
  EXPECT_GE(c.cores, 1);
  EXPECT_LE(c.cores, static_cast<std::int64_t>(::sysconf(_SC_NPROCESSORS_CONF)));
  EXPECT_GT(c.ram_gib, 0.1);
  EXPECT_EQ(c.torch_version.rfind("1.13", 0), 0u) << c.torch_version;
  EXPECT_FALSE(c.trainvisor_version.empty());
  if (!c.cuda) {
    EXPECT_EQ(c.cuda_devices, 0);
    EXPECT_EQ(c.vram_gib, 0.0);
  }
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

TEST(Capability, NoDriverMeansNoCuda) {
  const CudaProbe p = probe_cuda();
  if (!p.available) {
    EXPECT_FALSE(p.detail.empty());
    EXPECT_EQ(p.devices, 0);
  } else {
    EXPECT_GT(p.devices, 0);
    EXPECT_GT(p.max_vram_gib, 0.0);
  }
}

}  // namespace
}  // namespace tv::fleet
