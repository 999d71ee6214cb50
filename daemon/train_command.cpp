#include "train_command.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <stdexcept>

#include "plugins_command.hpp"
#include "stream_flags.hpp"
#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/trainer_exit_code.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/trainer/recorded_run.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::cli {
namespace {

// --replay-config: the bundle's run replaces the options; a flag the command line gave must
// agree with it. Throws trainer::BadInput, or CLI::ValidationError for a flag a replay excludes.
void apply_replay(const CLI::App& cmd, const std::string& bundle, trainer::TrainerOptions& o) {
  const std::pair<const char*, const char*> excluded[] = {
      {"--job-id", "a replay reads no block: its knobs follow the bundle's config history"},
      {"--knob", "its knobs follow the bundle's config history"},
      {"--orphan-after", "a replay has no config agent to watch"},
      {"--lease-attempt", "a replay reads no block"},
      {"--lease-digest", "a replay reads no block"},
      {"--resume", "a replay runs the recorded job from step 0"},
      {"--resume-saved-config", "a replay runs the recorded job from step 0"}};
  for (const auto& [flag, why] : excluded) {
    if (cmd.count(flag) > 0)
      throw CLI::ValidationError("--replay-config",
                                 std::string(flag) + " cannot go with it: " + why);
  }
  std::set<std::string> given;
  for (const char* flag : {"--model", "--param", "--seed", "--steps", "--max-epochs",
                           "--max-train-samples", "--max-val-samples"}) {
    if (cmd.count(flag) > 0) given.insert(flag);
  }
  trainer::apply_recorded_run(trainer::read_recorded_run(bundle), bundle, given, o);
}

}  // namespace

plugin::ParamValue parse_param_value(const std::string& t) {
  if (t == "true") return true;
  if (t == "false") return false;
  std::int64_t i = 0;
  if (auto r = std::from_chars(t.data(), t.data() + t.size(), i);
      r.ec == std::errc() && r.ptr == t.data() + t.size()) {
    return i;
  }
  double d = 0;
  if (auto r = std::from_chars(t.data(), t.data() + t.size(), d);
      r.ec == std::errc() && r.ptr == t.data() + t.size()) {
    return d;
  }
  return t;
}

std::pair<std::string, plugin::ParamValue> parse_assignment(const std::string& text,
                                                            const std::string& flag) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) {
    throw std::invalid_argument(flag + " '" + text + "': expected KEY=VALUE");
  }
  return {text.substr(0, eq), parse_param_value(text.substr(eq + 1))};
}

std::string max_epochs_help() {
  return std::string("Epochs to train: sets ") + knobs::kMaxEpochs + " (default " +
         param_value_text(knobs::find(knobs::kMaxEpochs)->default_value) +
         "), which policies and config writes may change while it runs";
}

void set_max_epochs(std::int64_t max_epochs, const std::string& knob_flag,
                    plugin::ConfigView& knobs) {
  if (max_epochs == 0) return;
  const plugin::ParamValue wanted = max_epochs;
  const auto [given, fresh] = knobs.emplace(knobs::kMaxEpochs, wanted);
  if (!fresh && given->second != wanted) {
    throw std::invalid_argument("--max-epochs " + std::to_string(max_epochs) + " and " + knob_flag +
                                " " + knobs::kMaxEpochs + "=" + param_value_text(given->second) +
                                " disagree: give one of them");
  }
}

void add_train_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("train", "Run one training job: the process a host daemon spawns per job");
  auto o = std::make_shared<trainer::TrainerOptions>();
  auto params = std::make_shared<std::vector<std::string>>();
  auto knob_args = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--model", o->model, "Model plugin name (required unless --replay-config)");
  cmd->add_option("--job-id", o->job_id,
                  "Job id: attach to its block trainvisor.<id> for live knobs and telemetry");
  cmd->add_option("--param", *params, "Model parameter KEY=VALUE (repeatable)");
  cmd->add_option("--knob", *knob_args,
                  "Initial knob KEY=VALUE, e.g. training/optimizer/learning_rate=0.01 (repeatable; "
                  "the block's values win)");
  cmd->add_option("--out", o->out_dir, "Directory for checkpoint/ and bundle.tvb");
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--steps", o->max_steps, "Stop after this many steps (0: no cap)");
  auto max_epochs = std::make_shared<std::int64_t>(0);
  cmd->add_option("--max-epochs", *max_epochs,
                  max_epochs_help() + "; with --job-id the block's value wins, as for --knob")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--resume", o->resume, "Continue from OUT/checkpoint");
  cmd->add_flag("--resume-saved-config", o->resume_saved_config,
                "On resume, the checkpoint's knobs (the optimizer's name included) win over the "
                "live ones");
  cmd->add_option("--data-dir", o->data.data_dir,
                  "Data set directory (the model's default if unset)");
  cmd->add_option("--max-train-samples", o->data.max_train_samples,
                  "Use at most N training samples");
  cmd->add_option("--max-val-samples", o->data.max_val_samples, "Use at most N validation samples");
  cmd->add_option("--threads", o->threads, "Intra-op threads (1 is deterministic)");
  auto orphan_s = std::make_shared<double>(0);
  cmd->add_option("--orphan-after", *orphan_s,
                  "Checkpoint and stop when the block's heartbeat is older than this many seconds "
                  "(its host daemon is gone); 0: never")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--lease-attempt", o->lease_attempt,
                  "The claim's attempt this trainer runs for (with --lease-digest): it checkpoints "
                  "and stops as soon as its block belongs to another lease");
  cmd->add_option("--lease-digest", o->lease_digest,
                  "The digest (64 hex digits) of the lease token this trainer runs for, as its "
                  "host daemon stamps it into the block; never the token itself");
  cmd->add_flag("--quiet{false}", o->log, "No progress lines on stderr");
  auto replay = std::make_shared<std::string>();
  cmd->add_option("--replay-config", *replay,
                  "Re-run the job BUNDLE records with its exact config history (how a supervised "
                  "run is reproduced: the new bundle is byte-identical)")
      ->option_text("BUNDLE");
  auto stream = std::make_shared<StreamFlags>();
  add_stream_flags(*cmd, *stream);
  auto dirs = std::make_shared<std::vector<std::string>>();
  add_plugin_dir_option(*cmd, *dirs);
  cmd->callback([cmd, o, params, knob_args, dirs, orphan_s, max_epochs, replay, stream] {
    if (o->model.empty() && replay->empty()) throw CLI::RequiredError("--model");
    o->stream = stream_data(*cmd, *stream);
    o->orphan_after = std::chrono::milliseconds(static_cast<std::int64_t>(*orphan_s * 1000));
    for (const auto& p : *params)
      o->model_params.insert(parse_assignment(p, "--param"));
    for (const auto& k : *knob_args)
      o->knobs.insert(parse_assignment(k, "--knob"));
    set_max_epochs(*max_epochs, "--knob", o->knobs);
    o->plugin_dirs = *dirs;
    if (!replay->empty()) {
      try {
        apply_replay(*cmd, *replay, *o);
      } catch (const trainer::BadInput& e) {
        // Refused before anything is written: --out stays as it was.
        std::fprintf(stderr, "trainvisor train: error: %s\n", e.what());
        throw CLI::RuntimeError(exit_status(TrainerExitCode::kBadInput));
      }
    }
    trainer::install_sigterm_handler();
    TrainerExitCode code = TrainerExitCode::kFailed;
    try {
      code = trainer::TrainingSession::open(*o)->run();
    } catch (const trainer::BadInput& e) {
      std::fprintf(stderr, "trainvisor train: error: %s\n", e.what());
      code = TrainerExitCode::kBadInput;
    }
    // A host daemon that restarted while this trainer ran is not its parent and cannot wait for
    // it: the exit code is left where it looks.
    if (!o->out_dir.empty()) {
      const JobFolder folder{o->out_dir};
      std::error_code ec;
      std::filesystem::create_directories(folder.root, ec);
      std::ofstream(JobFolder::staging(folder.exit_code())) << exit_status(code) << "\n";
      std::filesystem::rename(JobFolder::staging(folder.exit_code()), folder.exit_code(), ec);
    }
    if (code != TrainerExitCode::kCompleted) throw CLI::RuntimeError(exit_status(code));
  });
}

}  // namespace tv::cli
