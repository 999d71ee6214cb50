// 16 host processes race over HTTP for 200 jobs: every job is claimed exactly once.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "../shm/test_support.hpp"
#include "temp_dir.hpp"
#include "test_coordinator.hpp"
#include "trainvisor/fleet/coordinator.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

TEST(ClaimRace, SixteenHostProcessesTwoHundredJobs) {
  const test::TempDir dir;
  std::string manifest;
  for (int i = 0; i < 200; ++i)
    manifest += "[[jobs]]\nname = \"job-" + std::to_string(i) +
                "\"\nmodel = \"tiny\"\nseed = " + std::to_string(i) + "\n";
  const CoordinatorOptions o = test::coordinator_options(dir.path(), manifest);
  Coordinator coordinator(o);
  std::vector<std::unique_ptr<shm::test::Child>> hosts;
  for (int i = 0; i < 16; ++i) {
    hosts.push_back(std::make_unique<shm::test::Child>(std::vector<std::string>{
        TV_HTTP_CLAIMER, coordinator.url(), "wk", "host-" + std::to_string(i)}));
  }
  std::map<std::string, int> claimed;
  int hosts_with_work = 0;
  for (auto& h : hosts) {
    int mine = 0;
    for (std::string line = h->read_line(); !line.empty(); line = h->read_line()) {
      ++claimed[line];
      ++mine;
    }
    EXPECT_EQ(h->wait(), 0);
    hosts_with_work += mine > 0;
  }
  EXPECT_EQ(claimed.size(), 200u);
  for (const auto& [id, n] : claimed)
    EXPECT_EQ(n, 1) << id << " was claimed " << n << " times";
  EXPECT_GT(hosts_with_work, 1) << "the hosts did not actually race";
  http::Client client(http::ClientOptions{coordinator.url(), {}, std::chrono::seconds(10)});
  EXPECT_EQ(client.request("GET", "/v1/jobs?status=completed").json_body()["jobs"].size(), 200u);
  coordinator.stop();
}

}  // namespace
}  // namespace tv::fleet
