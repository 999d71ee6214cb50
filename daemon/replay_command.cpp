#include "replay_command.hpp"

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <sstream>

#include "coordinator_command.hpp"
#include "plugins_command.hpp"
#include "stream_flags.hpp"
#include "trainvisor/core/version.hpp"
#include "trainvisor/fleet/replay/experiment.hpp"
#include "trainvisor/trainer/stored_models.hpp"

namespace tv::cli {
namespace {

namespace fs = std::filesystem;
using fleet::pipelines::ReplayError;

struct ReplayFlags {
  std::string manifest;
  std::string out;
  std::string schedule = "none";
  std::string split = "train";
  std::int64_t length = 0;  // 0: the split's
  std::uint64_t seed = 0;
  std::string sample_shape = "784";
  std::string recording;  // DATA_DIR:PIPELINE
  std::optional<std::string> start, stop;
  std::int64_t max_triggers = 0;
  std::int64_t batch = 500;
  std::int64_t window = 1000;
  bool resume = false;
  std::vector<std::string> plugin_dirs;
  std::vector<std::string> compare;  // more manifests, run over the same stream
};

// The source the flags name, checked before anything runs.
std::shared_ptr<const fleet::pipelines::ReplaySource> source_of(const ReplayFlags& f) {
  namespace p = fleet::pipelines;
  if (!f.recording.empty()) {
    const auto colon = f.recording.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == f.recording.size())
      throw ReplayError("--recording '" + f.recording + "': expected DATA_DIR:PIPELINE");
    return p::open_recorded_stream(f.recording.substr(0, colon), f.recording.substr(colon + 1));
  }
  p::FashionMnistOptions o;
  o.split = f.split;
  o.seed = f.seed;
  if (f.length > 0) o.length = f.length;
  o.sample_shape = parse_shape(f.sample_shape);
  o.drift = p::parse_drift_schedule(f.schedule);
  return p::open_fashion_mnist_stream(o);
}

void draw(const fleet::replay::Progress& p, bool tty) {
  const double share = p.total > 0 ? static_cast<double>(p.samples) / p.total : 1;
  if (tty) {
    const int filled = static_cast<int>(share * 30);
    std::fprintf(stderr, "\r[%-30s] %3d%% %lld/%lld samples, %lld firings, %-28.28s",
                 std::string(static_cast<std::size_t>(filled), '#').c_str(),
                 static_cast<int>(share * 100), static_cast<long long>(p.samples),
                 static_cast<long long>(p.total), static_cast<long long>(p.triggers),
                 p.doing.c_str());
  } else if (p.doing != "ingesting" || p.samples == p.total) {
    std::fprintf(stderr, "replay: %lld/%lld samples, %lld firings: %s\n",
                 static_cast<long long>(p.samples), static_cast<long long>(p.total),
                 static_cast<long long>(p.triggers), p.doing.c_str());
  }
}

// Library versions for the report's environment: "trainvisor 0.1.0\ncompiler: 12.2.0\nboost:
// 1.81" as `--version` gives them, and the model runtime's.
void add_versions(fleet::replay::ExperimentOptions& o) {
  std::istringstream report(version_report());
  for (std::string line; std::getline(report, line);) {
    const auto cut = line.find_first_of(": ");
    const auto value = line.find_first_not_of(": ", cut);
    if (cut != std::string::npos && value != std::string::npos)
      o.versions[line.substr(0, cut)] = line.substr(value);
  }
  std::map<std::string, std::string> runtime = trainer::model_runtime();
  o.blas = runtime["blas"];
  o.versions["libtorch"] = runtime["libtorch"];
}

// The manifests to run: MANIFEST and the --compare ones, each with the name its runs take when
// there are several (the file's stem) and its state directory.
struct Configuration {
  std::string manifest, name;
  fs::path state;
};

std::vector<Configuration> configurations(const ReplayFlags& f) {
  std::vector<Configuration> out{{f.manifest, "", fs::path(f.out) / "state"}};
  for (const std::string& m : f.compare) {
    const std::string stem = fs::path(m).stem().string();
    out.push_back({m, stem, fs::path(f.out) / ("state-" + stem)});
  }
  if (out.size() > 1) out.front().name = fs::path(f.manifest).stem().string();
  for (std::size_t i = 0; i < out.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (out[i].name == out[j].name)
        throw ReplayError("--compare: " + out[j].manifest + " and " + out[i].manifest +
                          " have one name, '" + out[i].name + "': rename one");
    }
  }
  return out;
}

int run_replay(const ReplayFlags& f) {
  const auto source = source_of(f);
  fleet::replay::ExperimentOptions o;
  o.source = source;
  o.range = fleet::pipelines::resolve_range(*source, f.start, f.stop);
  o.batch_size = f.batch;
  o.max_triggers = f.max_triggers;
  o.window = f.window;
  o.plugin_dirs = f.plugin_dirs;
  o.seed = f.seed;
  add_versions(o);
  o.make_embedder = model_embedder_maker();
  const std::vector<Configuration> configs = configurations(f);
  const PluginRegistry plugins = load_plugins(f.plugin_dirs);
  const bool tty = ::isatty(2);
  o.on_progress = [tty](const fleet::replay::Progress& p) { draw(p, tty); };
  std::vector<fleet::replay::RunReport> runs;
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Configuration& c = configs[i];
    o.manifest = c.manifest;
    o.state_dir = c.state;
    // A replay killed before it reached a compared manifest starts that one afresh.
    o.resume = f.resume && (i == 0 || fs::exists(c.state / "coordinator"));
    trainer::ModelScorer scorer(plugins, [state = c.state](const std::string& digest) {
      return fleet::replay::models_dir(state) / (digest + ".tvb");
    });
    o.score = [&scorer](const std::string& digest, const fleet::pipelines::SampleBatchData& d) {
      const trainer::ModelScores s = scorer.score(digest, d);
      return fleet::replay::Scores{s.accuracy, s.macro_f1, s.loss};
    };
    if (configs.size() > 1) std::fprintf(stderr, "replay: %s\n", c.manifest.c_str());
    for (fleet::replay::RunReport& r : fleet::replay::run_experiment(o)) {
      if (!c.name.empty()) {
        r.run = c.name + "/" + r.run;
        for (fleet::replay::TriggerRow& t : r.triggers)
          t.run = r.run;
      }
      runs.push_back(std::move(r));
    }
    if (tty) std::fputs("\n", stderr);
  }
  for (const auto& r : runs) {
    const fs::path dir = fs::path(f.out) / r.run;
    fs::create_directories(dir);
    fleet::replay::write_run_report(dir, r);
    const fleet::replay::Totals t = fleet::replay::totals(r);
    std::printf(
        "%-20s %3lld firings, %3lld deployed, mean accuracy %s, %.1f CPU s  (%s)\n", r.run.c_str(),
        static_cast<long long>(t.triggers), static_cast<long long>(t.deployed),
        t.mean_accuracy ? std::to_string(*t.mean_accuracy).c_str() : "-", t.cpu_s, dir.c_str());
  }
  if (runs.size() > 1) fleet::replay::write_comparison(f.out, runs);
  return 0;
}

}  // namespace

void add_replay_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "replay", "Run a manifest's pipelines over a recorded stream at simulated time, and report");
  auto f = std::make_shared<ReplayFlags>();
  cmd->add_option("MANIFEST", f->manifest, "The manifest: its [[pipelines]]")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", f->out, "Where the report and the replay's state go")->required();
  cmd->add_option("--schedule", f->schedule,
                  "Fashion-MNIST's drift: none, rotate(degrees=15, every=2000), "
                  "class_incremental(groups=0-1/2-3, every=6000), label_shift(classes=0-1, "
                  "mass=0.8, from=10000, to=30000), permute(from=20000)");
  cmd->add_option("--split", f->split, "Fashion-MNIST's split: train or t10k");
  cmd->add_option("--length", f->length, "Samples in the stream (default: the split's)");
  cmd->add_option("--seed", f->seed, "The stream's order and drift draws");
  cmd->add_option("--sample-shape", f->sample_shape, "One sample's shape: 784 or 1,28,28");
  cmd->add_option("--recording", f->recording,
                  "Replay what a coordinator stored for a pipeline: DATA_DIR:PIPELINE");
  cmd->add_option("--start", f->start, "First sample: an index, or a stream time (90s, 30m, 2h)");
  cmd->add_option("--stop", f->stop, "End (exclusive), as --start");
  cmd->add_option("--max-triggers", f->max_triggers, "End after the batch that reaches it")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch", f->batch, "Samples per ingested batch")->check(CLI::PositiveNumber);
  cmd->add_option("--window", f->window, "Samples per evaluation window")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--compare", f->compare,
                  "More manifests to run over the same stream, compared with MANIFEST")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--resume", f->resume, "Go on with the replay whose state is in --out");
  cmd->add_option("--plugin-dir", f->plugin_dirs, "Extra plugin directory");
  cmd->callback([f] {
    try {
      const int code = run_replay(*f);
      if (code != 0) throw CLI::RuntimeError(code);
    } catch (const ReplayError& e) {
      throw std::invalid_argument(e.what());  // bad input: nothing ran, or a pipeline stopped
    }
  });
}

}  // namespace tv::cli
