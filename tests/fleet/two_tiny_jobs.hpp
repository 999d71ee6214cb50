// The manifest the coordinator's tests start from: tiny-a, and tiny-b (priority 5, so claimed
// first) running the plateau policy.
#pragma once

namespace tv::fleet::test_data {

inline constexpr const char* kTwoTinyJobs = R"([[jobs]]
name = "tiny-a"
model = "tiny"
seed = 1
[[jobs]]
name = "tiny-b"
model = "tiny"
seed = 2
priority = 5
[[jobs.policies]]
name = "plateau"
)";

}  // namespace tv::fleet::test_data
