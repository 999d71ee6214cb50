#include "local_command.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>
#include <thread>

#include "plugins_command.hpp"
#include "signal_watch.hpp"
#include "train_command.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/fleet/trainer_process.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct LocalOptions {
  std::string model;
  std::vector<std::string> params;
  std::vector<std::string> sets;
  std::vector<std::string> policies;
  std::vector<std::string> plugin_dirs;
  std::string out_dir;
  std::string job_id;
  std::uint64_t seed = 0;
  std::int64_t steps = 0;
  std::int64_t max_epochs = 0;
  std::int64_t max_train_samples = 0;
  std::int64_t max_val_samples = 0;
  int interval_ms = 100;
  std::string output = "text";
  bool resume = false;
  bool overwrite = false;
};

// How long a stopping trainer has to write its checkpoint before SIGKILL (the host daemon's
// default kill grace).
constexpr std::chrono::seconds kTrainerStopGrace{20};

// "plateau" or "plateau:patience=2,factor=0.5"
std::pair<std::string, plugin::Params> parse_policy(const std::string& spec) {
  const auto colon = spec.find(':');
  std::pair<std::string, plugin::Params> out{spec.substr(0, colon), {}};
  if (colon == std::string::npos) return out;
  std::string rest = spec.substr(colon + 1);
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    out.second.insert(parse_assignment(rest.substr(0, comma), "--policy " + out.first));
    rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
  }
  return out;
}

std::string describe(const SupervisorEvent& e) {
  std::string s = e.actor + " at step " + std::to_string(e.step) + ":";
  for (const auto& w : e.writes) {
    s += " " + w.path + " -> " + param_value_text(w.value) + " (" + w.reason + ")";
  }
  if (e.writes.empty() && !e.stop_reason.empty()) s += " " + e.stop_reason;
  if (!e.note.empty()) s += " " + e.note;
  if (!e.writes.empty()) {
    s += e.outcome.applied ? " [revision " + std::to_string(e.outcome.revision) + "]"
                           : " [refused: " + e.outcome.reason + "]";
  }
  return s;
}

struct LocalPolicy {
  std::string name;
  std::unique_ptr<plugin::Policy> policy;
  HumanGrace grace;
};

std::vector<LocalPolicy> create_policies(const PluginRegistry& registry,
                                         const std::vector<std::string>& specs) {
  std::vector<LocalPolicy> policies;
  for (const std::string& spec : specs) {
    auto [name, given] = parse_policy(spec);
    plugin::PolicyPlugin* pp = nullptr;
    try {
      pp = &registry.policy(name);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(e.what());
    }
    // human_grace_evals/steps are the supervisor's keys, as in a manifest.
    std::vector<plugin::ParamSpec> schema = pp->describe().params;
    for (plugin::ParamSpec& g : human_grace_params())
      schema.push_back(std::move(g));
    plugin::Params params = resolve_params(schema, given, "policy '" + name + "'");
    const HumanGrace grace = take_human_grace(params);
    std::string error;
    auto policy = pp->create(params, error);
    if (!policy)
      throw std::invalid_argument("policy '" + name + "' could not be created: " + error);
    policies.push_back({name, std::move(policy), grace});
  }
  return policies;
}

// A second run into an --out that holds an earlier run's checkpoint or bundle would replace them
// unasked: it must say whether it continues that run or starts over. Throws
// std::invalid_argument, and touches nothing.
void check_out_dir(const LocalOptions& o) {
  if (o.out_dir.empty()) {
    if (o.resume)
      throw std::invalid_argument("--resume needs --out, the folder whose checkpoint it continues");
    return;
  }
  const JobFolder folder{o.out_dir};
  if (o.resume) {
    if (!fs::exists(folder.checkpoint_state())) {
      throw std::invalid_argument("--resume: " + o.out_dir + " holds no checkpoint (no " +
                                  folder.checkpoint_state().string() + ")");
    }
    return;
  }
  const bool checkpoint = fs::exists(folder.checkpoint());
  const bool bundle = fs::exists(folder.bundle());
  if (o.overwrite || (!checkpoint && !bundle)) return;
  const std::string held = checkpoint && bundle ? "checkpoint/ and bundle.tvb"
                           : checkpoint         ? "checkpoint/"
                                                : "bundle.tvb";
  throw std::invalid_argument("--out " + o.out_dir + " holds an earlier run's " + held +
                              ": --resume continues that run, --overwrite starts over and "
                              "replaces them");
}

// --overwrite: the earlier run's files go before the trainer starts, so that the folder never
// holds parts of two runs.
void clear_earlier_run(const JobFolder& folder) {
  fs::remove_all(folder.checkpoint());
  fs::remove_all(folder.checkpoint_staging());
  fs::remove(folder.bundle());
  fs::remove(folder.exit_code());
}

plugin::ConfigView initial_config(const LocalOptions& o) {
  plugin::ConfigView initial;
  for (const std::string& s : o.sets)
    initial.insert(parse_assignment(s, "--set"));
  set_max_epochs(o.max_epochs, "--set", initial);
  return initial;
}

fleet::TrainerCommand trainer_command(const LocalOptions& o, const std::string& job) {
  fleet::TrainerCommand c;
  c.executable = std::filesystem::read_symlink("/proc/self/exe").string();
  c.job_id = job;
  c.model = o.model;
  c.out_dir = o.out_dir;
  c.seed = o.seed;
  c.params = o.params;
  c.plugin_dirs = o.plugin_dirs;
  c.steps = o.steps;
  c.max_epochs = o.max_epochs;
  c.max_train_samples = o.max_train_samples;
  c.max_val_samples = o.max_val_samples;
  c.resume = o.resume;
  // This process beats the block's heartbeat at every turn of its loop. Killed without a chance
  // to stop its trainer (SIGKILL), the trainer checkpoints and stops on its own once the beat is
  // this old, rather than training on unsupervised.
  c.orphan_after = std::max<std::chrono::milliseconds>(
      std::chrono::seconds(10), std::chrono::milliseconds(20 * o.interval_ms));
  c.quiet = o.output == "json";
  return c;
}

// The trainer's stdout, a pipe: its one summary line (a JSON object) joins this command's
// summary, anything else it prints goes on to stderr as it comes. Read by the supervising
// thread, without blocking.
class TrainerOutput {
 public:
  TrainerOutput() {
    if (::pipe2(fds_, O_CLOEXEC) != 0 || ::fcntl(fds_[0], F_SETFL, O_NONBLOCK) != 0)
      throw std::system_error(errno, std::generic_category(), "cannot make the trainer's pipe");
  }
  ~TrainerOutput() {
    for (const int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  TrainerOutput(const TrainerOutput&) = delete;
  TrainerOutput& operator=(const TrainerOutput&) = delete;

  int write_end() const { return fds_[1]; }
  // Once the trainer holds the write end: the pipe's end of file is then the trainer's.
  void close_write_end() {
    ::close(fds_[1]);
    fds_[1] = -1;
  }
  // Takes every whole line that has arrived.
  void drain() {
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(fds_[0], buf, sizeof buf)) > 0) {
      pending_.append(buf, static_cast<std::size_t>(n));
      for (auto nl = pending_.find('\n'); nl != std::string::npos; nl = pending_.find('\n')) {
        take(pending_.substr(0, nl));
        pending_.erase(0, nl + 1);
      }
    }
  }
  // After the trainer has ended: the rest, an unfinished last line included.
  void finish() {
    drain();
    if (!pending_.empty()) take(std::exchange(pending_, {}));
  }
  // Its summary (result, reason, steps, epochs, metrics, bundle); null when it printed none (it
  // was interrupted or failed).
  const json& summary() const { return summary_; }

 private:
  void take(const std::string& line) {
    json j = json::parse(line, nullptr, false);
    if (j.is_object()) {
      summary_ = std::move(j);
    } else {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }

  int fds_[2] = {-1, -1};
  std::string pending_;
  json summary_;
};

json event_json(const SupervisorEvent& e) {
  json writes = json::array();
  for (const auto& w : e.writes)
    writes.push_back(
        {{"path", w.path}, {"value", param_value_text(w.value)}, {"reason", w.reason}});
  return {{"actor", e.actor},
          {"step", e.step},
          {"writes", writes},
          {"stop", e.stop},
          {"applied", e.outcome.applied},
          {"revision", e.outcome.revision},
          {"refused", e.outcome.reason},
          {"note", e.note}};
}

json summary_json(const std::string& job, int code, const Supervisor& supervisor,
                  std::uint64_t revision, json events, json trainer) {
  const auto& h = supervisor.history();
  const plugin::TelemetryPoint* last_eval = nullptr;
  for (auto it = h.rbegin(); it != h.rend() && !last_eval; ++it) {
    if (it->flags & plugin::kTelemetryEval) last_eval = &*it;
  }
  return {{"job_id", job},
          {"trainer_exit_code", code},
          {"steps", h.empty() ? 0 : h.back().step},
          {"telemetry_records", h.size()},
          {"telemetry_missed", supervisor.missed()},
          {"val_loss", last_eval ? json(last_eval->val_loss) : json(nullptr)},
          {"val_accuracy", last_eval ? json(last_eval->val_accuracy) : json(nullptr)},
          {"learning_rate", h.empty() ? json(nullptr) : json(h.back().learning_rate)},
          {"config_revision", revision},
          {"events", std::move(events)},
          {"trainer", std::move(trainer)}};
}

// The summary for a person: one line on stdout, like `train`'s.
std::string summary_text(const json& s, const std::string& out_dir) {
  std::string out = "local: ";
  const json& t = s["trainer"];
  if (t.is_object()) {
    out += t.value("result", "finished") + " (" + t.value("reason", "") + ") at step " +
           std::to_string(t.value("steps", 0)) + ", epoch " + std::to_string(t.value("epochs", 0));
  } else {
    const int code = s["trainer_exit_code"];
    out += "trainer exited " + std::to_string(code);
    if (code == exit_status(TrainerExitCode::kInterrupted)) {
      out += out_dir.empty()
                 ? " (interrupted)"
                 : " (interrupted, checkpoint in " + JobFolder{out_dir}.checkpoint().string() + ")";
    }
    out += " at step " + std::to_string(s["steps"].get<std::uint64_t>());
  }
  if (!s["val_loss"].is_null()) {
    char metrics[96];
    std::snprintf(metrics, sizeof metrics, ": val_loss %.4f, val_accuracy %.4f",
                  s["val_loss"].get<double>(), s["val_accuracy"].get<double>());
    out += metrics;
  }
  out += "; config revision " + std::to_string(s["config_revision"].get<std::uint64_t>()) + ", " +
         std::to_string(s["events"].size()) + " supervisor events";
  if (t.is_object() && !t.value("bundle", "").empty()) out += "; bundle " + t.value("bundle", "");
  return out;
}

// Stops a trainer that is still running when the run ends early (an exception): it checkpoints,
// and is reaped, killed once kTrainerStopGrace has passed.
void stop_trainer(fleet::TrainerProcess& trainer) noexcept {
  try {
    trainer.terminate(kTrainerStopGrace);
    while (!trainer.poll())
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "local: cannot stop the trainer (pid %d): %s\n", trainer.pid(), e.what());
  }
}

// Supervises the trainer until it ends: policies on its telemetry, the block's heartbeat, its
// output; a signal (a hangup, Ctrl-C, SIGTERM) stops it cleanly. Returns its exit code.
int supervise(const LocalOptions& o, fleet::TrainerProcess& trainer, SignalWatch& signals,
              Supervisor& supervisor, BlockConfigSink& sink, TrainerOutput& output, json& events) {
  const auto handle = [&](const std::vector<SupervisorEvent>& evs) {
    for (const auto& e : evs) {
      if (o.output == "text") std::fprintf(stderr, "supervisor: %s\n", describe(e).c_str());
      events.push_back(event_json(e));
    }
  };
  std::optional<int> code;
  while (!(code = trainer.poll())) {
    handle(supervisor.poll());
    sink.heartbeat();
    output.drain();
    if (const int sig = signals.wait_for(std::chrono::milliseconds(o.interval_ms))) {
      if (!trainer.terminating()) {
        std::fprintf(stderr, "local: SIG%s: stopping the trainer (it writes a checkpoint)\n",
                     ::sigabbrev_np(sig));
      }
      trainer.terminate(kTrainerStopGrace);
    }
  }
  handle(supervisor.poll());
  output.finish();
  return *code;
}

int run_local(const LocalOptions& o) {
  // From here on a hangup, Ctrl-C or SIGTERM is a value the loop reads: it stops the trainer and
  // removes the block rather than killing this process and leaving both behind.
  SignalWatch signals({SIGHUP, SIGINT, SIGTERM});
  check_out_dir(o);
  const PluginRegistry registry = load_plugins(o.plugin_dirs);
  auto policies = create_policies(registry, o.policies);
  const std::string job = o.job_id.empty() ? "local-" + std::to_string(::getpid()) : o.job_id;
  BlockConfigSink sink(job, initial_config(o));
  // On every way out, an exception's included, no block is left in /dev/shm.
  const std::unique_ptr<BlockConfigSink, void (*)(BlockConfigSink*)> remove_block(
      &sink, [](BlockConfigSink* s) { s->remove_block(); });
  Supervisor supervisor(
      shm::ConfigBlockReader::attach(sink.block_name(), shm::ConfigBlockReader::Access::kReadWrite),
      sink);
  for (LocalPolicy& p : policies)
    supervisor.add_policy(p.name, std::move(p.policy), p.grace);
  if (const int sig = signals.wait_for(std::chrono::milliseconds(0))) {
    std::fprintf(stderr, "local: SIG%s before the trainer started\n", ::sigabbrev_np(sig));
    return exit_status(TrainerExitCode::kInterrupted);
  }
  if (o.overwrite) clear_earlier_run(JobFolder{o.out_dir});

  // In our session, so that a terminal's Ctrl-C or hangup reaches it too; its stderr is ours and
  // its stdout our pipe: our stdout is the summary.
  TrainerOutput output;
  fleet::TrainerLaunch launch;
  launch.argv = trainer_command(o, job).argv();
  launch.stdout_fd = output.write_end();
  fleet::TrainerProcess trainer = fleet::TrainerProcess::spawn(launch);
  output.close_write_end();
  json events = json::array();
  int code = 0;
  try {
    code = supervise(o, trainer, signals, supervisor, sink, output, events);
  } catch (...) {
    stop_trainer(trainer);
    throw;
  }
  const json summary =
      summary_json(job, code, supervisor, sink.revision(), std::move(events), output.summary());
  std::cout << (o.output == "json" ? summary.dump(2) : summary_text(summary, o.out_dir))
            << std::endl;
  return code;
}

}  // namespace

void add_local_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "local",
      "Train one job on this host with live config and supervisor policies, no coordinator. The "
      "summary goes to stdout, progress to stderr; a hangup, Ctrl-C or SIGTERM stops the trainer "
      "after a checkpoint (exit code 4)");
  auto o = std::make_shared<LocalOptions>();
  cmd->add_option("--model", o->model, "Model plugin name")->required();
  cmd->add_option("--param", o->params, "Model parameter KEY=VALUE (repeatable)");
  cmd->add_option("--set", o->sets,
                  "Initial knob KEY=VALUE, e.g. training/optimizer/learning_rate=0.1 (repeatable)");
  cmd->add_option("--policy", o->policies,
                  "Policy plugin NAME or NAME:KEY=VALUE,KEY=VALUE (repeatable); besides the "
                  "plugin's keys, human_grace_evals and human_grace_steps");
  cmd->add_option("--out", o->out_dir,
                  "Directory for the trainer's checkpoint/ and bundle.tvb; one that holds them "
                  "already needs --resume or --overwrite");
  auto* resume = cmd->add_flag("--resume", o->resume,
                               "Continue the run whose checkpoint is in --out, from its step");
  cmd->add_flag("--overwrite", o->overwrite,
                "Start over in an --out that holds an earlier run (its checkpoint and bundle are "
                "removed)")
      ->excludes(resume);
  cmd->add_option("--job-id", o->job_id, "Job id (default local-<pid>)");
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--steps", o->steps, "Stop after this many steps (0: no cap)");
  cmd->add_option("--max-epochs", o->max_epochs, max_epochs_help())->check(CLI::PositiveNumber);
  cmd->add_option("--max-train-samples", o->max_train_samples, "Use at most N training samples");
  cmd->add_option("--max-val-samples", o->max_val_samples, "Use at most N validation samples");
  cmd->add_option("--interval-ms", o->interval_ms, "Supervisor cadence")
      ->check(CLI::Range(1, 60000));
  cmd->add_option("-o,--output", o->output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));
  add_plugin_dir_option(*cmd, o->plugin_dirs);
  cmd->callback([o] {
    const int code = run_local(*o);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace tv::cli
