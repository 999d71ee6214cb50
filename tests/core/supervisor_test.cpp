// The supervisor on a real block: the trainer's side pushes telemetry into the job's ring, the
// supervisor runs its policies on it (scripted ones, and the real plateau plugin loaded as the
// host loads it) and hands their writes to the sink, which writes the block. A recording sink in
// between shows every write the supervisor makes, so "writes nothing" is checked as such.
#include "trainvisor/core/supervisor.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <deque>
#include <stdexcept>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv {
namespace {

const std::string kLr(knobs::kLearningRate);
const std::string kStop(knobs::kEarlyStop);

// Passes every write on to the block's sink and keeps a copy.
class RecordingSink final : public ConfigSink {
 public:
  struct Call {
    std::vector<plugin::ProposedWrite> writes;
    std::string actor;
  };
  explicit RecordingSink(BlockConfigSink& block) : block_(block) {}
  WriteOutcome apply(const std::vector<plugin::ProposedWrite>& writes,
                     const std::string& actor) override {
    calls.push_back({writes, actor});
    return block_.apply(writes, actor);
  }
  const plugin::ConfigView& config() const override { return block_.config(); }
  std::uint64_t revision() const override { return block_.revision(); }
  const KeyWriters& writers() const override { return block_.writers(); }
  std::vector<Call> calls;

 private:
  BlockConfigSink& block_;
};

// Answers each observe() with the next queued decision (none: an empty one), or throws when
// told to, and remembers what it was shown and told.
class ScriptedPolicy final : public plugin::Policy {
 public:
  plugin::Decision observe(const plugin::Observation& o) override {
    ++observed;
    seen_size = o.history.size();
    seen_first_new = o.first_new;
    seen_lr = std::get<double>(o.config.at(kLr));
    seen_holds = o.holds;
    if (throw_next) throw std::runtime_error("boom");
    if (decisions.empty()) return {};
    plugin::Decision d = decisions.front();
    decisions.pop_front();
    return d;
  }
  void outcome(const plugin::DecisionOutcome& o) override { outcomes.push_back(o); }
  std::deque<plugin::Decision> decisions;
  std::vector<plugin::HumanHold> seen_holds;
  std::vector<plugin::DecisionOutcome> outcomes;
  bool throw_next = false;
  int observed = 0;
  std::size_t seen_size = 0, seen_first_new = 0;
  double seen_lr = 0;
};

plugin::Decision writes_lr(double lr, bool dry_run = false) {
  plugin::Decision d;
  d.writes.push_back({kLr, lr, "test says so"});
  d.dry_run = dry_run;
  return d;
}

plugin::Decision stops(const std::string& reason) {
  plugin::Decision d;
  d.stop = true;
  d.stop_reason = reason;
  return d;
}

class SupervisorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    job_ = "sup-test-" + std::to_string(::getpid()) + "-" + std::to_string(++n);
    shm::ConfigBlockWriter::remove(shm::block_name_for_job(job_));
    shm::WriterOptions o;
    o.ring_capacity = 64;
    block_ = std::make_unique<BlockConfigSink>(job_, plugin::ConfigView{}, o);
    sink_ = std::make_unique<RecordingSink>(*block_);
    trainer_.emplace(shm::ConfigBlockReader::attach(block_->block_name(),
                                                    shm::ConfigBlockReader::Access::kReadWrite));
    ring_.emplace(trainer_->telemetry_writer());
    supervisor_ = std::make_unique<Supervisor>(
        shm::ConfigBlockReader::attach(block_->block_name(),
                                       shm::ConfigBlockReader::Access::kReadWrite),
        *sink_);
  }
  void TearDown() override { shm::ConfigBlockWriter::remove(shm::block_name_for_job(job_)); }

  ScriptedPolicy& add_scripted(const std::string& name, HumanGrace grace = {}) {
    auto p = std::make_unique<ScriptedPolicy>();
    ScriptedPolicy& ref = *p;
    supervisor_->add_policy(name, std::move(p), grace);
    return ref;
  }

  // The real plateau plugin (patience 0), as the host creates it.
  void add_plateau(bool dry_run) {
    static PluginRegistry* registry = [] {
      auto* r = new PluginRegistry;  // never unloaded, as in the host
      EXPECT_TRUE(r->load_file(TV_POLICY_PLATEAU))
          << (r->errors().empty() ? "" : r->errors().front().message());
      return r;
    }();
    plugin::PolicyPlugin& pp = registry->policy("plateau");
    std::string error;
    auto policy = pp.create(
        resolve_params(pp.describe().params, {{"patience", std::int64_t{0}}, {"dry_run", dry_run}},
                       "policy 'plateau'"),
        error);
    ASSERT_TRUE(policy) << error;
    supervisor_->add_policy("plateau", std::move(policy));
  }

  // Training steps, then evaluations whose val_loss never improves.
  void push(int steps, int evals = 0) {
    for (int i = 0; i < steps + evals; ++i) {
      shm::TelemetryRecord r;
      r.step = ++step_;
      r.loss = 1.0;
      r.learning_rate = 0.05;
      r.config_revision = trainer_revision_;
      if (i >= steps) {
        r.flags = shm::kTelemetryEval;
        r.val_loss = 1.0;
      }
      ring_->push(r);
    }
  }

  double block_lr() { return trainer_->resolve<double>(kLr).get(-1); }
  bool block_stop() { return trainer_->resolve<bool>(kStop).get(false); }
  std::int64_t block_revision() {
    return trainer_->resolve<std::int64_t>(knobs::kRevision).get(-1);
  }

  std::string job_;
  std::unique_ptr<BlockConfigSink> block_;
  std::unique_ptr<RecordingSink> sink_;
  std::optional<shm::ConfigBlockReader> trainer_;  // the trainer's side of the block
  std::optional<shm::TelemetryWriter> ring_;
  std::unique_ptr<Supervisor> supervisor_;
  std::uint64_t step_ = 0;
  std::uint64_t trainer_revision_ = 1;  // the revision the pushed records say they ran with

  // A human's write as the config agent applies a hub delta: the next revision, actor human:ana.
  std::uint64_t human_writes(const std::string& path, plugin::ParamValue value) {
    const std::uint64_t revision = block_->revision() + 1;
    EXPECT_TRUE(
        block_->apply_at({{path, std::move(value), "manual"}}, "human:ana", revision).applied);
    return revision;
  }
};

TEST_F(SupervisorTest, NothingArrivedNothingRuns) {
  ScriptedPolicy& p = add_scripted("scripted");
  p.decisions.push_back(writes_lr(0.02));
  EXPECT_TRUE(supervisor_->poll().empty());
  EXPECT_EQ(p.observed, 0);
  EXPECT_TRUE(sink_->calls.empty());
}

TEST_F(SupervisorTest, PolicyWritesReachTheBlock) {
  ScriptedPolicy& p = add_scripted("scripted");
  p.decisions.push_back(writes_lr(0.02));
  push(3);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "policy:scripted");
  EXPECT_EQ(events[0].step, 3u);
  EXPECT_TRUE(events[0].outcome.applied) << events[0].outcome.reason;
  EXPECT_EQ(events[0].outcome.revision, 2u);
  ASSERT_EQ(sink_->calls.size(), 1u);
  EXPECT_EQ(sink_->calls[0].actor, "policy:scripted");
  EXPECT_EQ(sink_->calls[0].writes.at(0).path, kLr);
  EXPECT_DOUBLE_EQ(block_lr(), 0.02);
  EXPECT_EQ(block_revision(), 2);
  // The policy saw every record, all of them new, and the config before its write.
  EXPECT_EQ(p.seen_size, 3u);
  EXPECT_EQ(p.seen_first_new, 0u);
  EXPECT_DOUBLE_EQ(p.seen_lr, 0.05);
  // Next time: the whole history, the new part marked, and the config its write made.
  push(2);
  EXPECT_TRUE(supervisor_->poll().empty());
  EXPECT_EQ(p.seen_size, 5u);
  EXPECT_EQ(p.seen_first_new, 3u);
  EXPECT_DOUBLE_EQ(p.seen_lr, 0.02);
}

TEST_F(SupervisorTest, PlateauLowersTheLearningRate) {
  add_plateau(false);
  push(2, 2);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "policy:plateau");
  EXPECT_TRUE(events[0].outcome.applied) << events[0].outcome.reason;
  ASSERT_EQ(sink_->calls.size(), 1u);
  EXPECT_DOUBLE_EQ(block_lr(), 0.05 * 0.1);
  EXPECT_EQ(block_revision(), 2);
}

TEST_F(SupervisorTest, DryRunPlateauWritesNothing) {
  add_plateau(true);
  const std::uint64_t tree_seq = trainer_->info().tree_seq;
  push(2, 2);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  // The decision is reported in full ...
  ASSERT_EQ(events.size(), 1u);
  ASSERT_EQ(events[0].writes.size(), 1u);
  EXPECT_EQ(events[0].writes[0].path, kLr);
  EXPECT_DOUBLE_EQ(std::get<double>(events[0].writes[0].value), 0.05 * 0.1);
  EXPECT_FALSE(events[0].outcome.applied);
  EXPECT_EQ(events[0].outcome.reason, "dry run: not applied");
  // ... and nothing reached the sink or the block.
  EXPECT_TRUE(sink_->calls.empty());
  EXPECT_EQ(trainer_->info().tree_seq, tree_seq);
  EXPECT_DOUBLE_EQ(block_lr(), 0.05);
  EXPECT_EQ(block_revision(), 1);
}

TEST_F(SupervisorTest, StopBecomesTheEarlyStopWrite) {
  ScriptedPolicy& p = add_scripted("stopper");
  p.decisions.push_back(stops("enough"));
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].stop);
  EXPECT_EQ(events[0].stop_reason, "enough");
  ASSERT_EQ(events[0].writes.size(), 1u);
  EXPECT_EQ(events[0].writes[0].path, kStop);
  EXPECT_EQ(events[0].writes[0].reason, "enough");
  EXPECT_TRUE(events[0].outcome.applied) << events[0].outcome.reason;
  EXPECT_TRUE(block_stop());
  // A policy that stopped the job is not asked again.
  push(1);
  supervisor_->poll();
  EXPECT_EQ(p.observed, 1);
}

TEST_F(SupervisorTest, DryRunStopWritesNothing) {
  ScriptedPolicy& p = add_scripted("stopper");
  plugin::Decision d;
  d.stop = true;
  d.stop_reason = "enough";
  d.dry_run = true;
  p.decisions.push_back(d);
  const std::uint64_t tree_seq = trainer_->info().tree_seq;
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].stop);
  EXPECT_EQ(events[0].outcome.reason, "dry run: not applied");
  EXPECT_TRUE(sink_->calls.empty());
  EXPECT_EQ(trainer_->info().tree_seq, tree_seq);
  EXPECT_FALSE(block_stop());
}

TEST_F(SupervisorTest, RefusedWriteChangesNothing) {
  ScriptedPolicy& p = add_scripted("scripted");
  p.decisions.push_back(writes_lr(50.0));
  const std::uint64_t tree_seq = trainer_->info().tree_seq;
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].outcome.applied);
  EXPECT_EQ(events[0].outcome.reason,
            "policy:scripted: trainer parameter 'training/optimizer/learning_rate': 50 is above "
            "the maximum 10");
  EXPECT_EQ(sink_->calls.size(), 1u);  // offered, and refused by the sink
  EXPECT_EQ(trainer_->info().tree_seq, tree_seq);
  EXPECT_DOUBLE_EQ(block_lr(), 0.05);
}

TEST_F(SupervisorTest, ThrowingPolicyIsDisabledOthersGoOn) {
  ScriptedPolicy& bad = add_scripted("bad");
  ScriptedPolicy& good = add_scripted("good");
  bad.throw_next = true;
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].actor, "policy:bad");
  EXPECT_EQ(events[0].stop_reason, "policy threw and was disabled: boom");
  EXPECT_TRUE(events[0].writes.empty());
  EXPECT_EQ(good.observed, 1);
  push(1);
  supervisor_->poll();
  EXPECT_EQ(bad.observed, 1);
  EXPECT_EQ(good.observed, 2);
  EXPECT_TRUE(sink_->calls.empty());
}

TEST_F(SupervisorTest, RecordsOverwrittenBeforeAPollAreCountedAsMissed) {
  push(64 + 10);  // the ring holds 64
  supervisor_->poll();
  EXPECT_EQ(supervisor_->missed(), 10u);
  ASSERT_EQ(supervisor_->history().size(), 64u);
  EXPECT_EQ(supervisor_->history().front().step, 11u);
  EXPECT_EQ(supervisor_->history().back().step, 74u);
}

TEST_F(SupervisorTest, HistoryIsBoundedAndIndexedFromTheFirstRecord) {
  ScriptedPolicy& p = add_scripted("scripted");
  const std::uint64_t total = 2 * Supervisor::kHistoryKeep + 100;
  while (step_ < total) {
    push(50);
    supervisor_->poll();
  }
  push(1);
  supervisor_->poll();
  EXPECT_EQ(supervisor_->missed(), 0u);
  const auto& h = supervisor_->history();
  EXPECT_GE(h.size(), Supervisor::kHistoryKeep);
  EXPECT_LT(h.size(), 2 * Supervisor::kHistoryKeep);
  EXPECT_EQ(supervisor_->dropped() + h.size(), step_);
  // Point i of history() is the (dropped() + i)th record received.
  EXPECT_EQ(h.front().step, supervisor_->dropped() + 1);
  EXPECT_EQ(h.back().step, step_);
  EXPECT_EQ(p.seen_size, h.size());
  EXPECT_EQ(p.seen_first_new, h.size() - 1);
}

}  // namespace
}  // namespace tv

namespace tv {
namespace {

// The case: a human set the rate, and the policy's next write took it back at once.
TEST_F(SupervisorTest, AHumanWriteHoldsItsKeyThroughTheGraceEvaluations) {
  ScriptedPolicy& p = add_scripted("scripted", HumanGrace{1, 100000});
  for (int i = 0; i < 3; ++i)
    p.decisions.push_back(writes_lr(0.01));
  const std::uint64_t human = human_writes(kLr, 0.08);
  push(1);  // the trainer has not run with the human's revision yet
  std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].outcome.applied);
  EXPECT_EQ(events[0].outcome.reason,
            "training/optimizer/learning_rate held by human:ana's write of revision " +
                std::to_string(human) +
                " (0.08) until the trainer has run 1 evaluation or 100000 steps with it");
  ASSERT_EQ(p.seen_holds.size(), 1u);
  EXPECT_EQ(p.seen_holds[0].actor, "human:ana");
  EXPECT_FALSE(p.seen_holds[0].since_step);
  ASSERT_EQ(p.outcomes.size(), 1u);
  ASSERT_EQ(p.outcomes[0].writes.size(), 1u);
  EXPECT_EQ(p.outcomes[0].writes[0].fate, plugin::WriteFate::kHeld);
  EXPECT_TRUE(sink_->calls.empty());
  EXPECT_DOUBLE_EQ(block_lr(), 0.08);

  trainer_revision_ = human;
  push(2, 1);  // the first evaluation with the human's value: still held
  events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_NE(events[0].outcome.reason.find("until the next evaluation or until step "),
            std::string::npos)
      << events[0].outcome.reason;
  ASSERT_EQ(p.seen_holds.size(), 1u);
  EXPECT_EQ(p.seen_holds[0].since_step, step_ - 2);
  EXPECT_TRUE(sink_->calls.empty());
  EXPECT_DOUBLE_EQ(block_lr(), 0.08);

  push(0, 1);  // the grace is over: the policy's write goes through
  events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].outcome.applied) << events[0].outcome.reason;
  EXPECT_TRUE(p.seen_holds.empty());
  EXPECT_EQ(p.outcomes.back().writes[0].fate, plugin::WriteFate::kApplied);
  EXPECT_EQ(p.outcomes.back().writes[0].revision, human + 1);
  EXPECT_DOUBLE_EQ(block_lr(), 0.01);
}

TEST_F(SupervisorTest, TheHoldEndsAfterTheGraceSteps) {
  ScriptedPolicy& p = add_scripted("scripted", HumanGrace{5, 10});
  p.decisions.push_back(writes_lr(0.01));
  p.decisions.push_back(writes_lr(0.01));
  trainer_revision_ = human_writes(kLr, 0.08);
  push(10);  // steps 1..10: 9 steps since the first with the human's value
  EXPECT_FALSE(supervisor_->poll().at(0).outcome.applied);
  push(1);
  EXPECT_TRUE(supervisor_->poll().at(0).outcome.applied);
  EXPECT_DOUBLE_EQ(block_lr(), 0.01);
}

// Only the held key is refused; the rest of the decision goes through, and the policy hears of
// each write.
TEST_F(SupervisorTest, OnlyTheHeldKeyIsRefused) {
  ScriptedPolicy& p = add_scripted("scripted");
  plugin::Decision d = writes_lr(0.01);
  d.writes.push_back({std::string(knobs::kGradClipMax), 2.0, "clip"});
  p.decisions.push_back(d);
  human_writes(kLr, 0.08);
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].outcome.applied);
  ASSERT_EQ(p.outcomes.size(), 1u);
  EXPECT_FALSE(p.outcomes[0].accepted(kLr));
  EXPECT_TRUE(p.outcomes[0].accepted(std::string(knobs::kGradClipMax)));
  ASSERT_EQ(sink_->calls.size(), 1u);
  ASSERT_EQ(sink_->calls[0].writes.size(), 1u);
  EXPECT_EQ(sink_->calls[0].writes[0].path, knobs::kGradClipMax);
  EXPECT_DOUBLE_EQ(block_lr(), 0.08);
}

TEST_F(SupervisorTest, ThePolicyIsToldARefusalAndADryRun) {
  ScriptedPolicy& p = add_scripted("scripted");
  p.decisions.push_back(writes_lr(50.0));
  p.decisions.push_back(writes_lr(0.02, true));
  push(1);
  supervisor_->poll();
  push(1);
  supervisor_->poll();
  ASSERT_EQ(p.outcomes.size(), 2u);
  EXPECT_EQ(p.outcomes[0].writes.at(0).fate, plugin::WriteFate::kInvalid);
  EXPECT_NE(p.outcomes[0].writes[0].reason.find("above the maximum"), std::string::npos);
  EXPECT_EQ(p.outcomes[1].writes.at(0).fate, plugin::WriteFate::kDryRun);
}

// A human who set early_stop false keeps the job running: the stop is refused, and the policy
// is asked again (it has not stopped anything).
TEST_F(SupervisorTest, AStopRefusedByAHoldLeavesThePolicyRunning) {
  ScriptedPolicy& p = add_scripted("stopper");
  p.decisions.push_back(stops("enough"));
  human_writes(kStop, false);
  push(1);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].outcome.applied);
  EXPECT_FALSE(block_stop());
  push(1);
  supervisor_->poll();
  EXPECT_EQ(p.observed, 2);
}

// The real plateau plugin yields, and says so in its note, rather than proposing.
TEST_F(SupervisorTest, PlateauYieldsToAHumanAndSaysSo) {
  add_plateau(false);
  human_writes(kLr, 0.08);
  push(2, 2);
  const std::vector<SupervisorEvent> events = supervisor_->poll();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].writes.empty());
  EXPECT_NE(events[0].note.find("learning_rate held by human:ana's write of revision 2 (0.08)"),
            std::string::npos)
      << events[0].note;
  EXPECT_NE(events[0].note.find(": not reduced"), std::string::npos) << events[0].note;
  EXPECT_TRUE(sink_->calls.empty());
}

TEST(BlockConfigSink, KnowsWhoLastWroteEachKeyAcrossAResync) {
  const std::string job = "sink-writers-" + std::to_string(::getpid());
  BlockConfigSink sink(job, {});
  ASSERT_TRUE(sink.apply_at({{kLr, 0.08, ""}}, "human:ana", 2).applied);
  ASSERT_TRUE(sink.apply({{kStop, false, ""}}, "policy:x").applied);
  // A snapshot restating the same value keeps the human as its writer; a changed one does not.
  ASSERT_TRUE(sink.apply_at({{kLr, 0.08, ""}, {kStop, true, ""}}, "snapshot", 4).applied);
  EXPECT_EQ(sink.writers().at(kLr).actor, "human:ana");
  EXPECT_EQ(sink.writers().at(kLr).revision, 2u);
  EXPECT_EQ(sink.writers().at(kStop).actor, "snapshot");
  sink.remove_block();
}

}  // namespace
}  // namespace tv
