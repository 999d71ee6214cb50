// A job's life through the queue: claim, run, heartbeat, complete or fail by class, backoff,
// the stale sweep and its fencing of the old holder, cancel and requeue.
#include <gtest/gtest.h>

#include <set>

#include "test_support.hpp"

namespace tv::fleet {
namespace {

using test::FakeClock;
using test::kBackoffBaseMs;
using test::kBackoffCapMs;
using test::kStaleMs;
using test::make_job;

constexpr auto kOk = QueueResult::kOk;
constexpr auto kStale = QueueResult::kStaleLease;
constexpr auto kWrongState = QueueResult::kWrongState;
constexpr auto kNotFound = QueueResult::kNotFound;

const std::string kDigest(64, 'a');

class Lifecycle : public ::testing::Test {
 protected:
  JobQueue open(const std::vector<JobSpec>& jobs) {
    return test::open_with_jobs(dir.file("jobs.db"), clock, jobs);
  }
  Claim claim(JobQueue& q, const std::string& worker = "w1") {
    auto c = q.claim_next(worker, test::cpu_host(), clock.now());
    if (!c) throw std::runtime_error("expected a claim for " + worker);
    return *c;
  }
  JobRow row(const JobQueue& q, const std::string& id) { return q.get(id).value(); }

  test::TempDir dir;
  FakeClock clock;
};

TEST_F(Lifecycle, ClaimRunHeartbeatComplete) {
  auto q = open({make_job("a")});
  const UnixMillis t0 = clock.now();
  Claim c = claim(q);
  EXPECT_EQ(c.spec.id, "id-a");
  EXPECT_EQ(c.attempt, 1);
  EXPECT_EQ(c.lease_token.size(), 32u);
  EXPECT_EQ(c.lease_token.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(c.lease_expires_ms, t0 + kStaleMs);
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kClaimed);
  EXPECT_EQ(r.worker, "w1");
  EXPECT_EQ(r.claimed_ms, t0);
  // Held: nobody else gets it.
  EXPECT_FALSE(q.claim_next("w2", test::cpu_host(), clock.now()));

  clock.advance(1000);
  ASSERT_EQ(q.mark_running("id-a", c.lease_token), kOk);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kRunning);
  EXPECT_EQ(row(q, "id-a").started_ms, t0 + 1000);
  EXPECT_EQ(q.mark_running("id-a", c.lease_token), kOk);  // a retried call is harmless
  EXPECT_EQ(row(q, "id-a").started_ms, t0 + 1000);

  clock.advance(5000);
  HeartbeatReply hb = q.heartbeat("id-a", c.lease_token);
  EXPECT_EQ(hb.result, kOk);
  EXPECT_FALSE(hb.cancel_requested);
  EXPECT_EQ(hb.lease_expires_ms, clock.now() + kStaleMs);
  EXPECT_EQ(row(q, "id-a").lease_expires_ms, clock.now() + kStaleMs);
  EXPECT_EQ(row(q, "id-a").heartbeat_ms, clock.now());

  ASSERT_EQ(q.complete("id-a", c.lease_token, kDigest), kOk);
  r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kCompleted);
  EXPECT_EQ(r.artifact_digest, kDigest);
  EXPECT_EQ(r.finished_ms, clock.now());
  EXPECT_FALSE(r.lease_expires_ms);
  EXPECT_EQ(q.counts()[JobStatus::kCompleted], 1);

  // The holder's retry of the same completion succeeds; anything else is refused unchanged.
  const auto before = q.total_changes();
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest), kOk);
  EXPECT_EQ(q.complete("id-a", c.lease_token, std::string(64, 'b')), kWrongState);
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token).result, kWrongState);
  EXPECT_EQ(q.mark_running("id-a", c.lease_token), kWrongState);
  EXPECT_EQ(q.fail("id-a", c.lease_token, FailureClass::kTrainerFailure, "late"), kWrongState);
  EXPECT_EQ(q.total_changes(), before);
  EXPECT_EQ(row(q, "id-a").artifact_digest, kDigest);
  EXPECT_FALSE(q.claim_next("w2", test::cpu_host(), clock.now()));
}

TEST_F(Lifecycle, CompleteWithoutArtifactAndFromClaimed) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  ASSERT_EQ(q.complete("id-a", c.lease_token), kOk);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kCompleted);
  EXPECT_EQ(row(q, "id-a").artifact_digest, "");
}

TEST_F(Lifecycle, TrainerFailuresBackOffThenFailAtMaxAttempts) {
  JobSpec job = make_job("a");
  job.max_attempts = 3;
  auto q = open({job});

  for (std::int64_t attempt = 1; attempt <= 2; ++attempt) {
    Claim c = claim(q);
    EXPECT_EQ(c.attempt, attempt);
    ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kTrainerFailure, "loss is nan"), kOk);
    JobRow r = row(q, "id-a");
    EXPECT_EQ(r.status, JobStatus::kPending);
    EXPECT_EQ(r.counted_failures, attempt);
    EXPECT_EQ(r.last_failure, FailureClass::kTrainerFailure);
    EXPECT_NE(r.last_error.find("loss is nan"), std::string::npos) << r.last_error;
    const std::int64_t nominal = kBackoffBaseMs << (attempt - 1);
    EXPECT_GE(r.backoff_ms, nominal * 8 / 10);
    EXPECT_LE(r.backoff_ms, nominal * 12 / 10);
    EXPECT_EQ(r.not_before_ms, clock.now() + r.backoff_ms);
    // Not claimable until the backoff has passed, then at once.
    EXPECT_FALSE(q.claim_next("w1", test::cpu_host(), r.not_before_ms - 1));
    EXPECT_EQ(q.get("id-a")->status, JobStatus::kPending);
    clock.set(r.not_before_ms);
  }
  Claim last = claim(q);
  EXPECT_EQ(last.attempt, 3);
  ASSERT_EQ(q.fail("id-a", last.lease_token, FailureClass::kTrainerFailure, "oom"), kOk);
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kFailed);
  EXPECT_EQ(r.counted_failures, 3);
  EXPECT_NE(r.last_error.find("attempt 3 of 3"), std::string::npos) << r.last_error;
  EXPECT_NE(r.last_error.find("oom"), std::string::npos) << r.last_error;
  EXPECT_EQ(r.finished_ms, clock.now());
  clock.advance(24LL * 3600 * 1000);
  EXPECT_FALSE(q.claim_next("w1", test::cpu_host(), clock.now()));
}

TEST_F(Lifecycle, BackoffDoublesUpToTheCapWithJitter) {
  JobSpec job = make_job("a");
  job.max_attempts = 100;
  auto q = open({job});
  // base 1 s, cap 8 s: 1, 2, 4, 8, 8, 8 s nominal, each within +-20 %.
  const std::vector<std::int64_t> nominal{1000, 2000, 4000, 8000, 8000, 8000};
  ASSERT_EQ(kBackoffCapMs, 8000);
  for (std::int64_t n : nominal) {
    Claim c = claim(q);
    ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kTrainerFailure, "x"), kOk);
    JobRow r = row(q, "id-a");
    EXPECT_GE(r.backoff_ms, n * 8 / 10) << "nominal " << n;
    EXPECT_LE(r.backoff_ms, n * 12 / 10) << "nominal " << n;
    clock.set(r.not_before_ms);
  }
}

TEST_F(Lifecycle, JitterSpreadsJobsThatFailTogether) {
  std::vector<JobSpec> jobs;
  for (int i = 0; i < 10; ++i)
    jobs.push_back(make_job("j" + std::to_string(i)));
  auto q = open(jobs);
  std::vector<Claim> claims;
  for (int i = 0; i < 10; ++i)
    claims.push_back(claim(q));
  std::set<std::int64_t> backoffs;
  for (const auto& c : claims) {
    ASSERT_EQ(q.fail(c.spec.id, c.lease_token, FailureClass::kTrainerFailure, "x"), kOk);
    JobRow r = row(q, c.spec.id);
    EXPECT_GE(r.backoff_ms, 800);
    EXPECT_LE(r.backoff_ms, 1200);
    backoffs.insert(r.backoff_ms);
  }
  // 10 draws from 401 values: all equal would mean no jitter at all.
  EXPECT_GT(backoffs.size(), 1u);
}

TEST_F(Lifecycle, HostLostReturnsAtOnceAndCountsOnlyTowardTheLostCap) {
  JobSpec job = make_job("a");
  job.max_attempts = 1;
  auto q = open({job});
  Claim c = claim(q);
  ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kHostLost, "host shutting down"), kOk);
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.counted_failures, 0);  // a trainer failure now would still be allowed
  EXPECT_EQ(r.lost_count, 1);
  EXPECT_EQ(r.last_failure, FailureClass::kHostLost);
  EXPECT_LE(r.not_before_ms, clock.now());
  // Claimable immediately, even though max_attempts is 1 and this is the second claim.
  Claim again = claim(q, "w2");
  EXPECT_EQ(again.attempt, 2);
  EXPECT_NE(again.lease_token, c.lease_token);
  // Lost 2 * max_attempts times: the job kills hosts or cannot keep one; stop retrying.
  ASSERT_EQ(q.fail("id-a", again.lease_token, FailureClass::kHostLost, "again"), kOk);
  r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kFailed);
  EXPECT_NE(r.last_error.find("lost 2 times"), std::string::npos) << r.last_error;
}

TEST_F(Lifecycle, OnlyAnOperatorsCancelEndsAJobCancelled) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  try {
    q.fail("id-a", c.lease_token, FailureClass::kCancelled, "stopped on the host");
    ADD_FAILURE() << "a holder ended a job cancelled that no operator cancelled";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find("operator's cancel"), std::string::npos) << e.what();
  }
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kClaimed);  // nothing written
  EXPECT_FALSE(r.last_failure);
  // After the operator's cancel, the holder's report is its acknowledgement and does not count.
  ASSERT_EQ(q.cancel("id-a").result, kOk);
  ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kCancelled, "stopped on the host"), kOk);
  r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kCancelled);
  EXPECT_EQ(r.counted_failures, 0);
  EXPECT_EQ(r.lost_count, 0);
  EXPECT_EQ(r.last_failure, FailureClass::kCancelled);
  EXPECT_FALSE(q.claim_next("w1", test::cpu_host(), clock.now()));
}

TEST_F(Lifecycle, ALeaseIsBoundToTheHostThatClaimedIt) {
  auto q = open({make_job("a")});
  Claim c = claim(q, "w1");
  // The right token from another host: refused, nothing written.
  const std::int64_t before = q.total_changes();
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token, "w2").result, QueueResult::kNotHolder);
  EXPECT_EQ(q.mark_running("id-a", c.lease_token, "w2"), QueueResult::kNotHolder);
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest, std::nullopt, "w2"),
            QueueResult::kNotHolder);
  EXPECT_EQ(q.fail("id-a", c.lease_token, FailureClass::kTrainerFailure, "x", "w2"),
            QueueResult::kNotHolder);
  EXPECT_EQ(q.total_changes(), before);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kClaimed);
  // A wrong token is stale whoever sends it; the holder with its token goes through.
  EXPECT_EQ(q.heartbeat("id-a", std::string(32, '0'), "w1").result, kStale);
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token, "w1").result, kOk);
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest, std::nullopt, "w1"), kOk);
}

TEST_F(Lifecycle, StaleSweepReturnsTheJobAndFencesTheOldHolder) {
  auto q = open({make_job("a"), make_job("b")});
  Claim old = claim(q, "w1");
  ASSERT_EQ(q.mark_running("id-a", old.lease_token), kOk);

  clock.advance(kStaleMs - 1);
  EXPECT_TRUE(q.sweep_stale(clock.now()).empty());
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kRunning);
  clock.advance(1);
  EXPECT_EQ(q.sweep_stale(clock.now()), std::vector<std::string>{"id-a"});
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_EQ(r.lost_count, 1);
  EXPECT_EQ(r.counted_failures, 0);
  EXPECT_FALSE(r.lease_expires_ms);
  EXPECT_EQ(r.last_failure, FailureClass::kHostLost);
  EXPECT_NE(r.last_error.find("w1"), std::string::npos) << r.last_error;

  // The paused holder wakes up: every call is refused and nothing changes.
  const auto before = q.total_changes();
  EXPECT_EQ(q.heartbeat("id-a", old.lease_token).result, kStale);
  EXPECT_EQ(q.mark_running("id-a", old.lease_token), kStale);
  EXPECT_EQ(q.complete("id-a", old.lease_token, kDigest), kStale);
  EXPECT_EQ(q.fail("id-a", old.lease_token, FailureClass::kTrainerFailure, "x"), kStale);
  EXPECT_EQ(q.total_changes(), before);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kPending);
  EXPECT_EQ(row(q, "id-a").updated_ms, r.updated_ms);

  // A new holder takes it; the old token stays refused while the new one works.
  Claim fresh = claim(q, "w2");
  ASSERT_EQ(fresh.spec.id, "id-a");
  EXPECT_EQ(fresh.attempt, 2);
  EXPECT_EQ(q.heartbeat("id-a", old.lease_token).result, kStale);
  EXPECT_EQ(q.complete("id-a", old.lease_token, kDigest), kStale);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kClaimed);
  EXPECT_EQ(row(q, "id-a").worker, "w2");
  EXPECT_EQ(q.complete("id-a", fresh.lease_token, kDigest), kOk);
}

TEST_F(Lifecycle, HeartbeatsKeepTheLeaseFromTheSweep) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  for (int i = 0; i < 5; ++i) {
    clock.advance(kStaleMs - 1);
    ASSERT_EQ(q.heartbeat("id-a", c.lease_token).result, kOk);
    EXPECT_TRUE(q.sweep_stale(clock.now()).empty());
  }
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kClaimed);
}

TEST_F(Lifecycle, ALateHeartbeatBeforeTheSweepRevivesTheLease) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  clock.advance(kStaleMs + 5000);  // expired, but no sweep has run yet
  HeartbeatReply hb = q.heartbeat("id-a", c.lease_token);
  ASSERT_EQ(hb.result, kOk);
  EXPECT_EQ(hb.lease_expires_ms, clock.now() + kStaleMs);
  EXPECT_TRUE(q.sweep_stale(clock.now()).empty());
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kClaimed);
}

TEST_F(Lifecycle, RepeatedlyLostJobFailsAtTwiceMaxAttempts) {
  JobSpec job = make_job("a");
  job.max_attempts = 2;
  auto q = open({job});
  for (int lost = 1; lost <= 4; ++lost) {
    claim(q, "w" + std::to_string(lost));
    clock.advance(kStaleMs);
    ASSERT_EQ(q.sweep_stale(clock.now()).size(), 1u);
    JobRow r = row(q, "id-a");
    EXPECT_EQ(r.lost_count, lost);
    EXPECT_EQ(r.status, lost < 4 ? JobStatus::kPending : JobStatus::kFailed);
  }
  EXPECT_NE(row(q, "id-a").last_error.find("lost 4 times"), std::string::npos);
  EXPECT_FALSE(q.claim_next("w9", test::cpu_host(), clock.now()));
}

TEST_F(Lifecycle, CancelPendingJob) {
  auto q = open({make_job("a")});
  CancelReply reply = q.cancel("id-a");
  EXPECT_EQ(reply.result, kOk);
  EXPECT_EQ(reply.previous, JobStatus::kPending);
  EXPECT_FALSE(reply.was_held());
  EXPECT_EQ(reply.worker, "");
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kCancelled);
  EXPECT_FALSE(r.cancel_requested);
  EXPECT_FALSE(q.claim_next("w1", test::cpu_host(), clock.now()));
  // Cancelling what has ended is refused and leaves it as it was.
  const auto before = q.total_changes();
  EXPECT_EQ(q.cancel("id-a").result, kWrongState);
  EXPECT_EQ(q.cancel("id-nope").result, kNotFound);
  EXPECT_EQ(q.total_changes(), before);
}

TEST_F(Lifecycle, CancelRunningJobTellsTheHolderThroughItsHeartbeat) {
  auto q = open({make_job("a")});
  Claim c = claim(q, "w1");
  ASSERT_EQ(q.mark_running("id-a", c.lease_token), kOk);

  CancelReply reply = q.cancel("id-a");
  EXPECT_EQ(reply.result, kOk);
  EXPECT_EQ(reply.previous, JobStatus::kRunning);
  EXPECT_TRUE(reply.was_held());
  EXPECT_EQ(reply.worker, "w1");
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kCancelled);
  EXPECT_TRUE(r.cancel_requested);

  HeartbeatReply hb = q.heartbeat("id-a", c.lease_token);
  EXPECT_EQ(hb.result, kOk);
  EXPECT_TRUE(hb.cancel_requested);
  // The holder may not go on as if nothing happened.
  EXPECT_EQ(q.mark_running("id-a", c.lease_token), kWrongState);
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest), kWrongState);
  // A cancelled job is not swept back to pending however long the holder takes.
  clock.advance(10 * kStaleMs);
  EXPECT_TRUE(q.sweep_stale(clock.now()).empty());
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token).cancel_requested, true);

  // The holder stopped its trainer and says so: acknowledged, nothing counted.
  ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kCancelled, "SIGTERM"), kOk);
  r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kCancelled);
  EXPECT_FALSE(r.cancel_requested);
  EXPECT_EQ(r.counted_failures, 0);
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token).result, kWrongState);
  EXPECT_FALSE(q.claim_next("w2", test::cpu_host(), clock.now()));
}

TEST_F(Lifecycle, RequeueFromEveryEndState) {
  JobSpec failing = make_job("failed");
  failing.max_attempts = 1;
  auto q = open({make_job("completed"), failing, make_job("cancelled")});
  std::map<std::string, std::string> tokens;
  for (int i = 0; i < 3; ++i) {
    Claim c = claim(q);
    tokens[c.spec.name] = c.lease_token;
  }
  ASSERT_EQ(q.complete("id-completed", tokens["completed"], kDigest), kOk);
  ASSERT_EQ(q.fail("id-failed", tokens["failed"], FailureClass::kTrainerFailure, "boom"), kOk);
  ASSERT_EQ(q.cancel("id-cancelled").result, kOk);
  ASSERT_EQ(row(q, "id-failed").status, JobStatus::kFailed);

  clock.advance(1000);
  for (const std::string name : {"completed", "failed", "cancelled"}) {
    const std::string id = "id-" + name;
    ASSERT_EQ(q.requeue(id), kOk) << name;
    JobRow r = row(q, id);
    EXPECT_EQ(r.status, JobStatus::kPending) << name;
    EXPECT_EQ(r.attempt, 0) << name;
    EXPECT_EQ(r.counted_failures, 0) << name;
    EXPECT_EQ(r.lost_count, 0) << name;
    EXPECT_EQ(r.not_before_ms, 0) << name;
    EXPECT_EQ(r.worker, "") << name;
    EXPECT_EQ(r.artifact_digest, "") << name;
    EXPECT_FALSE(r.cancel_requested) << name;
    EXPECT_EQ(r.pending_since_ms, clock.now()) << name;
    // The previous holder's token is dead.
    EXPECT_EQ(q.heartbeat(id, tokens[name]).result, kStale) << name;
  }
  EXPECT_EQ(row(q, "id-failed").last_error.find("boom") != std::string::npos, true);
  // All three come back at once, with fresh attempt numbers.
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(claim(q).attempt, 1);
  EXPECT_EQ(q.requeue("id-nope"), kNotFound);
}

TEST_F(Lifecycle, AnEarlyStopEndsStoppedWithWhoAndWhyUntilARequeue) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  ASSERT_EQ(q.mark_running("id-a", c.lease_token), kOk);
  const StopCause cause{"policy:divergence", "loss 1e9 > 100 x its best"};
  ASSERT_EQ(q.complete("id-a", c.lease_token, kDigest, cause), kOk);
  JobRow r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kStopped);
  ASSERT_TRUE(r.stopped);
  EXPECT_EQ(r.stopped->actor, "policy:divergence");
  EXPECT_EQ(r.stopped->reason, cause.reason);
  EXPECT_EQ(r.artifact_digest, kDigest);
  EXPECT_EQ(q.counts()[JobStatus::kStopped], 1);
  EXPECT_EQ(q.counts()[JobStatus::kCompleted], 0);
  EXPECT_EQ(q.list(JobStatus::kStopped).size(), 1u);
  // The holder's retry is recognised; a plain completion of the stopped job is not.
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest, cause), kOk);
  EXPECT_EQ(q.complete("id-a", c.lease_token, kDigest), kWrongState);
  EXPECT_EQ(q.cancel("id-a").result, kWrongState);  // it has ended
  ASSERT_EQ(q.requeue("id-a"), kOk);
  r = row(q, "id-a");
  EXPECT_EQ(r.status, JobStatus::kPending);
  EXPECT_FALSE(r.stopped);
  // A plain completion stores no stop cause.
  c = claim(q);
  ASSERT_EQ(q.complete("id-a", c.lease_token, kDigest), kOk);
  EXPECT_EQ(row(q, "id-a").status, JobStatus::kCompleted);
  EXPECT_FALSE(row(q, "id-a").stopped);
}

TEST_F(Lifecycle, RequeueStartsANewGenerationUnlessFromCheckpoint) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  EXPECT_EQ(c.generation, 0);
  ASSERT_EQ(q.complete("id-a", c.lease_token, kDigest), kOk);
  // A plain requeue trains from step 0: the claim says the old checkpoints are void.
  ASSERT_EQ(q.requeue("id-a"), kOk);
  EXPECT_EQ(row(q, "id-a").generation, 1);
  c = claim(q);
  EXPECT_EQ(c.generation, 1);
  // Losing the host keeps the generation: the next holder may resume this run's checkpoint.
  ASSERT_EQ(q.fail("id-a", c.lease_token, FailureClass::kHostLost, "shut down"), kOk);
  c = claim(q);
  EXPECT_EQ(c.generation, 1);
  ASSERT_EQ(q.complete("id-a", c.lease_token, kDigest), kOk);
  ASSERT_EQ(q.requeue("id-a", RequeueFrom::kCheckpoint), kOk);
  EXPECT_EQ(claim(q).generation, 1);
}

TEST_F(Lifecycle, RequeueOfAHeldJobFencesItsHolder) {
  auto q = open({make_job("a")});
  Claim c = claim(q, "w1");
  ASSERT_EQ(q.requeue("id-a"), kOk);
  EXPECT_EQ(q.heartbeat("id-a", c.lease_token).result, kStale);
  Claim again = claim(q, "w2");
  EXPECT_EQ(again.attempt, 1);
  EXPECT_EQ(q.complete("id-a", c.lease_token), kStale);
}

TEST_F(Lifecycle, BadInputsAreNamedAndChangeNothing) {
  auto q = open({make_job("a")});
  Claim c = claim(q);
  const auto before = q.total_changes();
  const JobRow r0 = row(q, "id-a");

  EXPECT_EQ(q.heartbeat("id-nope", c.lease_token).result, kNotFound);
  EXPECT_EQ(q.mark_running("id-nope", c.lease_token), kNotFound);
  EXPECT_EQ(q.complete("id-nope", c.lease_token), kNotFound);
  EXPECT_EQ(q.fail("id-nope", c.lease_token, FailureClass::kTrainerFailure, "x"), kNotFound);
  EXPECT_EQ(q.heartbeat("id-a", "").result, kStale);
  EXPECT_EQ(q.heartbeat("id-a", std::string(32, '0')).result, kStale);
  EXPECT_EQ(q.complete("id-a", c.lease_token.substr(1)), kStale);
  EXPECT_FALSE(q.get("id-nope"));
  try {
    q.complete("id-a", c.lease_token, "sha256:abc");
    ADD_FAILURE() << "a malformed digest was accepted";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find("sha256:abc"), std::string::npos) << e.what();
  }
  EXPECT_THROW(q.claim_next("", test::cpu_host(), clock.now()), QueueError);

  EXPECT_EQ(q.total_changes(), before);
  const JobRow r1 = row(q, "id-a");
  EXPECT_EQ(r1.status, JobStatus::kClaimed);
  EXPECT_EQ(r1.updated_ms, r0.updated_ms);
  EXPECT_EQ(q.complete("id-a", c.lease_token), kOk);  // the real holder is unaffected
}

TEST_F(Lifecycle, StatusAndFailureNamesParseAndRefuseTypos) {
  for (JobStatus s :
       {JobStatus::kPending, JobStatus::kClaimed, JobStatus::kRunning, JobStatus::kCompleted,
        JobStatus::kStopped, JobStatus::kFailed, JobStatus::kCancelled}) {
    EXPECT_EQ(parse_job_status(to_string(s)), s);
  }
  for (FailureClass f :
       {FailureClass::kTrainerFailure, FailureClass::kHostLost, FailureClass::kCancelled}) {
    EXPECT_EQ(parse_failure_class(to_string(f)), f);
  }
  try {
    parse_job_status("runing");
    ADD_FAILURE() << "a misspelt status parsed";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find("'runing'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_failure_class("oops"), QueueError);
  EXPECT_EQ(to_string(QueueResult::kStaleLease), "stale_lease");
}

TEST_F(Lifecycle, ListAndCountsByStatus) {
  auto q = open({make_job("a"), make_job("b"), make_job("c")});
  Claim c = claim(q);
  ASSERT_EQ(q.mark_running(c.spec.id, c.lease_token), kOk);
  ASSERT_EQ(q.cancel("id-c").result, kOk);
  auto counts = q.counts();
  EXPECT_EQ(counts.size(), 7u);
  EXPECT_EQ(counts[JobStatus::kRunning], 1);
  EXPECT_EQ(counts[JobStatus::kPending], 1);
  EXPECT_EQ(counts[JobStatus::kCancelled], 1);
  EXPECT_EQ(counts[JobStatus::kFailed], 0);
  auto running = q.list(JobStatus::kRunning);
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].spec.id, "id-a");
  EXPECT_EQ(running[0].worker, "w1");
  EXPECT_EQ(q.list(parse_job_status("pending")).at(0).spec.id, "id-b");
  auto all = q.list();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].spec.id, "id-a");
  EXPECT_EQ(all[2].spec.id, "id-c");
  EXPECT_TRUE(q.list(JobStatus::kCompleted).empty());
}

TEST_F(Lifecycle, WorkersRegisterAndAreSeen) {
  auto q = open({make_job("a")});
  HostCapability gpu = test::cuda_host(12.5, 31.25);
  gpu.torch_version = "2.1.2";
  gpu.trainvisor_version = "0.1.0";
  q.register_worker("gpu-1", gpu);
  q.register_worker("pi", test::cpu_host(4));
  auto ws = q.workers();
  ASSERT_EQ(ws.size(), 2u);
  EXPECT_EQ(ws[0].name, "gpu-1");
  EXPECT_TRUE(ws[0].capability.cuda);
  EXPECT_EQ(ws[0].capability.vram_gib, 12.5);
  EXPECT_EQ(ws[0].capability.ram_gib, 31.25);
  EXPECT_EQ(ws[0].capability.torch_version, "2.1.2");
  EXPECT_EQ(ws[0].registered_ms, clock.now());
  EXPECT_EQ(ws[1].name, "pi");

  clock.advance(1000);
  EXPECT_EQ(q.touch_worker("pi"), kOk);
  EXPECT_EQ(q.touch_worker("ghost"), kNotFound);
  EXPECT_EQ(q.workers()[1].last_seen_ms, clock.now());
  EXPECT_EQ(q.workers()[0].last_seen_ms, clock.now() - 1000);

  // Re-registering refreshes the capability but keeps the first registration time.
  clock.advance(1000);
  q.register_worker("pi", test::cpu_host(8));
  EXPECT_EQ(q.workers()[1].capability.ram_gib, 8);
  EXPECT_EQ(q.workers()[1].registered_ms, FakeClock::kStart);

  // Claims and heartbeats count as being seen.
  clock.advance(1000);
  Claim c = claim(q, "gpu-1");
  EXPECT_EQ(q.workers()[0].last_seen_ms, clock.now());
  clock.advance(1000);
  ASSERT_EQ(q.heartbeat(c.spec.id, c.lease_token).result, kOk);
  EXPECT_EQ(q.workers()[0].last_seen_ms, clock.now());
  EXPECT_THROW(q.register_worker("", gpu), QueueError);
}

}  // namespace
}  // namespace tv::fleet
