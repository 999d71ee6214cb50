// RecordPolicy: the base of the four supervisor policies. It hands each policy, one at a time,
// only the telemetry records it has not seen yet, and stops feeding it for good once its stop
// was accepted (or, in dry run, once it said it would stop), so that a stop is reported once.
//
// State that depends on a write (a cooldown, a counter reset after a reduction) is committed
// only when the write takes effect: a policy makes it tentatively when it proposes, and settle()
// undoes it when outcome() reports the write refused (frozen, held by a human, invalid). In dry
// run a policy's state follows what it would have done, so that its reports show that.
//
// observe() and outcome() are noexcept: policy code throws nothing of its own, so the only
// exception possible is std::bad_alloc, and a supervisor out of memory is better terminated than
// left running on a silently dropped decision. Either way nothing leaves the plugin as an
// exception.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/decision_builder.hpp"
#include "common/trainer_config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

class RecordPolicy : public plugin::Policy {
 public:
  explicit RecordPolicy(bool dry_run) : dry_run_(dry_run) {}

  plugin::Decision observe(const plugin::Observation& observation) noexcept final {
    // A host that did not report the previous decision's outcome applied it (ABI 1's contract).
    if (!unsettled_.writes.empty()) outcome(std::exchange(unsettled_, {}));
    DecisionBuilder decision(dry_run_, observation.holds);
    const std::span<const plugin::TelemetryPoint> history = observation.history;
    for (std::size_t i = std::min(observation.first_new, history.size());
         i < history.size() && !stopped_ && !decision.stopping(); ++i) {
      on_record(history[i], observation.config, decision);
    }
    stop_proposed_ = decision.stopping();
    if (dry_run_ && stop_proposed_) stopped_ = true;
    plugin::Decision out = decision.take();
    for (const plugin::ProposedWrite& w : out.writes)
      unsettled_.writes.push_back({w.path, plugin::WriteFate::kApplied, 0, ""});
    return out;
  }

  void outcome(const plugin::DecisionOutcome& outcome) noexcept final {
    unsettled_.writes.clear();
    if (stop_proposed_ && took_effect(outcome, kEarlyStopKey)) stopped_ = true;
    stop_proposed_ = false;
    settle(outcome);
  }

 protected:
  virtual void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView& config,
                         DecisionBuilder& decision) = 0;
  // What became of the writes of the last decision: keep or undo the state they changed.
  virtual void settle(const plugin::DecisionOutcome& outcome) { (void)outcome; }

  // True when the write to `path` was applied or queued, or would have been (dry run).
  bool took_effect(const plugin::DecisionOutcome& outcome, const std::string& path) const {
    return dry_run_ || outcome.accepted(path);
  }

 private:
  bool dry_run_;
  bool stopped_ = false;
  bool stop_proposed_ = false;
  plugin::DecisionOutcome unsettled_;  // the last decision's writes until outcome() comes
};

}  // namespace tv::policies
