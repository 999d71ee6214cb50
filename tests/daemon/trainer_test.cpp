// `trainvisor train` as a real process against a real block: live knobs applied at step
// boundaries, policies from real plugin libraries cutting the rate, exit codes, checkpoints,
// resume, reproducible bundles and refusals of bad input.
#include <gtest/gtest.h>
#include <signal.h>
#include <zlib.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "../shm/test_support.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv {
namespace {

namespace fs = std::filesystem;
using shm::test::Child;

struct TempDir {
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("tv-trainer-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string str() const { return path.string(); }
  fs::path path;
};

std::string unique_job(const std::string& tag) {
  static int n = 0;
  return "test-" + tag + "-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

std::vector<std::string> train_args(const std::string& job, const std::string& out,
                                    std::vector<std::string> extra) {
  std::vector<std::string> a = {TRAINVISOR, "train", "--model", "tiny", "--quiet", "--seed", "7"};
  if (!job.empty()) a.insert(a.end(), {"--job-id", job});
  if (!out.empty()) a.insert(a.end(), {"--out", out});
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// Drains the telemetry of a running trainer until it exits; `on_poll` may write config.
std::vector<plugin::TelemetryPoint> follow(Child& trainer, Supervisor& sup,
                                           const std::function<void()>& on_poll, int& exit_code,
                                           std::vector<SupervisorEvent>* events = nullptr) {
  int status = 0;
  const auto take = [&] {
    for (auto& e : sup.poll()) {
      if (events) events->push_back(std::move(e));
    }
  };
  while (::waitpid(trainer.pid(), &status, WNOHANG) == 0) {
    take();
    on_poll();
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  take();
  exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return sup.history();
}

class TrainerProcess : public ::testing::Test {
 protected:
  void TearDown() override {
    if (sink_) sink_->remove_block();
  }
  BlockConfigSink& make_sink(const std::string& job, plugin::ConfigView initial) {
    sink_ = std::make_unique<BlockConfigSink>(job, initial);
    return *sink_;
  }
  std::unique_ptr<BlockConfigSink> sink_;
};

TEST_F(TrainerProcess, LearningRateChangeAppliesAtAStepBoundaryWithItsRevision) {
  const std::string job = unique_job("lr");
  TempDir out;
  BlockConfigSink& sink = make_sink(job, {{"training/control/max_epochs", std::int64_t{400}}});
  Supervisor sup(
      shm::ConfigBlockReader::attach(sink.block_name(), shm::ConfigBlockReader::Access::kReadWrite),
      sink);
  Child trainer(train_args(job, out.str(), {}));
  bool changed = false, stopped = false;
  int code = -1;
  const auto history = follow(
      trainer, sup,
      [&] {
        const auto& h = sup.history();
        if (!changed && !h.empty() && h.back().step >= 40) {
          const auto r =
              sink.apply({{"training/optimizer/learning_rate", 0.0125, "test"}}, "human:test");
          ASSERT_TRUE(r.applied) << r.reason;
          ASSERT_EQ(r.revision, 2u);
          changed = true;
        }
        if (changed && !stopped && !h.empty() && h.back().config_revision == 2 &&
            h.back().step >= 120) {
          ASSERT_TRUE(
              sink.apply({{"training/control/early_stop", true, "test"}}, "human:test").applied);
          stopped = true;
        }
      },
      code);
  EXPECT_EQ(code, 3) << "early stop exit code";
  ASSERT_TRUE(changed && stopped);
  EXPECT_EQ(sup.missed(), 0u);
  std::uint64_t first_rev2 = 0;
  for (const auto& p : history) {
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
  ASSERT_GT(first_rev2, 40u);
  // The bundle records the step from which revision 2 applied.
  std::ifstream in(out.path / "bundle.tvb", std::ios::binary);
  std::string magic, len;
  std::getline(in, magic);
  std::getline(in, len);
  std::string text(std::stoul(len), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  const auto bundle = nlohmann::json::parse(text);
  EXPECT_EQ(magic, "TVBUNDLE1");
  ASSERT_GE(bundle["config_history"].size(), 3u);  // revision 1, 2, 3 (the stop)
  EXPECT_EQ(bundle["config_history"][1]["revision"], 2);
  EXPECT_EQ(bundle["config_history"][1]["step"].get<std::uint64_t>() + 1, first_rev2);
  EXPECT_EQ(bundle["metrics"]["stop_reason"], "early_stop");
}

TEST_F(TrainerProcess, PlateauPolicyFromItsPluginCutsTheRate) {
  const std::string job = unique_job("plateau");
  BlockConfigSink& sink = make_sink(job, {{"training/control/max_epochs", std::int64_t{40}},
                                          {"training/control/eval_every", std::int64_t{4}}});
  Supervisor sup(
      shm::ConfigBlockReader::attach(sink.block_name(), shm::ConfigBlockReader::Access::kReadWrite),
      sink);
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
  sup.add_policy("plateau", std::move(policy));
  Child trainer(train_args(job, "", {}));
  int code = -1;
  std::vector<SupervisorEvent> events;
  const auto history = follow(
      trainer, sup, [] {}, code, &events);
  EXPECT_EQ(code, 0);
  ASSERT_GE(sink.revision(), 2u) << "plateau never cut the rate";
  // Each revision's rate, as the policy wrote it.
  std::map<std::uint64_t, double> rate = {{1, 0.05}};
  for (const auto& e : events) {
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
  for (const auto& p : history) {
    ASSERT_GE(p.config_revision, rev) << "revision went back at step " << p.step;
    rev = p.config_revision;
    ASSERT_TRUE(rate.count(rev)) << "unknown revision " << rev;
    EXPECT_DOUBLE_EQ(p.learning_rate, rate[rev]) << "step " << p.step;
  }
  // A cut made from the last records may land after the trainer's last step.
  EXPECT_GE(rev, 2u) << "the trainer never applied a cut";
  EXPECT_LE(rev, sink.revision());
  EXPECT_LT(history.back().learning_rate, 0.05);
}

TEST_F(TrainerProcess, OutOfRangeValueIsRefusedAndTheLastGoodOneStays) {
  // A writer that bypasses the agent's validation, as a buggy agent would.
  const std::string job = unique_job("refuse");
  auto writer = shm::ConfigBlockWriter::open_or_create(
      shm::block_name_for_job(job), {},
      std::vector<shm::Entry>{{"training/control/max_epochs", shm::Value::i64(300)},
                              {std::string(knobs::kRevision), shm::Value::i64(1)}});
  auto reader =
      shm::ConfigBlockReader::attach(writer.name(), shm::ConfigBlockReader::Access::kReadWrite);
  auto telemetry = reader.telemetry_reader();
  Child trainer(train_args(job, "", {}));
  std::vector<shm::TelemetryRecord> buf(256);
  std::vector<shm::TelemetryRecord> all;
  bool written = false, stopped = false;
  int status = 0;
  while (::waitpid(trainer.pid(), &status, WNOHANG) == 0) {
    const auto r = telemetry.poll(buf);
    all.insert(all.end(), buf.begin(), buf.begin() + static_cast<long>(r.count));
    if (!written && !all.empty() && all.back().step > 20) {
      writer.apply(
          std::vector<shm::Entry>{{"training/optimizer/learning_rate", shm::Value::f64(50.0)},
                                  {std::string(knobs::kRevision), shm::Value::i64(2)}});
      written = true;
    }
    if (written && !stopped && !all.empty() && all.back().step > 60) {
      writer.apply(
          std::vector<shm::Entry>{{"training/control/early_stop", shm::Value::boolean(true)},
                                  {std::string(knobs::kRevision), shm::Value::i64(3)}});
      stopped = true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  const auto r = telemetry.poll(buf);
  all.insert(all.end(), buf.begin(), buf.begin() + static_cast<long>(r.count));
  shm::ConfigBlockWriter::remove(writer.name());
  ASSERT_TRUE(written && stopped);
  EXPECT_EQ(WEXITSTATUS(status), 3);
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

TEST_F(TrainerProcess, NonFiniteLossIsFlaggedAndTrainingGoesOn) {
  const std::string job = unique_job("nonfinite");
  // A rate and momentum at the top of their ranges blow tiny's loss up to infinity.
  BlockConfigSink& sink = make_sink(job, {{"training/optimizer/learning_rate", 10.0},
                                          {"training/optimizer/momentum", 0.999},
                                          {"training/control/batch_size", std::int64_t{8}},
                                          {"training/control/max_epochs", std::int64_t{3}}});
  Supervisor sup(
      shm::ConfigBlockReader::attach(sink.block_name(), shm::ConfigBlockReader::Access::kReadWrite),
      sink);
  Child trainer(train_args(job, "", {}));
  int code = -1;
  const auto history = follow(
      trainer, sup, [] {}, code);
  EXPECT_EQ(code, 0) << "a divergent run is the job's outcome, not the trainer's failure";
  std::size_t flagged = 0;
  for (const auto& p : history) {
    if (p.flags & plugin::kTelemetryFinished) continue;
    const bool non_finite = !std::isfinite(p.loss) || !std::isfinite(p.grad_norm);
    EXPECT_EQ(non_finite, (p.flags & plugin::kTelemetryNonFiniteLoss) != 0) << "step " << p.step;
    flagged += non_finite;
  }
  EXPECT_GT(flagged, 0u);
  EXPECT_EQ(history.back().step, 3u * 64u);  // every step still ran
}

TEST(TrainerCli, BadInputExitsTwoWithTheReason) {
  const auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), TRAINVISOR);
    Child c(args);
    c.read_facts();
    return c.wait();
  };
  EXPECT_EQ(run({"train", "--model", "no-such-model", "--quiet"}), 2);
  EXPECT_EQ(run({"train", "--model", "tiny", "--param", "hiden=3", "--quiet"}), 2);
  EXPECT_EQ(run({"train", "--model", "tiny", "--param", "hidden=0", "--quiet"}), 2);
  EXPECT_EQ(run({"train", "--model", "tiny", "--job-id", "no/such", "--quiet"}), 2);
  EXPECT_EQ(run({"train", "--model", "tiny", "--job-id", unique_job("absent"), "--quiet"}), 2);
  EXPECT_EQ(
      run({"train", "--model", "tiny", "--knob", "training/optimizer/learning_rate=-1", "--quiet"}),
      2);
  EXPECT_EQ(run({"train", "--model", "tiny", "--resume", "--out", "/nonexistent/x", "--quiet"}), 2);
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
  std::vector<std::string> args = {TRAINVISOR, "train", "--model", "mlp", "--data-dir", dir.str()};
  const std::string err_file = (dir.path / "stderr").string();
  const std::string cmd =
      "'" + args[0] + "' train --model mlp --data-dir '" + dir.str() + "' 2>'" + err_file + "'";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(err_file);
  const std::string err((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(err.find(dir.str() + "/train-images-idx3-ubyte.gz"), std::string::npos) << err;
  EXPECT_NE(err.find("truncated in the data"), std::string::npos) << err;
}

std::string sha_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

TEST(TrainerCli, IdenticalInputsGiveIdenticalBundles) {
  TempDir a, b, c;
  for (const auto* d : {&a, &b}) {
    Child t(train_args("", d->str(), {"--max-epochs", "3"}));
    t.read_facts();
    ASSERT_EQ(t.wait(), 0);
  }
  auto other_seed = train_args("", c.str(), {"--max-epochs", "3"});
  other_seed[6] = "8";  // the value of --seed
  Child t(other_seed);
  t.read_facts();
  ASSERT_EQ(t.wait(), 0);
  const std::string ba = sha_of(a.path / "bundle.tvb"), bb = sha_of(b.path / "bundle.tvb");
  ASSERT_GT(ba.size(), 1000u);
  EXPECT_TRUE(ba == bb) << "same seed, different bytes";
  EXPECT_FALSE(ba == sha_of(c.path / "bundle.tvb")) << "another seed, same bytes";
}

TEST(TrainerCli, SigtermCheckpointsAndResumeContinues) {
  TempDir out;
  Child t(train_args("", out.str(), {"--knob", "training/control/max_epochs=100000"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  ::kill(t.pid(), SIGTERM);
  t.read_facts();
  ASSERT_EQ(t.wait(), 4);
  std::ifstream in(out.path / "checkpoint" / "state.json");
  ASSERT_TRUE(in) << "no checkpoint after SIGTERM";
  const auto state = nlohmann::json::parse(in);
  const std::int64_t step = state["step"];
  ASSERT_GT(step, 0);
  Child r(train_args("", out.str(),
                     {"--resume", "--knob", "training/control/max_epochs=100000", "--steps",
                      std::to_string(step + 10)}));
  const auto facts = r.read_facts();
  ASSERT_EQ(r.wait(), 0);
  const auto summary = nlohmann::json::parse(r.transcript());
  EXPECT_EQ(summary["steps"], step + 10);
  EXPECT_EQ(summary["reason"], "step cap");
}

}  // namespace
}  // namespace tv
