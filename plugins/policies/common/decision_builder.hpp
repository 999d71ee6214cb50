// Builds the Decision of one observe() call, and is the one place that applies the dry-run
// contract shared by every policy: in dry run a policy still computes everything, but each write's
// reason starts with "dry run: " and a stop becomes a write-less Decision that does not stop and
// whose stop_reason starts with "dry run: would stop: ".
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <utility>
#include <variant>

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
  explicit DecisionBuilder(bool dry_run) : dry_run_(dry_run) {}

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

  // The early_stop write is what actually stops the trainer; the flag tells the supervisor.
  void stop(const std::string& reason) {
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
    return std::move(decision_);
  }

 private:
  bool dry_run_;
  bool stopping_ = false;
  plugin::Decision decision_;
};

}  // namespace tv::policies
