// Test side of the policy plugins: loads the real plugin libraries the way the host does (once,
// never unloaded), builds complete Params from a descriptor's defaults, and drives a Policy the
// way the supervisor does: append records, observe() the new ones, tell the policy what became
// of its writes (outcome()) and apply the accepted ones to the job's config as the sink would.
#pragma once

#include <boost/dll/shared_library.hpp>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::policies::test {

inline constexpr const char* kLearningRateKey = "training/optimizer/learning_rate";
inline constexpr const char* kGradClipMaxKey = "training/regularization/grad_clip_max";
inline constexpr const char* kEarlyStopKey = "training/control/early_stop";

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
inline constexpr double kInf = std::numeric_limits<double>::infinity();

// The plugin in the library at `path`. Libraries and plugin objects are deliberately leaked: the
// host never unloads a plugin, and policies created in one test may outlive static destruction.
inline plugin::PolicyPlugin& load_policy_plugin(const std::string& path) {
  struct Loaded {
    boost::dll::shared_library library;
    std::unique_ptr<plugin::Plugin> plugin;
  };
  static auto* loaded = new std::map<std::string, Loaded>;
  if (const auto it = loaded->find(path); it != loaded->end()) {
    return dynamic_cast<plugin::PolicyPlugin&>(*it->second.plugin);
  }
  Loaded entry{boost::dll::shared_library(path), nullptr};
  auto& factory = entry.library.get_alias<plugin::FactoryFn>(plugin::kFactoryAlias);
  plugin::FactoryCall call;
  call.host_abi_version = plugin::kAbiVersion;
  factory(&call);
  if (call.plugin == nullptr) throw std::runtime_error(path + ": factory failed: " + call.error);
  entry.plugin.reset(call.plugin);
  if (dynamic_cast<plugin::PolicyPlugin*>(call.plugin) == nullptr) {
    throw std::runtime_error(path + ": not a policy plugin");
  }
  return dynamic_cast<plugin::PolicyPlugin&>(
      *loaded->emplace(path, std::move(entry)).first->second.plugin);
}

// The host's completed Params: every default of the schema, then `overrides`, each of which must
// name a declared key with a value of its declared type (a typo in a test must not pass silently).
inline plugin::Params params_for(
    const plugin::Descriptor& descriptor,
    std::initializer_list<std::pair<const std::string, plugin::ParamValue>> overrides = {}) {
  plugin::Params params;
  for (const plugin::ParamSpec& spec : descriptor.params)
    params[spec.key] = spec.default_value;
  for (const auto& [key, value] : overrides) {
    const auto it = params.find(key);
    if (it == params.end()) throw std::invalid_argument("no parameter '" + key + "'");
    if (it->second.index() != value.index()) {
      throw std::invalid_argument("parameter '" + key + "' overridden with another type");
    }
    it->second = value;
  }
  return params;
}

inline plugin::TelemetryPoint eval_point(std::uint64_t step, double val_loss,
                                         double val_accuracy = 0.0) {
  plugin::TelemetryPoint point;
  point.step = step;
  point.flags = plugin::kTelemetryEval;
  point.loss = 1.0;
  point.grad_norm = 1.0;
  point.val_loss = val_loss;
  point.val_accuracy = val_accuracy;
  return point;
}

// A training record without an evaluation. Its val_* fields hold garbage on purpose: a policy
// that read them would notice nothing otherwise.
inline plugin::TelemetryPoint train_point(std::uint64_t step, double loss, double grad_norm = 1.0) {
  plugin::TelemetryPoint point;
  point.step = step;
  point.loss = loss;
  point.grad_norm = grad_norm;
  point.val_loss = 1e9;
  point.val_accuracy = -1e9;
  return point;
}

class PolicyRun {
 public:
  // Creates the policy from the plugin at `path` with the schema's defaults and `overrides`.
  PolicyRun(const std::string& path,
            std::initializer_list<std::pair<const std::string, plugin::ParamValue>> overrides = {},
            plugin::ConfigView config = {{kLearningRateKey, 0.1}})
      : config(std::move(config)) {
    plugin::PolicyPlugin& policy_plugin = load_policy_plugin(path);
    std::string error;
    policy_ = policy_plugin.create(params_for(policy_plugin.describe(), overrides), error);
    if (!policy_) throw std::runtime_error(path + ": create failed: " + error);
  }

  // Appends `records` and observes them in one call, as one batch from the telemetry ring.
  plugin::Decision feed(const std::vector<plugin::TelemetryPoint>& records) {
    const std::size_t first_new = history.size();
    history.insert(history.end(), records.begin(), records.end());
    plugin::Decision decision = policy_->observe({history, first_new, config, holds});
    if (decision.writes.empty()) return decision;
    const plugin::WriteFate told = decision.dry_run ? plugin::WriteFate::kDryRun : fate;
    const bool accepted = told == plugin::WriteFate::kApplied || told == plugin::WriteFate::kQueued;
    plugin::DecisionOutcome outcome;
    if (accepted) ++revision_;
    for (const plugin::ProposedWrite& write : decision.writes)
      outcome.writes.push_back(
          {write.path, told, accepted ? revision_ : 0, accepted ? "" : "refused by the test"});
    policy_->outcome(outcome);
    if (apply_writes && accepted) {
      for (const plugin::ProposedWrite& write : decision.writes)
        config[write.path] = write.value;
    }
    return decision;
  }
  plugin::Decision feed(const plugin::TelemetryPoint& record) {
    return feed(std::vector<plugin::TelemetryPoint>{record});
  }

  double learning_rate() const { return std::get<double>(config.at(kLearningRateKey)); }

  plugin::Policy& policy() { return *policy_; }

  std::vector<plugin::TelemetryPoint> history;
  plugin::ConfigView config;
  // Off to model a sink that has not applied earlier writes yet when the next records arrive.
  bool apply_writes = true;
  // What becomes of every write of the next decisions (a dry run's are kDryRun whatever this is).
  plugin::WriteFate fate = plugin::WriteFate::kApplied;
  std::vector<plugin::HumanHold> holds;  // handed to observe()

 private:
  std::unique_ptr<plugin::Policy> policy_;
  std::uint64_t revision_ = 1;
};

}  // namespace tv::policies::test
