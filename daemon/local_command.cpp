#include "local_command.hpp"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "plugins_command.hpp"
#include "train_command.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/fleet/trainer_process.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv::cli {
namespace {

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
};

volatile sig_atomic_t forward_signal = 0;

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
  c.quiet = o.output == "json";
  return c;
}

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
                  std::uint64_t revision, json events) {
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
          {"events", std::move(events)}};
}

int run_local(const LocalOptions& o) {
  const PluginRegistry registry = load_plugins(o.plugin_dirs);
  auto policies = create_policies(registry, o.policies);
  plugin::ConfigView initial;
  for (const std::string& s : o.sets)
    initial.insert(parse_assignment(s, "--set"));
  const std::string job = o.job_id.empty() ? "local-" + std::to_string(::getpid()) : o.job_id;
  BlockConfigSink sink(job, initial);
  Supervisor supervisor(
      shm::ConfigBlockReader::attach(sink.block_name(), shm::ConfigBlockReader::Access::kReadWrite),
      sink);
  for (LocalPolicy& p : policies)
    supervisor.add_policy(p.name, std::move(p.policy), p.grace);

  // In our session, so that a terminal's Ctrl-C reaches it too; its stdout (its one-line
  // summary) joins our stderr: our stdout is the summary.
  fleet::TrainerProcess trainer;
  try {
    trainer = fleet::TrainerProcess::spawn({trainer_command(o, job).argv(), false, {}});
  } catch (const std::exception&) {
    sink.remove_block();
    throw;
  }
  struct sigaction sa {};
  sa.sa_handler = [](int sig) { forward_signal = sig; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  json events = json::array();
  const auto handle = [&](const std::vector<SupervisorEvent>& evs) {
    for (const auto& e : evs) {
      if (o.output == "text") std::fprintf(stderr, "supervisor: %s\n", describe(e).c_str());
      events.push_back(event_json(e));
    }
  };
  std::optional<int> code;
  while (true) {
    if (forward_signal != 0) {
      trainer.signal(SIGTERM);
      forward_signal = 0;
    }
    handle(supervisor.poll());
    sink.heartbeat();
    code = trainer.poll();
    if (code) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
  }
  handle(supervisor.poll());
  const json summary = summary_json(job, *code, supervisor, sink.revision(), std::move(events));
  if (o.output == "json") {
    std::cout << summary.dump(2) << "\n";
  } else {
    std::fprintf(stderr, "local: trainer exited %d after %zu telemetry records; revision %llu\n",
                 *code, supervisor.history().size(),
                 static_cast<unsigned long long>(sink.revision()));
  }
  sink.remove_block();
  return *code;
}

}  // namespace

void add_local_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "local",
      "Train one job on this host with live config and supervisor policies, no coordinator");
  auto o = std::make_shared<LocalOptions>();
  cmd->add_option("--model", o->model, "Model plugin name")->required();
  cmd->add_option("--param", o->params, "Model parameter KEY=VALUE (repeatable)");
  cmd->add_option("--set", o->sets,
                  "Initial knob KEY=VALUE, e.g. training/optimizer/learning_rate=0.1 (repeatable)");
  cmd->add_option("--policy", o->policies,
                  "Policy plugin NAME or NAME:KEY=VALUE,KEY=VALUE (repeatable); besides the "
                  "plugin's keys, human_grace_evals and human_grace_steps");
  cmd->add_option("--out", o->out_dir, "Directory for the trainer's checkpoint/ and bundle.tvb");
  cmd->add_option("--job-id", o->job_id, "Job id (default local-<pid>)");
  cmd->add_option("--seed", o->seed, "Random seed");
  cmd->add_option("--steps", o->steps, "Stop after this many steps (0: no cap)");
  cmd->add_option("--max-epochs", o->max_epochs, "Cap on training/control/max_epochs (0: none)");
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
