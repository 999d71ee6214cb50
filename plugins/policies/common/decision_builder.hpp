// Builds the Decision of one observe() call, and is the one place that applies the dry-run
// contract shared by every policy: in dry run a policy still computes everything, but each write's
// reason starts with "dry run: " and a stop becomes a write-less Decision that does not stop and
// whose stop_reason starts with "dry run: would stop: ".
//
// It also carries the Observation's holds: a policy asks held(path) before proposing and, when a
// human holds the key, yield()s instead, which puts the hold and what was not done in the
// decision's note.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/trainer_config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

// Numbers in reasons: short enough to read in a log line, precise enough to tell apart the
// values a policy compared.
inline std::string format_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

class DecisionBuilder {
 public:
  explicit DecisionBuilder(bool dry_run, std::vector<plugin::HumanHold> holds = {})
      : dry_run_(dry_run), holds_(std::move(holds)) {}

  // The human's hold on `path`, or null when a policy may write it.
  const plugin::HumanHold* held(const std::string& path) const {
    for (const plugin::HumanHold& hold : holds_) {
      if (hold.path == path) return &hold;
    }
    return nullptr;
  }

  // Records in the note that the policy leaves a held key alone: "learning_rate held by
  // human:ana's write of revision 7 (0.08) for 2 more evaluations or until step 5300: not
  // reduced". One note per key: a later yield in the same call replaces it.
  void yield(const plugin::HumanHold& hold, const std::string& what_not_done) {
    const std::string key = hold.path.substr(hold.path.rfind('/') + 1);
    const std::string line = key + " held by " + hold.actor + "'s write of revision " +
                             std::to_string(hold.revision) + " (" + value_text(hold.value) + ") " +
                             hold.until + ": " + what_not_done;
    yields_[hold.path] = (dry_run_ ? "dry run: " : "") + line;
  }

  // A second proposal for the same path in one call replaces the value (the sink would keep
  // only the last anyway) and appends its reason, so the log still explains every change.
  void propose(const std::string& path, plugin::ParamValue value, const std::string& reason) {
    for (plugin::ProposedWrite& write : decision_.writes) {
      if (write.path != path) continue;
      write.value = std::move(value);
      write.reason += "; " + reason;
      return;
    }
    decision_.writes.push_back({path, std::move(value), (dry_run_ ? "dry run: " : "") + reason});
  }

  // What this call has already proposed for `path`, so that two actions in one batch of records
  // build on each other rather than both on the config the trainer runs with now.
  std::optional<double> proposed_number(const std::string& path) const {
    for (const plugin::ProposedWrite& write : decision_.writes) {
      if (write.path != path) continue;
      if (const auto* value = std::get_if<double>(&write.value)) return *value;
    }
    return std::nullopt;
  }

  // The early_stop write is what actually stops the trainer; the flag tells the supervisor. A
  // human's hold on early_stop wins: the policy yields and goes on watching.
  void stop(const std::string& reason) {
    if (const plugin::HumanHold* hold = held(kEarlyStopKey)) {
      yield(*hold, "not stopped (" + reason + ")");
      return;
    }
    stopping_ = true;
    if (dry_run_) {
      decision_.stop_reason = "dry run: would stop: " + reason;
      return;
    }
    decision_.stop = true;
    decision_.stop_reason = reason;
    propose(kEarlyStopKey, true, reason);
  }

  // True once stop() was called, in dry run too.
  bool stopping() const { return stopping_; }

  plugin::Decision take() {
    decision_.dry_run = dry_run_;
    for (const auto& [path, line] : yields_)
      decision_.note += (decision_.note.empty() ? "" : "; ") + line;
    return std::move(decision_);
  }

 private:
  static std::string value_text(const plugin::ParamValue& value) {
    if (const auto* d = std::get_if<double>(&value)) return format_number(*d);
    if (const auto* i = std::get_if<std::int64_t>(&value)) return std::to_string(*i);
    if (const auto* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
    return std::get<std::string>(value);
  }

  bool dry_run_;
  std::vector<plugin::HumanHold> holds_;
  std::map<std::string, std::string> yields_;  // path -> its line of the note
  bool stopping_ = false;
  plugin::Decision decision_;
};

}  // namespace tv::policies
