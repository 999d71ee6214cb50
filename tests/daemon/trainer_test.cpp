// `trainvisor train` as a real process against a real block: live knobs applied at step
// boundaries (the batch size from the next epoch, the optimizer's name at start only), policies
// from real plugin libraries cutting the rate, every exit code, checkpoints every N steps and on
// SIGTERM, resume (weights, optimizer state, position and knobs, live or saved), skipped updates
// on a non-finite loss, reproducible bundles, refusals of bad input, and a pipeline training
// stopped early from its block (stream_training_test.cpp has the rest of those).
//
// Every trainer runs in its own process group, which the test kills on any exit (and the kernel
// kills the trainer if the test process dies); every wait is on a condition with a deadline.
// Each test writes only into its own temporary directory and its own block.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "trainer_process.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using namespace test_process;
using nlohmann::json;

// Telemetry records a test block holds: tiny runs about 13k steps a second, so a test may fall
// some seconds behind its trainer before anything is overwritten (and every count checks it).
constexpr std::uint32_t kRingRecords = 1u << 18;

std::vector<std::string> train_args(const std::string& job, const std::string& out,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> a = {TRAINVISOR, "train", "--model", "tiny", "--quiet", "--seed", "7"};
  if (!job.empty()) a.insert(a.end(), {"--job-id", job});
  if (!out.empty()) a.insert(a.end(), {"--out", out});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Runs the tiny trainer without a block, writing into `out`; the summary it prints, or null on
// any exit but 0 (reported as a test failure).
json train(const TempDir& out, const std::vector<std::string>& extra) {
  const Finished f = run(train_args("", out.str(), extra), out.path);
  EXPECT_EQ(f.code, 0) << "trainvisor train " << testing::PrintToString(extra) << ":\n" << f.err;
  if (f.code != 0) return nullptr;
  return json::parse(f.out);
}

std::string unique_job(const std::string& tag) {
  static int n = 0;
  return "test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// A bundle: its JSON header and the raw tensor bytes after it.
struct Bundle {
  std::string bytes;
  json header;
  std::string tensors;
};

Bundle read_bundle(const fs::path& path) {
  Bundle b;
  b.bytes = read_text(path);
  const auto first = b.bytes.find('\n');
  const auto second = b.bytes.find('\n', first + 1);
  if (b.bytes.substr(0, first) != "TVBUNDLE1" || second == std::string::npos) {
    ADD_FAILURE() << path << " is not a bundle";
    return b;
  }
  const std::size_t len = std::stoul(b.bytes.substr(first + 1, second - first - 1));
  b.header = json::parse(b.bytes.substr(second + 1, len));
  b.tensors = b.bytes.substr(second + 1 + len);
  return b;
}

json read_state(const fs::path& out) {
  return json::parse(read_text(out / "checkpoint" / "state.json"));
}

// A trainer on a block this test writes as its config agent, and the telemetry it pushed.
class LiveTrainer {
 public:
  LiveTrainer(const std::string& tag, const plugin::ConfigView& initial)
      : job_(unique_job(tag)), sink_(job_, initial, writer_options()) {
    supervisor_.emplace(shm::ConfigBlockReader::attach(sink_.block_name(),
                                                       shm::ConfigBlockReader::Access::kReadWrite),
                        sink_);
  }
  ~LiveTrainer() {
    process_.reset();
    sink_.remove_block();
  }

  const std::string& job() const { return job_; }
  BlockConfigSink& sink() { return sink_; }
  Supervisor& supervisor() { return *supervisor_; }
  ProcessGroup& process() { return *process_; }

  void start(const std::vector<std::string>& args, const TempDir& logs) {
    process_.emplace(args, logs.path);
  }

  // Every telemetry point received so far, in push order.
  const std::vector<plugin::TelemetryPoint>& points() const { return points_; }
  std::uint64_t last_step() const { return points_.empty() ? 0 : points_.back().step; }
  const std::vector<SupervisorEvent>& events() const { return events_; }

  // Takes the telemetry that arrived (and runs the supervisor's policies on it).
  void poll() {
    for (auto& e : supervisor_->poll())
      events_.push_back(std::move(e));
    const auto& h = supervisor_->history();
    for (std::size_t i = points_.size() - supervisor_->dropped(); i < h.size(); ++i)
      points_.push_back(h[i]);
  }

  // Polls until `done()` holds. A failure names `what` and says whether the trainer exited first
  // (with its stderr) or the deadline passed.
  ::testing::AssertionResult wait_until(const std::function<bool()>& done,
                                        const std::string& what) {
    const auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      const bool exited = process_->exit_code().has_value();
      poll();
      if (done()) return ::testing::AssertionSuccess();
      if (exited) {
        return ::testing::AssertionFailure()
               << "the trainer exited (" << *process_->exit_code() << ") at step " << last_step()
               << " before " << what << "; stderr:\n"
               << process_->err();
      }
      std::this_thread::sleep_for(200us);
    }
    return ::testing::AssertionFailure()
           << "no " << what << " within the deadline (trainer at step " << last_step() << ")";
  }

  ::testing::AssertionResult wait_step(std::uint64_t step) {
    return wait_until([&] { return last_step() >= step; },
                      "telemetry of step " + std::to_string(step));
  }

  // Polls until the trainer exits, calling `on_poll` after every poll; the exit code, or
  // nothing when the deadline passes first.
  std::optional<int> wait_exit(const std::function<void()>& on_poll = [] {}) {
    const auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      const auto code = process_->exit_code();
      poll();
      on_poll();
      if (code) return code;
      std::this_thread::sleep_for(200us);
    }
    ADD_FAILURE() << "the trainer did not exit within the deadline (at step " << last_step() << ")";
    return std::nullopt;
  }

  WriteOutcome set(const std::string& key, const plugin::ParamValue& value) {
    return sink_.apply({{key, value, "test"}}, "human:test");
  }

 private:
  static shm::WriterOptions writer_options() {
    shm::WriterOptions o;
    o.ring_capacity = kRingRecords;
    return o;
  }

  std::string job_;
  BlockConfigSink sink_;
  std::optional<Supervisor> supervisor_;
  std::optional<ProcessGroup> process_;
  std::vector<plugin::TelemetryPoint> points_;
  std::vector<SupervisorEvent> events_;
};

// ---- Live knobs and policies ----------------------------------------------------------------

TEST(TrainerLive, LearningRateChangeAppliesAtAStepBoundaryWithItsRevision) {
  TempDir out;
  LiveTrainer t("lr", {{"training/control/max_epochs", std::int64_t{100000}}});
  t.start(train_args(t.job(), out.str(), {}), out);
  ASSERT_TRUE(t.wait_step(40));
  const auto r = t.set("training/optimizer/learning_rate", 0.0125);
  ASSERT_TRUE(r.applied) << r.reason;
  ASSERT_EQ(r.revision, 2u);
  const std::uint64_t written_after = t.last_step();
  ASSERT_TRUE(t.wait_until(
      [&] { return t.points().back().config_revision == 2 && t.last_step() >= written_after + 80; },
      "80 steps on revision 2"));
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  const auto code = t.wait_exit();
  EXPECT_EQ(code, 3) << "early stop exit code; stderr:\n" << t.process().err();
  EXPECT_EQ(t.supervisor().missed(), 0u);
  std::uint64_t first_rev2 = 0;
  for (const auto& p : t.points()) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    // Every step ran wholly on one revision's values.
    if (p.config_revision == 1) {
      EXPECT_EQ(p.learning_rate, 0.05) << "step " << p.step;
      EXPECT_EQ(first_rev2, 0u) << "revision went back at step " << p.step;
    } else {
      ASSERT_GE(p.config_revision, 2u);  // 3 is the early stop, which keeps the new rate
      EXPECT_EQ(p.learning_rate, 0.0125) << "step " << p.step;
      if (first_rev2 == 0) first_rev2 = p.step;
    }
  }
  ASSERT_GT(first_rev2, written_after);
  // The bundle records the step from which revision 2 applied.
  const Bundle bundle = read_bundle(out / "bundle.tvb");
  ASSERT_GE(bundle.header["config_history"].size(), 3u);  // revision 1, 2, 3 (the stop)
  EXPECT_EQ(bundle.header["config_history"][1]["revision"], 2);
  EXPECT_EQ(bundle.header["config_history"][1]["step"].get<std::uint64_t>() + 1, first_rev2);
  EXPECT_EQ(bundle.header["metrics"]["stop_reason"], "early_stop");
}

TEST(TrainerLive, PlateauPolicyFromItsPluginCutsTheRate) {
  TempDir logs;
  LiveTrainer t("plateau", {{"training/control/max_epochs", std::int64_t{40}},
                            {"training/control/eval_every", std::int64_t{4}}});
  const PluginRegistry registry = PluginRegistry::load({TV_PLUGIN_DIR});
  plugin::PolicyPlugin& plateau = registry.policy("plateau");
  // Demand a 50% better val_loss at every evaluation: it soon stops coming, and the rate halves.
  const auto params = resolve_params(plateau.describe().params,
                                     {{"patience", std::int64_t{1}},
                                      {"factor", 0.5},
                                      {"threshold", 0.5},
                                      {"cooldown", std::int64_t{2}}},
                                     "policy 'plateau'");
  std::string error;
  auto policy = plateau.create(params, error);
  ASSERT_NE(policy, nullptr) << error;
  t.supervisor().add_policy("plateau", std::move(policy));
  t.start(train_args(t.job(), "", {}), logs);
  EXPECT_EQ(t.wait_exit(), 0) << t.process().err();
  ASSERT_GE(t.sink().revision(), 2u) << "plateau never cut the rate";
  // Each revision's rate, as the policy wrote it.
  std::map<std::uint64_t, double> rate = {{1, 0.05}};
  for (const auto& e : t.events()) {
    EXPECT_EQ(e.actor, "policy:plateau");
    ASSERT_TRUE(e.outcome.applied) << e.outcome.reason;
    ASSERT_EQ(e.writes.size(), 1u);
    EXPECT_NE(e.writes[0].reason.find("has not improved"), std::string::npos) << e.writes[0].reason;
    const double r = std::get<double>(e.writes[0].value);
    EXPECT_LT(r, std::prev(rate.end())->second);
    rate[e.outcome.revision] = r;
  }
  // The trainer applied every cut, at a step boundary, with its revision, in order.
  std::uint64_t rev = 1;
  for (const auto& p : t.points()) {
    ASSERT_GE(p.config_revision, rev) << "revision went back at step " << p.step;
    rev = p.config_revision;
    ASSERT_TRUE(rate.count(rev)) << "unknown revision " << rev;
    EXPECT_DOUBLE_EQ(p.learning_rate, rate[rev]) << "step " << p.step;
  }
  // A cut made from the last records may land after the trainer's last step.
  EXPECT_GE(rev, 2u) << "the trainer never applied a cut";
  EXPECT_LE(rev, t.sink().revision());
  EXPECT_LT(t.points().back().learning_rate, 0.05);
}

// A writer that bypasses the agent's validation, as a buggy agent would.
TEST(TrainerLive, OutOfRangeValueIsRefusedAndTheLastGoodOneStays) {
  TempDir logs;
  const std::string job = unique_job("refuse");
  shm::WriterOptions options;
  options.ring_capacity = kRingRecords;
  auto writer = shm::ConfigBlockWriter::open_or_create(
      shm::block_name_for_job(job), options,
      std::vector<shm::Entry>{{"training/control/max_epochs", shm::Value::i64(100000)},
                              {std::string(knobs::kRevision), shm::Value::i64(1)}});
  struct Remove {
    std::string name;
    ~Remove() { shm::ConfigBlockWriter::remove(name); }
  } remove{writer.name()};
  auto reader =
      shm::ConfigBlockReader::attach(writer.name(), shm::ConfigBlockReader::Access::kReadWrite);
  auto telemetry = reader.telemetry_reader();
  ProcessGroup trainer(train_args(job, "", {}), logs.path);
  std::vector<shm::TelemetryRecord> buf(512), all;
  std::uint64_t missed = 0;
  // Polls until `done()`, with a deadline; false when the trainer exited first.
  const auto poll_until = [&](const std::function<bool()>& done) {
    const auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      const bool exited = trainer.exit_code().has_value();
      for (shm::PollResult r = telemetry.poll(buf);; r = telemetry.poll(buf)) {
        missed += r.missed;
        all.insert(all.end(), buf.begin(), buf.begin() + static_cast<long>(r.count));
        if (r.count < buf.size()) break;
      }
      if (done()) return true;
      if (exited) return false;
      std::this_thread::sleep_for(200us);
    }
    return false;
  };
  const auto at_step = [&](std::uint64_t s) {
    return [&all, s] { return !all.empty() && all.back().step >= s; };
  };
  ASSERT_TRUE(poll_until(at_step(20))) << "no telemetry of step 20; stderr:\n" << trainer.err();
  writer.apply(std::vector<shm::Entry>{{"training/optimizer/learning_rate", shm::Value::f64(50.0)},
                                       {std::string(knobs::kRevision), shm::Value::i64(2)}});
  ASSERT_TRUE(poll_until(at_step(all.back().step + 40))) << "no 40 steps after the bad value";
  writer.apply(std::vector<shm::Entry>{{"training/control/early_stop", shm::Value::boolean(true)},
                                       {std::string(knobs::kRevision), shm::Value::i64(3)}});
  ASSERT_TRUE(poll_until([&] { return trainer.exit_code().has_value(); }))
      << "the trainer did not stop early";
  EXPECT_EQ(trainer.exit_code(), 3) << trainer.err();
  EXPECT_EQ(missed, 0u);
  // Flagged on the first step of each generation that still holds the bad value (revisions 2
  // and 3), and the rate never changed.
  std::vector<std::uint64_t> refused_revisions;
  std::uint64_t prev_rev = 0;
  for (const auto& rec : all) {
    EXPECT_EQ(rec.learning_rate, 0.05) << "an out-of-range rate was applied at step " << rec.step;
    if (rec.flags & plugin::kTelemetryConfigRefused) {
      EXPECT_NE(rec.config_revision, prev_rev) << "flagged past the step that saw it: " << rec.step;
      refused_revisions.push_back(rec.config_revision);
    }
    prev_rev = rec.config_revision;
  }
  EXPECT_EQ(refused_revisions, (std::vector<std::uint64_t>{2, 3}));
}

// A pipeline training (a window of a stream) is a job like any other: an early stop in its block
// ends it with its bundle and its evaluation.json.
TEST(TrainerLive, PipelineTrainingStopsEarlyWithItsEvaluation) {
  TempDir logs;
  const fs::path out = logs / "out";
  fleet::pipelines::SampleBatchData batch;
  batch.sample_shape = {16};  // the tiny model's default features
  batch.rows = 600;
  std::mt19937 gen(5);
  std::normal_distribution<float> normal;
  for (std::size_t r = 0; r < batch.rows; ++r) {
    for (int k = 0; k < 16; ++k)
      batch.features.push_back(normal(gen));
    batch.labels.push_back(static_cast<std::int64_t>(r % 4));
    batch.time_ns.push_back(static_cast<std::int64_t>(r));
  }
  const fs::path segment = logs / "segment.npy";
  std::ofstream(segment, std::ios::binary) << fleet::pipelines::encode_batch(batch);
  LiveTrainer t("stream", {{"training/control/batch_size", std::int64_t{64}}});
  t.start(train_args(t.job(), out.string(),
                     {"--segment", segment.string(), "--window", "0:600", "--sample-shape", "16",
                      "--classes", "4", "--stream-epochs", "100000"}),
          logs);
  ASSERT_TRUE(t.wait_step(30));  // 540 training samples: 9 steps an epoch
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  EXPECT_EQ(t.wait_exit(), 3) << t.process().err();
  const json summary = json::parse(t.process().out());
  EXPECT_EQ(summary["reason"], "early_stop");
  const json e = json::parse(read_text(out / "evaluation.json"));
  EXPECT_EQ(e["train_samples"], 540);
  EXPECT_EQ(e["holdout_samples"], 60);
  EXPECT_EQ(e["epochs"], summary["epochs"]);
  EXPECT_GE(e["epochs"].get<int>(), 3);
  EXPECT_EQ(e["new"]["accuracy"], summary["val_accuracy"]);
  EXPECT_TRUE(e["deployed"].is_null());
  EXPECT_EQ(read_bundle(out / "bundle.tvb").header["metrics"]["stop_reason"], "early_stop");
}

// batch_size is read when an epoch starts: a change seen in epoch e applies from epoch e+1.
TEST(TrainerLive, BatchSizeChangeAppliesFromTheNextEpoch) {
  TempDir logs;
  // 512 samples: 8 steps an epoch at 64, 4 at 128.
  LiveTrainer t("batch", {{"training/control/max_epochs", std::int64_t{100000}},
                          {"training/control/batch_size", std::int64_t{64}}});
  t.start(train_args(t.job(), "", {}), logs);
  ASSERT_TRUE(t.wait_step(3));
  ASSERT_TRUE(t.set("training/control/batch_size", std::int64_t{128}).applied);
  std::uint32_t seen_in = 0;
  ASSERT_TRUE(t.wait_until(
      [&] {
        for (const auto& p : t.points()) {
          if (p.config_revision == 2) {
            seen_in = p.epoch;
            return t.points().back().epoch >= seen_in + 3;
          }
        }
        return false;
      },
      "three epochs after the one that saw batch_size 128"));
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  EXPECT_EQ(t.wait_exit(), 3) << t.process().err();
  ASSERT_EQ(t.supervisor().missed(), 0u) << "telemetry was overwritten: steps cannot be counted";
  std::map<std::uint32_t, int> steps_in;  // of the epochs that ended
  std::map<std::uint32_t, int> counted;
  for (const auto& p : t.points()) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    ++counted[p.epoch];
    if (p.flags & plugin::kTelemetryEpochEnd) steps_in[p.epoch] = counted[p.epoch];
  }
  ASSERT_TRUE(steps_in.count(seen_in + 2)) << "epoch " << seen_in + 2 << " never ended";
  for (const auto& [epoch, steps] : steps_in) {
    EXPECT_EQ(steps, epoch <= seen_in ? 8 : 4)
        << "epoch " << epoch << " (the change was seen in epoch " << seen_in << ")";
  }
}

// The optimizer is built at start from training/optimizer/name; a later change of the name does
// not switch it. Compared by the weights: AdamW's run with a live switch to SGD must end where
// an AdamW run of as many steps ends, and an SGD run must end elsewhere.
TEST(TrainerLive, OptimizerNameIsReadAtStartOnly) {
  TempDir live, adamw, sgd;
  LiveTrainer t("optimizer", {{"training/control/max_epochs", std::int64_t{100000}},
                              {"training/optimizer/name", std::string("adamw")},
                              {"training/optimizer/learning_rate", 0.01}});
  t.start(train_args(t.job(), live.str(), {}), live);
  ASSERT_TRUE(t.wait_step(5));
  ASSERT_TRUE(t.set("training/optimizer/name", std::string("sgd")).applied);
  std::uint64_t switched_at = 0;
  ASSERT_TRUE(t.wait_until(
      [&] {
        for (const auto& p : t.points()) {
          if (switched_at == 0 && p.config_revision == 2) switched_at = p.step;
        }
        return switched_at > 0 && t.last_step() >= switched_at + 20;
      },
      "20 steps after the switch to sgd"));
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  ASSERT_EQ(t.wait_exit(), 3) << t.process().err();
  const Bundle switched = read_bundle(live / "bundle.tvb");
  const std::string steps = std::to_string(switched.header["metrics"]["steps"].get<std::int64_t>());
  const std::vector<std::string> knobs = {"--knob",  "training/optimizer/learning_rate=0.01",
                                          "--knob",  "training/control/max_epochs=100000",
                                          "--steps", steps};
  ASSERT_FALSE(
      train(adamw, knobs + std::vector<std::string>{"--knob", "training/optimizer/name=adamw"})
          .is_null());
  ASSERT_FALSE(train(sgd, knobs + std::vector<std::string>{"--knob", "training/optimizer/name=sgd"})
                   .is_null());
  EXPECT_TRUE(switched.tensors == read_bundle(adamw / "bundle.tvb").tensors)
      << "a live change of the optimizer's name changed the optimizer (switched at step "
      << switched_at << ")";
  EXPECT_FALSE(read_bundle(sgd / "bundle.tvb").tensors == read_bundle(adamw / "bundle.tvb").tensors)
      << "training/optimizer/name at start made no difference";
  EXPECT_EQ(read_state(live)["optimizer"], "adamw");
}

// ---- Non-finite losses -----------------------------------------------------------------------

TEST(TrainerLive, NonFiniteLossIsFlaggedAndTrainingGoesOn) {
  TempDir logs;
  // A rate and momentum at the top of their ranges blow tiny's loss up to infinity.
  LiveTrainer t("nonfinite", {{"training/optimizer/learning_rate", 10.0},
                              {"training/optimizer/momentum", 0.999},
                              {"training/control/batch_size", std::int64_t{8}},
                              {"training/control/max_epochs", std::int64_t{3}}});
  t.start(train_args(t.job(), "", {}), logs);
  EXPECT_EQ(t.wait_exit(), 0) << "a divergent run is the job's outcome, not the trainer's failure";
  std::size_t flagged = 0;
  for (const auto& p : t.points()) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    const bool non_finite = !std::isfinite(p.loss) || !std::isfinite(p.grad_norm);
    EXPECT_EQ(non_finite, (p.flags & plugin::kTelemetryNonFiniteLoss) != 0) << "step " << p.step;
    flagged += non_finite;
  }
  EXPECT_GT(flagged, 0u);
  EXPECT_EQ(t.last_step(), 3u * 64u);  // every step still ran
}

bool all_finite_floats(const std::string& bytes) {
  for (std::size_t i = 0; i + sizeof(float) <= bytes.size(); i += sizeof(float)) {
    float f;
    std::memcpy(&f, bytes.data() + i, sizeof f);
    if (!std::isfinite(f)) return false;
  }
  return true;
}

// One NaN sample (tiny's nan_samples) makes one batch an epoch have a NaN loss. That step must
// leave the weights exactly as they were, and training must go on from them.
TEST(TrainerLive, NonFiniteLossSkipsTheUpdate) {
  TempDir logs;
  const std::vector<std::string> data = {"--param", "nan_samples=1"};
  LiveTrainer t("skip", {{"training/control/max_epochs", std::int64_t{3}}});
  t.start(train_args(t.job(), logs.str(), data), logs);
  ASSERT_EQ(t.wait_exit(), 0) << t.process().err();
  std::map<std::uint64_t, bool> flagged;
  for (const auto& p : t.points()) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    flagged[p.step] = (p.flags & plugin::kTelemetryNonFiniteLoss) != 0;
    EXPECT_EQ(flagged[p.step], std::isnan(p.loss)) << "step " << p.step;
  }
  ASSERT_EQ(flagged.size(), 24u);
  std::uint64_t k = 0;  // a flagged step after an unflagged one and before another
  int n = 0;
  for (const auto& [step, f] : flagged) {
    n += f;
    if (f && k == 0 && step > 1 && !flagged[step - 1] && flagged.count(step + 1) &&
        !flagged[step + 1])
      k = step;
  }
  const Bundle full = read_bundle(logs / "bundle.tvb");
  EXPECT_TRUE(all_finite_floats(full.tensors)) << "a NaN step reached the weights";
  EXPECT_TRUE(full.header["metrics"]["val_loss"].is_number_float());
  EXPECT_EQ(n, 3) << "one batch an epoch holds the NaN sample";
  ASSERT_NE(k, 0u);
  // The weights before, after and one step after the NaN step k, each from a run of that length.
  std::vector<std::string> tensors;
  for (const std::uint64_t steps : {k - 1, k, k + 1}) {
    TempDir out;
    ASSERT_FALSE(
        train(out, data + std::vector<std::string>{"--knob", "training/control/max_epochs=3",
                                                   "--steps", std::to_string(steps)})
            .is_null());
    tensors.push_back(read_bundle(out / "bundle.tvb").tensors);
  }
  EXPECT_TRUE(tensors[1] == tensors[0]) << "step " << k << " had a NaN loss and changed weights";
  EXPECT_FALSE(tensors[2] == tensors[1]) << "step " << k + 1 << " had a finite loss and no update";
  EXPECT_TRUE(all_finite_floats(tensors[2]));
}

// ---- Checkpoints and resume ------------------------------------------------------------------

// checkpoint_every N: a checkpoint of step N, 2N, ... appears as each is reached, with the knob
// changed live. Sampled with the trainer stopped (SIGSTOP) at whatever step it has reached: the
// checkpoint on disk is then the last multiple of N at or below the last step reported, or the
// next step's when the trainer was stopped between writing it and reporting the step.
TEST(TrainerLive, CheckpointEveryNStepsAppearsAtEveryNthStep) {
  TempDir out;
  constexpr std::uint64_t kEvery = 7;
  LiveTrainer t("ckpt", {{"training/control/max_epochs", std::int64_t{100000}}});
  t.start(train_args(t.job(), out.str(), {}), out);
  ASSERT_TRUE(t.wait_step(20));
  ASSERT_TRUE(t.process().stop());
  EXPECT_FALSE(fs::exists(out / "checkpoint")) << "a checkpoint with checkpoint_every 0";
  t.process().cont();
  ASSERT_TRUE(t.set("training/control/checkpoint_every", std::int64_t{kEvery}).applied);
  std::uint64_t from = 0;  // the first step on revision 2
  ASSERT_TRUE(t.wait_until(
      [&] {
        for (const auto& p : t.points()) {
          if (p.config_revision == 2) return (from = p.step) > 0;
        }
        return false;
      },
      "a step with checkpoint_every set"));
  std::uint64_t sample = from + kEvery;
  for (int i = 0; i < 6; ++i, sample = t.last_step() + 3 + static_cast<std::uint64_t>(i)) {
    ASSERT_TRUE(t.wait_step(sample));
    ASSERT_TRUE(t.process().stop());
    t.poll();
    const std::uint64_t last = t.last_step();
    ASSERT_TRUE(fs::exists(out / "checkpoint" / "state.json")) << "no checkpoint at step " << last;
    const std::uint64_t at = read_state(out)["step"];
    const bool next_written = (last + 1) % kEvery == 0 && at == last + 1;
    EXPECT_TRUE(at == last / kEvery * kEvery || next_written)
        << "the checkpoint holds step " << at << " with the trainer stopped after step " << last;
    t.process().cont();
  }
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  ASSERT_EQ(t.wait_exit(), 3) << t.process().err();
  ASSERT_EQ(t.supervisor().missed(), 0u);
  for (const auto& p : t.points()) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    const bool due = p.config_revision >= 2 && p.step % kEvery == 0;
    EXPECT_EQ((p.flags & plugin::kTelemetryCheckpoint) != 0, due) << "step " << p.step;
  }
}

// What a resume must continue with: the tiny model on SGD with momentum or AdamW.
std::vector<std::string> resume_knobs(const std::string& optimizer) {
  return {"--knob", "training/optimizer/name=" + optimizer,
          "--knob", "training/optimizer/learning_rate=0.03",
          "--knob", "training/optimizer/momentum=0.8",
          "--knob", "training/control/max_epochs=100"};
}

class TrainerResume : public ::testing::TestWithParam<std::string> {};

// N steps straight, or N/2, a checkpoint and a resume for the rest: the same bundle, byte for
// byte. Any part the checkpoint fails to restore (weights, momentum buffers or Adam's moments
// and step counts, the position in the epoch, the config history) shows in the bytes. Split in
// the middle of an epoch and at its end (8 steps an epoch).
TEST_P(TrainerResume, ResumedRunEndsExactlyWhereTheStraightRunEnds) {
  const auto knobs = resume_knobs(GetParam());
  TempDir straight;
  ASSERT_FALSE(train(straight, knobs + std::vector<std::string>{"--steps", "29"}).is_null());
  const Bundle expected = read_bundle(straight / "bundle.tvb");
  for (const int split : {13, 16}) {
    SCOPED_TRACE("split at step " + std::to_string(split));
    TempDir out;
    ASSERT_FALSE(
        train(out, knobs + std::vector<std::string>{"--steps", std::to_string(split)}).is_null());
    const json state = read_state(out);
    EXPECT_EQ(state["step"], split);
    EXPECT_EQ(state["epoch"], split / 8);
    EXPECT_EQ(state["batch_in_epoch"], split % 8);
    EXPECT_EQ(state["optimizer"], GetParam());
    EXPECT_EQ(state["knobs"]["training/optimizer/learning_rate"], 0.03);
    const std::string half = read_bundle(out / "bundle.tvb").tensors;
    const json summary = train(out, knobs + std::vector<std::string>{"--resume", "--steps", "29"});
    ASSERT_FALSE(summary.is_null());
    EXPECT_EQ(summary["steps"], 29);
    const Bundle resumed = read_bundle(out / "bundle.tvb");
    EXPECT_FALSE(resumed.tensors == half) << "the resumed run did not train";
    EXPECT_TRUE(resumed.tensors == expected.tensors) << "the resumed run's weights differ";
    EXPECT_EQ(resumed.header, expected.header);
    EXPECT_TRUE(resumed.bytes == expected.bytes) << "the bundles differ";
  }
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainerResume, ::testing::Values("sgd", "adamw"));

// A plain --resume continues with the live config: the block's knobs and revision from the first
// resumed step, recorded in the config history from the step it resumed at.
TEST(TrainerLive, ResumeContinuesWithTheLiveKnobs) {
  TempDir out;
  ASSERT_FALSE(
      train(out, resume_knobs("sgd") + std::vector<std::string>{"--steps", "13"}).is_null());
  LiveTrainer t("resume-live", {{"training/optimizer/learning_rate", 0.011},
                                {"training/optimizer/momentum", 0.5},
                                {"training/control/max_epochs", std::int64_t{100}}});
  t.start(train_args(t.job(), out.str(), {"--resume", "--steps", "29"}), out);
  ASSERT_EQ(t.wait_exit(), 0) << t.process().err();
  ASSERT_EQ(t.points().size(), 29u - 13u + 1u);  // and the finished record
  EXPECT_EQ(t.points().front().step, 14u);
  for (const auto& p : t.points()) {
    EXPECT_EQ(p.learning_rate, 0.011) << "step " << p.step;
    EXPECT_EQ(p.config_revision, 1u) << "step " << p.step;
  }
  const json history = read_bundle(out / "bundle.tvb").header["config_history"];
  ASSERT_EQ(history.size(), 2u) << history.dump();
  EXPECT_EQ(history[0]["revision"], 0);
  EXPECT_EQ(history[0]["knobs"]["training/optimizer/learning_rate"], 0.03);
  EXPECT_EQ(history[1]["revision"], 1);
  EXPECT_EQ(history[1]["step"], 13);
  EXPECT_EQ(history[1]["knobs"]["training/optimizer/learning_rate"], 0.011);
  EXPECT_EQ(history[1]["knobs"]["training/optimizer/momentum"], 0.5);
  EXPECT_EQ(read_state(out)["knobs"]["training/optimizer/momentum"], 0.5);
}

// --resume-saved-config: the checkpoint's knobs win over the live ones, the optimizer's name
// included, so the run ends where the straight run on the saved knobs ends, byte for byte, while
// the block says otherwise. Without the flag, a live optimizer other than the checkpoint's is
// refused.
TEST(TrainerLive, ResumeSavedConfigKeepsTheCheckpointsKnobs) {
  const auto knobs = resume_knobs("sgd");
  TempDir straight, out;
  ASSERT_FALSE(train(straight, knobs + std::vector<std::string>{"--steps", "29"}).is_null());
  ASSERT_FALSE(train(out, knobs + std::vector<std::string>{"--steps", "13"}).is_null());
  LiveTrainer t("resume-saved", {{"training/optimizer/name", std::string("adamw")},
                                 {"training/optimizer/learning_rate", 0.011},
                                 {"training/optimizer/momentum", 0.5},
                                 {"training/control/batch_size", std::int64_t{32}},
                                 {"training/control/max_epochs", std::int64_t{100}}});
  {
    const Finished refused =
        run(train_args(t.job(), out.str(), {"--resume", "--steps", "29"}), out.path);
    EXPECT_EQ(refused.code, 2);
    EXPECT_NE(refused.err.find("--resume: the checkpoint used optimizer sgd, the config says "
                               "adamw"),
              std::string::npos)
        << refused.err;
  }
  t.start(train_args(t.job(), out.str(), {"--resume", "--resume-saved-config", "--steps", "29"}),
          out);
  ASSERT_EQ(t.wait_exit(), 0) << t.process().err();
  ASSERT_FALSE(t.points().empty());
  EXPECT_EQ(t.points().front().step, 14u);
  for (const auto& p : t.points()) {
    EXPECT_EQ(p.learning_rate, 0.03) << "step " << p.step;
    EXPECT_EQ(p.config_revision, 0u) << "the saved revision; step " << p.step;
  }
  const Bundle resumed = read_bundle(out / "bundle.tvb");
  const Bundle expected = read_bundle(straight / "bundle.tvb");
  EXPECT_EQ(resumed.header, expected.header);
  EXPECT_TRUE(resumed.bytes == expected.bytes) << "the bundles differ";
}

// SIGTERM at whatever step the trainer has reached: a checkpoint of exactly that step, exit 4,
// and a resume that ends where a straight run of as many steps ends.
TEST(TrainerLive, SigtermCheckpointsAndResumeContinues) {
  TempDir out, straight;
  LiveTrainer t("sigterm", {{"training/control/max_epochs", std::int64_t{100000}}});
  t.start(train_args(t.job(), out.str(), {}), out);
  ASSERT_TRUE(t.wait_step(20));
  ::kill(t.process().pid(), SIGTERM);
  ASSERT_EQ(t.wait_exit(), 4) << t.process().err();
  EXPECT_EQ(read_text(out / "exit_code"), "4\n");
  ASSERT_TRUE(fs::exists(out / "checkpoint" / "state.json")) << "no checkpoint after SIGTERM";
  const std::int64_t step = read_state(out)["step"];
  EXPECT_EQ(static_cast<std::uint64_t>(step), t.last_step()) << "checkpoint of another step";
  const std::vector<std::string> knobs = {"--knob", "training/control/max_epochs=100000", "--steps",
                                          std::to_string(step + 10)};
  const json summary = train(out, knobs + std::vector<std::string>{"--resume"});
  ASSERT_FALSE(summary.is_null());
  EXPECT_EQ(summary["steps"], step + 10);
  EXPECT_EQ(summary["reason"], "step cap");
  ASSERT_FALSE(train(straight, knobs).is_null());
  EXPECT_TRUE(read_bundle(out / "bundle.tvb").tensors ==
              read_bundle(straight / "bundle.tvb").tensors)
      << "resumed from step " << step << ", the weights differ from a straight run";
}

// ---- Exit codes and bad input ----------------------------------------------------------------

// Exit 1 is the trainer's own failure: here its output directory is gone (a file stands in its
// place) when it writes its final checkpoint.
TEST(TrainerLive, OwnFailureExitsOneWithTheReason) {
  TempDir logs;
  const fs::path out = logs / "out";
  LiveTrainer t("fail", {{"training/control/max_epochs", std::int64_t{100000}}});
  auto args = train_args(t.job(), out.string(), {});
  args.erase(std::find(args.begin(), args.end(), "--quiet"));
  t.start(args, logs);
  ASSERT_TRUE(t.wait_step(5));
  fs::remove_all(out);
  std::ofstream(out) << "not a directory\n";
  ASSERT_TRUE(t.set("training/control/early_stop", true).applied);
  EXPECT_EQ(t.wait_exit(), 1);
  const std::string err = t.process().err();
  EXPECT_NE(err.find("trainer: failed: "), std::string::npos) << err;
  EXPECT_NE(err.find("Not a directory"), std::string::npos) << err;
  EXPECT_NE(err.find(out.string() + "/checkpoint.tmp"), std::string::npos) << err;
}

TEST(TrainerCli, BadInputExitsTwoWithTheReason) {
  TempDir logs;
  const std::string absent = unique_job("absent");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--model", "no-such-model"}, "no model plugin named 'no-such-model'"},
      {{"--model", "tiny", "--param", "hiden=3"},
       "model 'tiny' has no parameter 'hiden' (did you mean 'hidden'?)"},
      {{"--model", "tiny", "--param", "hidden=0"},
       "model 'tiny' parameter 'hidden': 0 is below the minimum 1"},
      {{"--model", "tiny", "--job-id", "no/such"},
       "invalid job id 'no/such': character '/' at position 2 is not allowed"},
      {{"--model", "tiny", "--job-id", absent},
       "shared-memory block 'trainvisor." + absent + "' does not exist"},
      {{"--model", "tiny", "--knob", "training/optimizer/learning_rate=-1"},
       "trainer knobs parameter 'training/optimizer/learning_rate': -1 is below the minimum 0"},
      {{"--model", "tiny", "--resume", "--out", "/nonexistent/x"},
       "--resume: no checkpoint in /nonexistent/x/checkpoint"},
  };
  for (const auto& [args, reason] : cases) {
    const Finished f =
        run(std::vector<std::string>{TRAINVISOR, "train", "--quiet"} + args, logs.path);
    EXPECT_EQ(f.code, 2) << testing::PrintToString(args) << ":\n" << f.err;
    EXPECT_NE(f.err.find("trainvisor train: error: "), std::string::npos) << f.err;
    EXPECT_NE(f.err.find(reason), std::string::npos) << "expected '" << reason << "' in:\n"
                                                     << f.err;
  }
}

TEST(TrainerCli, CorruptDataFileIsNamed) {
  TempDir dir;
  for (const std::string f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    gzFile g = gzopen((dir.path / f).c_str(), "wb");
    const unsigned char header[] = {0, 0, 8, 3, 0, 0, 0, 100, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3};
    gzwrite(g, header, sizeof header);  // claims 100 images, holds 3 bytes
    gzclose(g);
  }
  const Finished f =
      run({TRAINVISOR, "train", "--model", "mlp", "--data-dir", dir.str()}, dir.path);
  EXPECT_EQ(f.code, 2) << f.err;
  EXPECT_NE(f.err.find(dir.str() + "/train-images-idx3-ubyte.gz"), std::string::npos) << f.err;
  EXPECT_NE(f.err.find("truncated in the data"), std::string::npos) << f.err;
}

TEST(TrainerCli, IdenticalInputsGiveIdenticalBundles) {
  TempDir a, b, c;
  for (const auto* d : {&a, &b})
    ASSERT_FALSE(train(*d, {"--max-epochs", "3"}).is_null());
  auto other_seed = train_args("", c.str(), {"--max-epochs", "3"});
  other_seed[6] = "8";  // the value of --seed
  ASSERT_EQ(run(other_seed, c.path).code, 0);
  const std::string ba = read_text(a / "bundle.tvb"), bb = read_text(b / "bundle.tvb");
  ASSERT_GT(ba.size(), 1000u);
  EXPECT_TRUE(ba == bb) << "same seed, different bytes";
  EXPECT_FALSE(ba == read_text(c / "bundle.tvb")) << "another seed, same bytes";
}

}  // namespace
}  // namespace tv
