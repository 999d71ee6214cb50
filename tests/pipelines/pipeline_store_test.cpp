// The pipeline store on a real SQLite file: the cursor and its firings move together, a trigger
// change restarts the cursor and keeps the history, outcomes are recorded once, and the alias
// moves (gate, deploy, rollback) are atomic and audited.
#include "trainvisor/fleet/pipelines/pipeline_store.hpp"

#include <gtest/gtest.h>

#include "temp_dir.hpp"

namespace tv::fleet::pipelines {
namespace {

class PipelineStoreTest : public ::testing::Test {
 protected:
  std::string db() const { return dir_.file("coordinator.sqlite"); }
  PipelineStore open() {
    return PipelineStore::open(db(), [this] { return ++now_; });
  }

  static TriggerRecord firing(std::int64_t index, std::int64_t end, const std::string& job) {
    TriggerRecord r;
    r.pipeline = "p";
    r.index = index;
    r.end_sample = end;
    r.time_ns = end * 1000;
    r.reason = "every 100";
    r.stats_json = R"({"count":100})";
    r.job_id = job;
    return r;
  }

  test::TempDir dir_;
  std::int64_t now_ = 1000;
};

TEST_F(PipelineStoreTest, FiringsAndTheCursorMoveTogether) {
  PipelineStore s = open();
  EXPECT_FALSE(s.cursor("p"));
  PipelineCursor c = s.start("p", "key-1", 0, 0);
  EXPECT_EQ(c.next_seq, 0);
  s.advance("p", 0, 150, {firing(0, 100, "job-a")});
  s.advance("p", 1, 50, {});
  c = *s.cursor("p");
  EXPECT_EQ(c.next_seq, 2);
  EXPECT_EQ(c.end_sample, 200);
  EXPECT_EQ(c.triggers, 1);
  // A segment read twice (a second runner, a replay gone wrong) is refused, nothing written.
  EXPECT_THROW(s.advance("p", 1, 50, {firing(1, 190, "job-b")}), PipelineStoreError);
  // Firing indexes must follow on.
  EXPECT_THROW(s.advance("p", 2, 10, {firing(5, 205, "job-b")}), PipelineStoreError);
  EXPECT_EQ(s.triggers("p").size(), 1u);
  EXPECT_EQ(s.cursor("p")->next_seq, 2);
  // Another store on the same file sees it all.
  PipelineStore again = open();
  const std::vector<TriggerRecord> t = again.triggers("p");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].job_id, "job-a");
  EXPECT_EQ(t[0].stats_json, R"({"count":100})");
  EXPECT_EQ(t[0].outcome, TriggerOutcome::kTraining);
  EXPECT_EQ(again.trigger_of_job("job-a")->end_sample, 100);
  EXPECT_EQ(again.training().size(), 1u);
}

TEST_F(PipelineStoreTest, ATriggerChangeRestartsTheCursorAndKeepsTheHistory) {
  PipelineStore s = open();
  s.start("p", "key-1", 0, 0);
  s.advance("p", 0, 100, {firing(0, 100, "job-a")});
  // The same key resumes.
  EXPECT_EQ(s.start("p", "key-1", 7, 700).next_seq, 1);
  // Another key starts where it is told, with the firing count kept.
  const PipelineCursor c = s.start("p", "key-2", 5, 500, firing(1, 500, "job-initial"));
  EXPECT_EQ(c.origin_seq, 5);
  EXPECT_EQ(c.next_seq, 5);
  EXPECT_EQ(c.end_sample, 500);
  EXPECT_EQ(c.triggers, 2);
  EXPECT_EQ(s.triggers("p").size(), 2u);
  // An initial firing with the wrong index is refused and nothing moves.
  EXPECT_THROW(s.start("p", "key-3", 9, 900, firing(0, 900, "x")), PipelineStoreError);
  EXPECT_EQ(s.cursor("p")->trigger_key, "key-2");
}

TEST_F(PipelineStoreTest, AnOutcomeIsRecordedOnceAndMovesTheAliasWithIt) {
  PipelineStore s = open();
  s.start("p", "k", 0, 0);
  s.advance("p", 0, 300,
            {firing(0, 100, "job-a"), firing(1, 200, "job-b"), firing(2, 300, "job-c")});
  const TriggerRecord a = s.decide(
      {"job-a", "model-a", R"({"new":{"accuracy":0.8}})", "", true, "accuracy 0.8 >= 0.7"}, "prod");
  EXPECT_EQ(a.outcome, TriggerOutcome::kDeployed);
  EXPECT_EQ(s.alias("prod")->digest, "model-a");
  EXPECT_EQ(s.alias("prod")->trigger, 0);
  // A second report of the same job changes nothing.
  const TriggerRecord again = s.decide({"job-a", "model-x", "{}", "", false, "late"}, "prod");
  EXPECT_EQ(again.model, "model-a");
  EXPECT_EQ(again.outcome, TriggerOutcome::kDeployed);
  // A refused model keeps the alias.
  EXPECT_EQ(s.decide({"job-b", "model-b", "{}", "", false, "accuracy 0.5 < 0.7"}, "prod").outcome,
            TriggerOutcome::kRefused);
  EXPECT_EQ(s.alias("prod")->digest, "model-a");
  // A failed training has no model.
  EXPECT_EQ(s.decide({"job-c", "", "{}", "", false, "failed: trainer exited 3"}, "prod").outcome,
            TriggerOutcome::kFailed);
  EXPECT_TRUE(s.training().empty());
  EXPECT_THROW(s.decide({"job-unknown", "m", "{}", "", true, ""}, "prod"), PipelineStoreError);
  const std::vector<AliasEvent> log = s.alias_log("prod");
  ASSERT_EQ(log.size(), 1u);
  EXPECT_EQ(log[0].actor, "gate");
  EXPECT_EQ(log[0].previous, "");
}

TEST_F(PipelineStoreTest, DeployAndRollbackAreAudited) {
  PipelineStore s = open();
  s.start("p", "k", 0, 0);
  s.advance("p", 0, 200, {firing(0, 100, "job-a"), firing(1, 200, "job-b")});
  s.decide({"job-a", "model-a", "{}", "", true, "gate passed"}, "prod");
  s.decide({"job-b", "model-b", "{}", "", false, "worse than deployed"}, "prod");
  // Only a model the pipeline trained may be deployed.
  EXPECT_THROW(s.deploy("prod", "p", "model-z", "human:ana", "try"), PipelineStoreError);
  const AliasState d = s.deploy("prod", "p", "model-b", "human:ana", "b is fine on new data");
  EXPECT_EQ(d.digest, "model-b");
  EXPECT_EQ(d.trigger, 1);
  EXPECT_EQ(d.revision, 2);
  const AliasState r = s.rollback("prod", "human:ana", "b misbehaves");
  EXPECT_EQ(r.digest, "model-a");
  EXPECT_EQ(r.trigger, 0);
  const std::vector<AliasEvent> log = s.alias_log("prod");
  ASSERT_EQ(log.size(), 3u);
  EXPECT_EQ(log[1].actor, "human:ana");
  EXPECT_EQ(log[1].previous, "model-a");
  EXPECT_EQ(log[2].reason, "b misbehaves");
  EXPECT_EQ(log[2].previous, "model-b");
  EXPECT_THROW(s.rollback("nothing", "human:ana", "x"), PipelineStoreError);
  // The first model has nothing before it.
  PipelineStore other = open();
  other.start("q", "k", 0, 0);
  TriggerRecord q = firing(0, 10, "job-q");
  q.pipeline = "q";
  other.advance("q", 0, 10, {q});
  other.decide({"job-q", "model-q", "{}", "", true, "ok"}, "q-prod");
  EXPECT_THROW(other.rollback("q-prod", "human:ana", "x"), PipelineStoreError);
}

}  // namespace
}  // namespace tv::fleet::pipelines
