// RecordPolicy: the base of the four supervisor policies. It hands each policy, one at a time,
// only the telemetry records it has not seen yet, and stops feeding it for good once it has
// stopped the job (or, in dry run, said it would), so that a stop is reported once.
//
// observe() is noexcept: policy code throws nothing of its own, so the only exception possible is
// std::bad_alloc, and a supervisor out of memory is better terminated than left running on a
// silently dropped decision. Either way nothing leaves the plugin as an exception.
#pragma once

#include <algorithm>
#include <cstddef>
#include <span>

#include "common/decision_builder.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

class RecordPolicy : public plugin::Policy {
 public:
  explicit RecordPolicy(bool dry_run) : dry_run_(dry_run) {}

  plugin::Decision observe(std::span<const plugin::TelemetryPoint> history, std::size_t first_new,
                           const plugin::ConfigView& config) noexcept final {
    DecisionBuilder decision(dry_run_);
    for (std::size_t i = std::min(first_new, history.size()); i < history.size() && !stopped_;
         ++i) {
      on_record(history[i], config, decision);
      stopped_ = decision.stopping();
    }
    return decision.take();
  }

 protected:
  virtual void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView& config,
                         DecisionBuilder& decision) = 0;

 private:
  bool dry_run_;
  bool stopped_ = false;
};

}  // namespace tv::policies
