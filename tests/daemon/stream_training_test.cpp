// `trainvisor train --segment ...` as a real process: a pipeline training on a window of a stream
// read from segment files, starting from given weights, and its evaluation.json, which scores the
// new model and the deployed one (--baseline) on the same evaluation data.
//
// Most tests start from weights this test writes into a bundle (the tiny model with identity
// layers), so that every prediction and loss is known here and the scores can be checked exactly:
// they show which samples were evaluated (the window's holdout and the evaluation set, nothing
// else) and that the weights were loaded. The coordinator's embedder (drift on embeddings) is
// checked on such a bundle too: the tiny model's embeddings are relu(fc1 x), known here.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "trainer_process.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/trainer/stored_models.hpp"

namespace tv {
namespace {

namespace fs = std::filesystem;
using namespace test_process;
using fleet::pipelines::SampleBatchData;
using nlohmann::json;

// The tiny model of these tests: 4 features, 4 hidden units, 4 class scores.
constexpr int kWidth = 4;
const std::vector<std::string> kTinyParams = {"--param",  "features=4", "--param",
                                              "hidden=4", "--param",    "classes=4"};
using Matrix = std::array<std::array<float, kWidth>, kWidth>;

struct Sample {
  std::array<float, kWidth> x{};
  std::int64_t label = 0;
};

// Known weights for the tiny model: logits = fc2 * relu(fc1 * x) with zero biases.
struct Weights {
  Matrix fc1{};
  Matrix fc2{};
};

Matrix identity() {
  Matrix m{};
  for (int i = 0; i < kWidth; ++i)
    m[i][i] = 1;
  return m;
}

// Class k's score is hidden unit k + 1 (mod 4): a model that predicts one class below the truth.
Matrix shifted() {
  Matrix m{};
  for (int i = 0; i < kWidth; ++i)
    m[i][(i + 1) % kWidth] = 1;
  return m;
}

std::array<double, kWidth> logits(const Weights& w, const Sample& s) {
  std::array<double, kWidth> hidden{}, out{};
  for (int i = 0; i < kWidth; ++i) {
    for (int j = 0; j < kWidth; ++j)
      hidden[i] += double{w.fc1[i][j]} * s.x[j];
    hidden[i] = std::max(0.0, hidden[i]);
  }
  for (int i = 0; i < kWidth; ++i) {
    for (int j = 0; j < kWidth; ++j)
      out[i] += double{w.fc2[i][j]} * hidden[j];
  }
  return out;
}

struct Expected {
  double accuracy = 0, macro_f1 = 0, loss = 0;
};

// What the trainer must report for `w` on `samples`, computed here independently.
Expected expected_scores(const Weights& w, const std::vector<Sample>& samples) {
  std::array<int, kWidth> tp{}, truth{}, predicted{};
  double loss = 0;
  for (const Sample& s : samples) {
    const auto z = logits(w, s);
    const int p = static_cast<int>(std::max_element(z.begin(), z.end()) - z.begin());
    double sum = 0;
    for (const double v : z)
      sum += std::exp(v);
    loss += std::log(sum) - z[s.label];
    ++truth[s.label];
    ++predicted[p];
    if (p == s.label) ++tp[p];
  }
  Expected e;
  double f1 = 0;
  int classes = 0;
  int correct = 0;
  for (int c = 0; c < kWidth; ++c) {
    correct += tp[c];
    if (truth[c] + predicted[c] == 0) continue;
    f1 += 2.0 * tp[c] / (truth[c] + predicted[c]);
    ++classes;
  }
  const double n = static_cast<double>(samples.size());
  return {correct / n, f1 / classes, loss / n};
}

// Stream sample `i`: it points at class i % 3 (a large feature there), and its label is that
// class except for every fourth sample. No sample points at or is labelled class 3, so a model
// with identity layers never predicts it and the macro-F1 leaves it out.
Sample stream_sample(std::int64_t i) {
  Sample s;
  const int pointed = static_cast<int>(i % 3);
  for (int k = 0; k < kWidth; ++k)
    s.x[k] = 0.2f;
  s.x[pointed] = 2.0f + 0.01f * static_cast<float>(i % 97);  // no two nearby samples alike
  s.label = i % 4 == 0 ? (pointed + 1) % 3 : pointed;
  return s;
}

// `samples` as a stream batch, row r at time `first_time` + r.
SampleBatchData batch_of(const std::vector<Sample>& samples, std::int64_t first_time = 0,
                         std::vector<std::int64_t> shape = {kWidth}) {
  SampleBatchData b;
  b.sample_shape = std::move(shape);
  b.rows = samples.size();
  for (std::size_t r = 0; r < samples.size(); ++r) {
    b.features.insert(b.features.end(), samples[r].x.begin(), samples[r].x.end());
    b.labels.push_back(samples[r].label);
    b.time_ns.push_back(first_time + static_cast<std::int64_t>(r));
  }
  return b;
}

void write_batch(const fs::path& file, const std::vector<Sample>& samples,
                 std::vector<std::int64_t> shape = {kWidth}) {
  std::ofstream(file, std::ios::binary)
      << fleet::pipelines::encode_batch(batch_of(samples, 0, std::move(shape)));
}

std::vector<Sample> stream_range(std::int64_t begin, std::int64_t end) {
  std::vector<Sample> out;
  for (std::int64_t i = begin; i < end; ++i)
    out.push_back(stream_sample(i));
  return out;
}

// A bundle of the tiny model holding `w`: the bundle of a one-epoch run with its tensors
// overwritten, so that its header is what the trainer writes.
fs::path write_bundle(const TempDir& dir, const std::string& name, const Weights& w) {
  const fs::path run_dir = dir / ("run-" + name);
  const Finished f = run(std::vector<std::string>{TRAINVISOR, "train", "--model", "tiny", "--quiet",
                                                  "--max-epochs", "1", "--out", run_dir.string()} +
                             kTinyParams,
                         dir.path);
  EXPECT_EQ(f.code, 0) << f.err;
  std::string bytes = read_text(run_dir / "bundle.tvb");
  const auto first = bytes.find('\n');
  const auto second = bytes.find('\n', first + 1);
  const std::size_t length = std::stoul(bytes.substr(first + 1, second - first - 1));
  const json header = json::parse(bytes.substr(second + 1, length));
  const std::size_t base = second + 1 + length;
  const std::array<float, kWidth> zeros{};
  for (const json& t : header["tensors"]) {
    const std::string tensor = t["name"];
    const float* src = tensor == "fc1.weight"   ? &w.fc1[0][0]
                       : tensor == "fc2.weight" ? &w.fc2[0][0]
                                                : zeros.data();
    std::memcpy(bytes.data() + base + t["offset"].get<std::size_t>(), src,
                t["bytes"].get<std::size_t>());
  }
  const fs::path out = dir / (name + ".tvb");
  std::ofstream(out, std::ios::binary) << bytes;
  return out;
}

// A stream of 120 samples from stream index 100 in three segment files of 40, and an evaluation
// set of 6 samples (stream_sample(1000..1005)).
struct Stream {
  explicit Stream(const TempDir& dir) {
    for (int f = 0; f < 3; ++f) {
      segments.push_back(dir / ("segment-" + std::to_string(f) + ".npy"));
      write_batch(segments.back(), stream_range(100 + 40 * f, 140 + 40 * f));
    }
    eval_set = dir / "eval-set.npy";
    write_batch(eval_set, stream_range(1000, 1006));
  }
  // The flags of a training on the window [110, 210) with 20% held out: [190, 210). `set`
  // replaces a flag's value (--segment: the one file instead of the stream's; "features" and
  // "classes": the model's parameter) or adds a flag.
  std::vector<std::string> args(const fs::path& out,
                                std::map<std::string, std::string> set = {}) const {
    std::map<std::string, std::string> flags = {{"--stream-first-sample", "100"},
                                                {"--window", "110:210"},
                                                {"--sample-shape", "4"},
                                                {"--classes", "4"},
                                                {"--holdout", "0.2"},
                                                {"features", "4"},
                                                {"hidden", "4"},
                                                {"classes", "4"}};
    for (auto& [flag, value] : set)
      flags[flag] = std::move(value);
    std::vector<std::string> a = {TRAINVISOR, "train", "--model", "tiny",      "--quiet",
                                  "--seed",   "7",     "--out",   out.string()};
    for (const char* param : {"features", "hidden", "classes"}) {
      a = a + std::vector<std::string>{"--param", std::string(param) + "=" + flags[param]};
      flags.erase(param);
    }
    if (const auto it = flags.find("--segment"); it == flags.end()) {
      for (const auto& s : segments)
        a = a + std::vector<std::string>{"--segment", s.string()};
    }
    for (const auto& [flag, value] : flags)
      a = a + std::vector<std::string>{flag, value};
    return a;
  }
  std::vector<fs::path> segments;
  fs::path eval_set;
};

json read_evaluation(const fs::path& out) {
  return json::parse(read_text(out / "evaluation.json"));
}

void expect_scores(const json& got, const Expected& want, const std::string& which) {
  ASSERT_TRUE(got.is_object()) << which << ": " << got;
  EXPECT_NEAR(got["accuracy"].get<double>(), want.accuracy, 1e-9) << which;
  EXPECT_NEAR(got["macro_f1"].get<double>(), want.macro_f1, 1e-9) << which;
  EXPECT_NEAR(got["loss"].get<double>(), want.loss, 1e-5) << which;
}

TEST(PipelineTraining, ZeroEpochsScoreTheStartingWeightsOnTheHoldoutAndTheSet) {
  TempDir dir;
  const Stream stream(dir);
  const Weights good{identity(), identity()};
  const Weights off{identity(), shifted()};
  const fs::path initial = write_bundle(dir, "good", good);
  const fs::path baseline = write_bundle(dir, "off", off);
  const fs::path out = dir / "out";
  const auto t0 = std::chrono::steady_clock::now();
  const Finished f = run(stream.args(out, {{"--eval-set", stream.eval_set.string()},
                                           {"--initial-weights", initial.string()},
                                           {"--baseline", baseline.string()},
                                           {"--stream-epochs", "0"}}),
                         dir.path);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(f.code, 0) << f.err;
  const json e = read_evaluation(out);
  EXPECT_EQ(e["window"], json::array({110, 210}));
  EXPECT_EQ(e["train_samples"], 80);
  EXPECT_EQ(e["holdout_samples"], 20);
  EXPECT_EQ(e["set_samples"], 6);
  EXPECT_EQ(e["eval_samples"], 26);
  EXPECT_EQ(e["epochs"], 0);
  // What the attempt spent: loading the model and data took CPU, and so did scoring two models;
  // no part took longer than the whole run.
  for (const char* key : {"train_cpu_s", "train_wall_s", "eval_cpu_s", "eval_wall_s"}) {
    ASSERT_TRUE(e["cost"][key].is_number()) << key << ": " << e.dump();
    EXPECT_GE(e["cost"][key].get<double>(), 0) << key;
    if (std::string(key).ends_with("wall_s")) {
      EXPECT_LT(e["cost"][key].get<double>(), seconds);
    }
  }
  EXPECT_GT(e["cost"]["train_cpu_s"].get<double>(), 0);
  // The holdout [190, 210) and the evaluation set.
  const auto evaluated = [](std::int64_t begin, std::int64_t end, bool with_set) {
    std::vector<Sample> out = stream_range(begin, end);
    if (with_set) {
      for (const Sample& s : stream_range(1000, 1006))
        out.push_back(s);
    }
    return out;
  };
  const Expected want_new = expected_scores(good, evaluated(190, 210, true));
  const Expected want_deployed = expected_scores(off, evaluated(190, 210, true));
  // The two models, a window one sample off, and the holdout without the set all score
  // differently: equal numbers say which weights were scored on which samples.
  ASSERT_NE(want_new.accuracy, want_deployed.accuracy);
  for (const Expected& other : {expected_scores(good, evaluated(189, 209, true)),
                                expected_scores(good, evaluated(191, 211, true)),
                                expected_scores(good, evaluated(190, 210, false))}) {
    ASSERT_GT(std::abs(other.loss - want_new.loss), 1e-4);
  }
  expect_scores(e["new"], want_new, "new");
  expect_scores(e["deployed"], want_deployed, "deployed");
  // The bundle is the starting weights.
  const std::string written = read_text(out / "bundle.tvb");
  const std::string given = read_text(initial);
  EXPECT_EQ(written.substr(written.size() - 2 * 4 * (16 + 4)),
            given.substr(given.size() - 2 * 4 * (16 + 4)));
}

TEST(PipelineTraining, SameBundleAsStartAndBaselineScoresTheSame) {
  TempDir dir;
  const Stream stream(dir);
  const fs::path bundle = write_bundle(dir, "off", {identity(), shifted()});
  const fs::path out = dir / "out";
  const Finished f = run(stream.args(out, {{"--initial-weights", bundle.string()},
                                           {"--baseline", bundle.string()},
                                           {"--stream-epochs", "0"},
                                           {"--holdout", "0.5"}}),
                         dir.path);
  ASSERT_EQ(f.code, 0) << f.err;
  const json e = read_evaluation(out);
  EXPECT_EQ(e["holdout_samples"], 50);
  EXPECT_EQ(e["set_samples"], 0);
  EXPECT_EQ(e["new"], e["deployed"]);
  expect_scores(e["new"], expected_scores({identity(), shifted()}, stream_range(160, 210)), "new");
}

// Separable data: the label is the largest of the first three features.
std::vector<Sample> separable(std::int64_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<Sample> out(static_cast<std::size_t>(n));
  for (Sample& s : out) {
    for (float& v : s.x)
      v = normal(gen);
    s.label = std::max_element(s.x.begin(), s.x.begin() + 3) - s.x.begin();
  }
  return out;
}

TEST(PipelineTraining, TrainingLearnsTheWindowAndBeatsABadBaseline) {
  TempDir dir;
  const fs::path segment = dir / "segment.npy";
  write_batch(segment, separable(600, 11));
  const fs::path baseline = write_bundle(dir, "off", {identity(), shifted()});
  const fs::path out = dir / "out";
  const Finished f = run(std::vector<std::string>{TRAINVISOR,
                                                  "train",
                                                  "--model",
                                                  "tiny",
                                                  "--quiet",
                                                  "--out",
                                                  out.string(),
                                                  "--segment",
                                                  segment.string(),
                                                  "--window",
                                                  "0:600",
                                                  "--sample-shape",
                                                  "4",
                                                  "--classes",
                                                  "3",
                                                  "--holdout",
                                                  "0.25",
                                                  "--baseline",
                                                  baseline.string(),
                                                  "--stream-epochs",
                                                  "20"} +
                             kTinyParams,
                         dir.path);
  ASSERT_EQ(f.code, 0) << f.err;
  const json summary = json::parse(f.out);
  EXPECT_EQ(summary["epochs"], 20);
  EXPECT_EQ(summary["reason"], "max_epochs");
  const json e = read_evaluation(out);
  EXPECT_EQ(e["train_samples"], 450);
  EXPECT_EQ(e["holdout_samples"], 150);
  EXPECT_EQ(e["epochs"], 20);
  for (const char* which : {"new", "deployed"}) {
    for (const char* metric : {"accuracy", "macro_f1"}) {
      const double v = e[which][metric];
      EXPECT_TRUE(v >= 0 && v <= 1) << which << " " << metric << " " << v;
    }
  }
  EXPECT_GE(e["new"]["accuracy"].get<double>(), 0.85) << e;
  EXPECT_LT(e["deployed"]["accuracy"].get<double>(), 0.5) << e;
  EXPECT_LT(e["new"]["loss"].get<double>(), e["deployed"]["loss"].get<double>()) << e;
  // The trainer's own last evaluation is the same data's.
  EXPECT_NEAR(summary["val_accuracy"].get<double>(), e["new"]["accuracy"].get<double>(), 1e-12);
}

TEST(PipelineTraining, BadInputIsRefusedWithTheFileAndTheReason) {
  TempDir dir;
  const Stream stream(dir);
  const fs::path out = dir / "out";
  std::ofstream(dir / "garbage.npy") << "not a segment\n";
  write_batch(dir / "wide.npy", {Sample{}}, {2, 2});
  Sample high = stream_sample(0);
  high.label = 3;
  write_batch(dir / "label3.npy", {stream_sample(0), high});
  const fs::path other = dir / "run-hidden5";
  ASSERT_EQ(
      run({TRAINVISOR, "train", "--model", "tiny", "--quiet", "--max-epochs", "1", "--out",
           other.string(), "--param", "features=4", "--param", "hidden=5", "--param", "classes=4"},
          dir.path)
          .code,
      0);
  const std::string hidden5 = (other / "bundle.tvb").string();
  const std::string garbage = (dir / "garbage.npy").string();
  const std::string none = (dir / "none.npy").string();
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>> cases = {
      {{{"--segment", none}}, "--segment " + none + ": cannot read it"},
      {{{"--segment", garbage}}, "--segment " + garbage + ": corrupt: "},
      {{{"--segment", (dir / "wide.npy").string()}},
       "wide.npy: its sample shape (2, 2) differs from --sample-shape (4)"},
      {{{"--segment", (dir / "label3.npy").string()}, {"--classes", "3"}},
       "label3.npy: row 1 has label 3, not below --classes 3"},
      {{{"--window", "100:221"}}, "--window 100:221: the segments cover stream samples [100, 220)"},
      {{{"--window", "99:150"}}, "--window 99:150: the segments cover stream samples [100, 220)"},
      {{{"--holdout", "1"}}, "--window 110:210: the training split is empty"},
      {{{"--holdout", "0"}}, "no evaluation data: --holdout is 0 and there is no --eval-set"},
      {{{"--eval-set", garbage}}, "--eval-set " + garbage + ": corrupt: "},
      {{{"--baseline", hidden5}},
       "--baseline " + hidden5 + ": its model parameter hidden is 5, this run's is 4"},
      {{{"--initial-weights", garbage}}, "--initial-weights " + garbage + ": not a bundle"},
      {{{"--sample-shape", "2,2"}}, "differs from --sample-shape (2, 2)"},
      {{{"features", "5"}}, "model 'tiny' does not take samples of --sample-shape (4)"},
      {{{"classes", "3"}}, "not one row of at least --classes 4"},
      {{{"--classes", "1"}}, "--classes 1: a classifier needs at least 2 classes"},
  };
  for (const auto& [set, reason] : cases) {
    const Finished f = run(stream.args(out, set), dir.path);
    EXPECT_EQ(f.code, 2) << testing::PrintToString(set) << ":\n" << f.err;
    EXPECT_NE(f.err.find("trainvisor train: error: "), std::string::npos) << f.err;
    EXPECT_NE(f.err.find(reason), std::string::npos) << "expected '" << reason << "' in:\n"
                                                     << f.err;
    EXPECT_FALSE(fs::exists(out / "bundle.tvb")) << testing::PrintToString(set);
    EXPECT_FALSE(fs::exists(out / "evaluation.json")) << testing::PrintToString(set);
  }
}

TEST(PipelineTraining, StreamFlagsAreRefusedWithoutWhatTheyNeed) {
  TempDir dir;
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--window", "0:10"}, "--window: it needs --segment"},
      {{"--baseline", "b.tvb"}, "--baseline: it needs --segment"},
      {{"--stream-epochs", "0"}, "--stream-epochs: it needs --segment"},
      {{"--segment", "s.npy", "--sample-shape", "4", "--classes", "3"},
       "--window: required with --segment"},
      {{"--segment", "s.npy", "--window", "0:x", "--sample-shape", "4", "--classes", "3"},
       "--window: '0:x': 'x' is not an integer"},
      {{"--segment", "s.npy", "--window", "0:4", "--sample-shape", "4,", "--classes", "3"},
       "--sample-shape: '4,': '' is not an integer"},
      {{"--segment", "s.npy", "--window", "0:4", "--sample-shape", "4", "--classes", "3",
        "--max-epochs", "2"},
       "--max-epochs: cannot go with --segment"},
      {{"--segment", "s.npy", "--window", "0:4", "--sample-shape", "4", "--classes", "3"},
       "--segment: a pipeline training writes its evaluation.json and needs --out"},
  };
  for (const auto& [extra, reason] : cases) {
    const Finished f =
        run(std::vector<std::string>{TRAINVISOR, "train", "--model", "tiny", "--quiet"} + extra,
            dir.path);
    EXPECT_EQ(f.code, 2) << testing::PrintToString(extra) << ":\n" << f.err;
    EXPECT_NE(f.err.find(reason), std::string::npos) << "expected '" << reason << "' in:\n"
                                                     << f.err;
  }
}

// The embedder gives the bundle's hidden layer for each sample, with the batch's labels and
// times; the initial model drawn from a seed is the same for the same seed and differs for
// another; what it cannot embed is an error naming the model and the reason.
TEST(ModelEmbedder, EmbedsSamplesAsTheDeployedModelSeesThem) {
  TempDir dir;
  const Weights w{shifted(), shifted()};  // the class scores are not the hidden layer
  const fs::path bundle = write_bundle(dir, "deployed", w);
  const fs::path garbage = dir / "garbage.tvb";
  std::ofstream(garbage) << "not a bundle";
  const PluginRegistry plugins = PluginRegistry::load({TV_PLUGIN_DIR});
  const auto artifact = [&](const std::string& digest) -> fs::path {
    if (digest == std::string(64, 'a')) return bundle;
    if (digest == std::string(64, 'b')) return garbage;
    throw std::runtime_error("no artifact " + digest + " in the store");
  };
  trainer::ModelEmbedder embedder(plugins, artifact);
  fleet::PipelineSpec p;
  p.name = "p";
  p.training.model = "tiny";
  // As the manifest gives them: the plugin's defaults are for the embedder to fill in.
  p.training.model_params = {
      {"features", std::int64_t{4}}, {"hidden", std::int64_t{4}}, {"classes", std::int64_t{4}}};
  p.training.seed = 7;
  const std::vector<Sample> samples = stream_range(0, 9);
  const SampleBatchData batch = batch_of(samples, 100);
  const SampleBatchData e = embedder.embed(p, std::string(64, 'a'), batch);
  ASSERT_EQ(e.rows, samples.size());
  EXPECT_EQ(e.sample_shape, (std::vector<std::int64_t>{kWidth}));
  EXPECT_EQ(e.labels, batch.labels);
  EXPECT_EQ(e.time_ns, batch.time_ns);
  for (std::size_t r = 0; r < samples.size(); ++r) {
    for (int i = 0; i < kWidth; ++i) {
      double h = 0;
      for (int j = 0; j < kWidth; ++j)
        h += double{w.fc1[i][j]} * samples[r].x[j];
      EXPECT_NEAR(e.features[r * kWidth + i], std::max(0.0, h), 1e-6) << r << "," << i;
    }
  }

  const SampleBatchData drawn = embedder.embed(p, "", batch);
  trainer::ModelEmbedder other(plugins, artifact);
  EXPECT_EQ(other.embed(p, "", batch), drawn);  // the seed's weights, in any process
  EXPECT_NE(drawn, e);
  p.training.seed = 8;
  EXPECT_NE(other.embed(p, "", batch).features, drawn.features);

  const auto refused = [&](const std::string& model, const SampleBatchData& b,
                           const std::string& reason) {
    try {
      embedder.embed(p, model, b);
      ADD_FAILURE() << "embedded with '" << model << "'";
    } catch (const std::runtime_error& err) {
      EXPECT_NE(std::string(err.what()).find(reason), std::string::npos)
          << "expected '" << reason << "' in: " << err.what();
    }
  };
  refused(std::string(64, 'c'), batch, "no artifact " + std::string(64, 'c'));
  refused(std::string(64, 'b'), batch, "not a bundle");
  SampleBatchData wide = batch;  // 3 features a sample: the model takes 4
  wide.sample_shape = {3};
  wide.features.resize(batch.rows * 3);
  refused(std::string(64, 'a'), wide,
          "model aaaaaaaaaaaa (tiny) does not take samples of shape (3)");
}

// A replay's scorer gives a stored model's scores on stream samples: the ones computed here from
// its known weights.
TEST(ModelScorer, ScoresAStoredModelOnStreamSamples) {
  TempDir dir;
  const Weights w{identity(), shifted()};
  const fs::path bundle = write_bundle(dir, "scored", w);
  const PluginRegistry plugins = PluginRegistry::load({TV_PLUGIN_DIR});
  trainer::ModelScorer scorer(plugins, [&](const std::string& digest) -> fs::path {
    if (digest == std::string(64, 'a')) return bundle;
    throw std::runtime_error("no artifact " + digest + " in the store");
  });
  for (const auto& [begin, end] : {std::pair{0, 40}, std::pair{100, 1300}}) {  // 2 batches
    const std::vector<Sample> samples = stream_range(begin, end);
    const trainer::ModelScores got = scorer.score(std::string(64, 'a'), batch_of(samples));
    const Expected want = expected_scores(w, samples);
    EXPECT_NEAR(got.accuracy, want.accuracy, 1e-12) << begin;
    EXPECT_NEAR(got.macro_f1, want.macro_f1, 1e-9) << begin;
    EXPECT_NEAR(got.loss, want.loss, 1e-5) << begin;
  }
  EXPECT_THROW(
      {
        try {
          scorer.score(std::string(64, 'a'), batch_of({}));
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("no labelled samples"), std::string::npos);
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(scorer.score(std::string(64, 'c'), batch_of(stream_range(0, 4))),
               std::runtime_error);
}

}  // namespace
}  // namespace tv
