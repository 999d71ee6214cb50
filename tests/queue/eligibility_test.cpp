// Which host may claim which job: each constraint and each host policy rule turns away a host
// that does not qualify and lets one that does take the job; the prefer_cuda grace; priorities.
#include <gtest/gtest.h>

#include <map>

#include "test_support.hpp"

namespace tv::fleet {
namespace {

using test::cpu_host;
using test::cuda_host;
using test::FakeClock;
using test::kGraceMs;
using test::make_job;

class Eligibility : public ::testing::Test {
 protected:
  JobQueue open(const std::vector<JobSpec>& jobs, const std::vector<HostPolicy>& hosts = {}) {
    auto q = test::open_with_jobs(dir.file("jobs.db"), clock, jobs);
    q.upsert_hosts(hosts);
    return q;
  }
  // The id `worker` claims now, or "" when it gets nothing.
  std::string claim(JobQueue& q, const std::string& worker, const HostCapability& cap) {
    auto c = q.claim_next(worker, cap, clock.now());
    return c ? c->spec.id : "";
  }

  test::TempDir dir;
  FakeClock clock;
};

TEST_F(Eligibility, RequireCuda) {
  JobSpec j = make_job("gru");
  j.constraints.require_cuda = true;
  auto q = open({j});
  EXPECT_EQ(claim(q, "pi", cpu_host(64)), "");
  clock.advance(10 * kGraceMs);  // no grace period makes a requirement go away
  EXPECT_EQ(claim(q, "pi", cpu_host(64)), "");
  EXPECT_EQ(claim(q, "desktop", cuda_host()), "id-gru");
}

TEST_F(Eligibility, MinVramOnACudaHost) {
  JobSpec j = make_job("transformer");
  j.constraints.require_cuda = true;
  j.constraints.min_vram_gib = 8;
  auto q = open({j});
  EXPECT_EQ(claim(q, "small-gpu", cuda_host(4)), "");
  EXPECT_EQ(claim(q, "edge-gpu", cuda_host(7.99)), "");
  EXPECT_EQ(claim(q, "exact-gpu", cuda_host(8)), "id-transformer");
}

TEST_F(Eligibility, MinVramDoesNotKeepACpuJobOffACpuHost) {
  // The reference table: cnn prefers CUDA and needs 1 GiB of VRAM when it has a GPU, yet the
  // Pi (no GPU) takes it after the grace period, running it on the CPU.
  JobSpec j = make_job("cnn");
  j.constraints.prefer_cuda = true;
  j.constraints.min_vram_gib = 1;
  auto q = open({j});
  EXPECT_EQ(claim(q, "tiny-gpu", cuda_host(0.5)), "");
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  clock.advance(kGraceMs);
  EXPECT_EQ(claim(q, "pi", cpu_host()), "id-cnn");
}

TEST_F(Eligibility, MinRam) {
  JobSpec j = make_job("big");
  j.constraints.min_ram_gib = 32;
  auto q = open({j});
  EXPECT_EQ(claim(q, "pi", cpu_host(8)), "");
  EXPECT_EQ(claim(q, "gpu-small-ram", cuda_host(24, 16)), "");
  EXPECT_EQ(claim(q, "server", cpu_host(32)), "id-big");
}

TEST_F(Eligibility, AllowedHostsNameTheWorker) {
  JobSpec j = make_job("pinned");
  j.constraints.allowed_hosts = {"gpu-1", "gpu-3"};
  auto q = open({j});
  HostCapability cap = cuda_host();
  cap.hostname = "gpu-1";  // the worker name decides, not what the host calls itself
  EXPECT_EQ(claim(q, "gpu-2", cap), "");
  EXPECT_EQ(claim(q, "gpu-3", cuda_host()), "id-pinned");
}

TEST_F(Eligibility, HostAllowListMatchesModelOrJobName) {
  auto q = open({make_job("mlp-oracle", "mlp"), make_job("transformer-oracle", "transformer"),
                 make_job("gbt-realistic", "gbt")},
                {HostPolicy{"office-print", {"gbt", "transformer-oracle"}, {}, 0}});
  // mlp-oracle is first in line, but neither its name nor its model is allowed.
  EXPECT_EQ(claim(q, "office-print", cpu_host()), "id-transformer-oracle");  // by job name
  EXPECT_EQ(claim(q, "office-print", cpu_host()), "id-gbt-realistic");       // by model
  EXPECT_EQ(claim(q, "office-print", cpu_host()), "");
  EXPECT_EQ(claim(q, "other-host", cpu_host()), "id-mlp-oracle");  // no policy: anything
}

TEST_F(Eligibility, HostDenyListMatchesModelOrJobName) {
  auto q = open({make_job("transformer-a", "transformer"), make_job("mlp-secret", "mlp"),
                 make_job("mlp-b", "mlp")},
                {HostPolicy{"pi", {}, {"transformer", "mlp-secret"}, 0}});
  EXPECT_EQ(claim(q, "pi", cpu_host()), "id-mlp-b");
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  EXPECT_EQ(claim(q, "desktop", cuda_host()), "id-transformer-a");
  EXPECT_EQ(claim(q, "desktop", cuda_host()), "id-mlp-secret");
}

TEST_F(Eligibility, DenyWinsOverAllow) {
  auto q = open({make_job("gbt-a", "gbt")}, {HostPolicy{"pi", {"gbt"}, {"gbt-a"}, 0}});
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  EXPECT_EQ(claim(q, "desktop", cpu_host()), "id-gbt-a");
}

TEST_F(Eligibility, ReplacedHostPoliciesApplyAtOnce) {
  auto q = open({make_job("a", "mlp")}, {HostPolicy{"pi", {}, {"mlp"}, 0}});
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  q.upsert_hosts(std::vector<HostPolicy>{HostPolicy{"desktop", {}, {}, 1}});
  EXPECT_EQ(claim(q, "pi", cpu_host()), "id-a");
}

TEST_F(Eligibility, PreferCudaWaitsTheGraceForCpuHosts) {
  JobSpec j = make_job("cnn");
  j.constraints.prefer_cuda = true;
  auto q = open({j});
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  clock.advance(kGraceMs - 1);
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  clock.advance(1);
  EXPECT_EQ(claim(q, "pi", cpu_host()), "id-cnn");
}

TEST_F(Eligibility, PreferCudaGoesToACudaHostAtOnce) {
  JobSpec j = make_job("cnn");
  j.constraints.prefer_cuda = true;
  auto q = open({j});
  EXPECT_EQ(claim(q, "desktop", cuda_host()), "id-cnn");
}

TEST_F(Eligibility, PreferCudaGraceRestartsWhenTheJobIsPendingAgain) {
  JobSpec j = make_job("cnn");
  j.constraints.prefer_cuda = true;
  auto q = open({j});
  clock.advance(2 * kGraceMs);
  auto c = q.claim_next("desktop", cuda_host(), clock.now());
  ASSERT_TRUE(c);
  ASSERT_EQ(q.fail(c->spec.id, c->lease_token, FailureClass::kHostLost, "reboot"),
            QueueResult::kOk);
  // Pending again just now: the GPU host gets its head start again.
  EXPECT_EQ(claim(q, "pi", cpu_host()), "");
  clock.advance(kGraceMs);
  EXPECT_EQ(claim(q, "pi", cpu_host()), "id-cnn");
}

TEST_F(Eligibility, HigherPriorityFirstThenOlder) {
  auto with_priority = [](const std::string& name, std::int64_t p) {
    JobSpec j = make_job(name);
    j.priority = p;
    return j;
  };
  auto q = open({with_priority("p0", 0), with_priority("p5-first", 5), with_priority("low", -1),
                 with_priority("p5-second", 5), with_priority("p9", 9)});
  for (const char* expected : {"id-p9", "id-p5-first", "id-p5-second", "id-p0", "id-low"}) {
    EXPECT_EQ(claim(q, "w", cpu_host()), expected);
  }
  EXPECT_EQ(claim(q, "w", cpu_host()), "");
}

TEST_F(Eligibility, AnIneligibleHeadDoesNotBlockTheQueue) {
  JobSpec gpu_only = make_job("gpu-only");
  gpu_only.priority = 100;
  gpu_only.constraints.require_cuda = true;
  JobSpec backing_off = make_job("backing-off");
  backing_off.priority = 50;
  auto q = open({gpu_only, backing_off, make_job("plain")});
  auto c = q.claim_next("w", cpu_host(), clock.now());
  ASSERT_TRUE(c);
  ASSERT_EQ(c->spec.id, "id-backing-off");
  ASSERT_EQ(q.fail(c->spec.id, c->lease_token, FailureClass::kTrainerFailure, "x"),
            QueueResult::kOk);
  // The head needs CUDA and the next one is in backoff: the CPU host gets the third.
  EXPECT_EQ(claim(q, "w", cpu_host()), "id-plain");
  EXPECT_EQ(claim(q, "w", cpu_host()), "");
  EXPECT_EQ(claim(q, "gpu", cuda_host()), "id-gpu-only");
}

TEST_F(Eligibility, ExplainNamesTheConstraintPerHost) {
  JobSpec j = make_job("cnn");
  j.constraints.prefer_cuda = true;
  j.constraints.min_ram_gib = 8;
  HostPolicy office{"office", {"gbt"}, {}, 0};
  HostPolicy lab{"lab", {}, {"cnn"}, 0};
  HostPolicy never{"never-seen", {}, {}, 0};
  auto q = open({j}, {office, lab, never});
  q.register_worker("small", cpu_host(4));
  q.register_worker("pi", cpu_host(16));
  q.register_worker("office", cpu_host(16));
  q.register_worker("lab", cpu_host(16));
  q.register_worker("gpu", cuda_host());
  std::map<std::string, Explanation> by_host;
  for (const auto& e : q.explain(j.id, clock.now()))
    by_host[e.host] = e;
  ASSERT_EQ(by_host.size(), 6u);
  EXPECT_EQ(by_host["small"].reason, "min_ram_gib 8.00 GiB: the host has 4.00 GiB");
  EXPECT_EQ(by_host["pi"].reason.rfind("prefer_cuda: a CPU host may take it", 0), 0u)
      << by_host["pi"].reason;
  EXPECT_EQ(by_host["office"].reason,
            "host policy: allow_jobs does not name this job, its model or its pipeline");
  EXPECT_EQ(by_host["lab"].reason,
            "host policy: deny_jobs names this job, its model or its pipeline");
  EXPECT_EQ(by_host["gpu"].reason, "");
  EXPECT_FALSE(by_host["never-seen"].registered);
  EXPECT_EQ(by_host["never-seen"].reason, "");
  clock.advance(10 * kGraceMs);
  for (const auto& e : q.explain(j.id, clock.now())) {
    if (e.host == "pi") {
      EXPECT_EQ(e.reason, "");  // the grace is over
    }
  }
  EXPECT_THROW(q.explain("no-such-job", clock.now()), QueueError);
}

}  // namespace
}  // namespace tv::fleet
