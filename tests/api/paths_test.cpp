#include "trainvisor/fleet/api/paths.hpp"

#include <gtest/gtest.h>

namespace tv::fleet::api {
namespace {

TEST(Paths, TargetFillsParametersInOrder) {
  EXPECT_EQ(target(kJobArtifactUpload, {"abc", "bundle.tvb"}), "/v1/job/abc/artifact/bundle.tvb");
  EXPECT_EQ(target(kHealth, {}), "/v1/health");
}

TEST(Paths, ParametersAndQueryValuesArePercentEncoded) {
  EXPECT_EQ(target(kJob, {"a/b c"}), "/v1/job/a%2Fb%20c");
  EXPECT_EQ(target(kJobs, {}, {{"status", "pending&x=1"}}), "/v1/jobs?status=pending%26x%3D1");
  EXPECT_EQ(target(kJobConfigLog, {"j"}, {{"after", "3"}, {"limit", "10"}}),
            "/v1/job/j/config/log?after=3&limit=10");
}

TEST(Paths, AWrongParameterCountIsRefused) {
  EXPECT_THROW(target(kJob, {}), std::invalid_argument);
  EXPECT_THROW(target(kJob, {"a", "b"}), std::invalid_argument);
}

TEST(Paths, HeaderKeysAreLowercase) {
  EXPECT_EQ(header_key(kWorkerTokenHeader), "x-worker-token");
  EXPECT_EQ(header_key(kContentSha256Header), "x-content-sha256");
}

}  // namespace
}  // namespace tv::fleet::api
