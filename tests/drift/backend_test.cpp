// Where tv_drift computes, asked in a fresh process so that this test's backend() call is the
// first: the CPU with its description in a build without CUDA; in a CUDA build, the device when
// one answers, else the CPU after one log line saying why. The fallback is required when no CUDA
// driver can be loaded or CUDA_VISIBLE_DEVICES hides every device (a second ctest entry runs this
// test so), and the device when TV_DRIFT_REQUIRE_DEVICE=1 and no device is hidden
// (scripts/cuda_check.sh on a GPU host).
#include <dlfcn.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <string>

#include "trainvisor/drift/backend.hpp"

namespace tv::drift {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr bool kCudaBuild = TV_DRIFT_CUDA_BUILD;

bool env_is(const char* name, const char* value) {
  const char* v = std::getenv(name);
  return v != nullptr && std::string(v) == value;
}

// The CUDA runtime finds the driver as libcuda.so.1; without it there can be no device.
bool driver_loadable() {
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver != nullptr) dlclose(driver);
  return driver != nullptr;
}

TEST(DriftBackend, NamesWhereTheStatisticsRunAndLogsAFallbackOnce) {
  testing::internal::CaptureStderr();
  const Backend& chosen = backend();
  const std::string log = testing::internal::GetCapturedStderr();
  const bool devices_hidden = env_is("CUDA_VISIBLE_DEVICES", "");
  std::cout << "backend: " << chosen.description << (devices_hidden ? " (devices hidden)" : "")
            << "\n"
            << log;

  if (!kCudaBuild || devices_hidden || !driver_loadable()) {
    EXPECT_EQ(chosen.device, Device::kCpu);
  }
  if (env_is("TV_DRIFT_REQUIRE_DEVICE", "1") && !devices_hidden) {
    EXPECT_EQ(chosen.device, Device::kCuda) << "TV_DRIFT_REQUIRE_DEVICE=1: " << log;
  }

  if (chosen.device == Device::kCuda) {
    EXPECT_THAT(chosen.description, StartsWith("CUDA: "));
    EXPECT_EQ(log, "");
    return;
  }
  EXPECT_THAT(chosen.description, StartsWith("CPU: "));
  EXPECT_THAT(chosen.description, HasSubstr(" OpenMP threads, "));
  if (!kCudaBuild) {
    EXPECT_EQ(log, "") << "a build without CUDA has no fallback to report";
    return;
  }
  EXPECT_THAT(log, StartsWith("tv_drift: no usable CUDA device ("));
  EXPECT_THAT(log, HasSubstr(chosen.description));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << "one line: " << log;
  if (devices_hidden && driver_loadable()) {
    EXPECT_THAT(log, HasSubstr("sees no device"));
  }
  if (!driver_loadable()) {
    EXPECT_THAT(log, HasSubstr("cudaErrorInsufficientDriver"));
  }

  // Chosen once: a second call neither asks again nor logs again.
  testing::internal::CaptureStderr();
  EXPECT_EQ(&backend(), &chosen);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
}

}  // namespace
}  // namespace tv::drift
