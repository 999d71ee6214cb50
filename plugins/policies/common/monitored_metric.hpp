// The signal that plateau and early_stopping watch ("monitor") and the direction in which it
// improves ("mode"), with the ParamSpecs that declare both.
//
// The validation metrics exist only on evaluation records (kTelemetryEval); the training loss is
// on every record. So one "step" of either policy is one evaluation, or one record for "loss".
#pragma once

#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/param_schema.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

enum class MetricMode { kMin, kMax };

class MonitoredMetric {
 public:
  static std::optional<MonitoredMetric> parse(std::string_view name) {
    if (name == "val_loss") return MonitoredMetric(Signal::kValLoss);
    if (name == "val_accuracy") return MonitoredMetric(Signal::kValAccuracy);
    if (name == "loss") return MonitoredMetric(Signal::kLoss);
    return std::nullopt;
  }

  MonitoredMetric() = default;

  bool carried_by(const plugin::TelemetryPoint& point) const {
    return signal_ == Signal::kLoss || (point.flags & plugin::kTelemetryEval) != 0;
  }

  double value_of(const plugin::TelemetryPoint& point) const {
    switch (signal_) {
      case Signal::kValLoss:
        return point.val_loss;
      case Signal::kValAccuracy:
        return point.val_accuracy;
      case Signal::kLoss:
        return point.loss;
    }
    return point.val_loss;
  }

  const char* name() const {
    switch (signal_) {
      case Signal::kValLoss:
        return "val_loss";
      case Signal::kValAccuracy:
        return "val_accuracy";
      case Signal::kLoss:
        return "loss";
    }
    return "val_loss";
  }

  // What one step of a policy watching this metric is called in a reason.
  const char* steps_noun() const { return signal_ == Signal::kLoss ? "records" : "evaluations"; }

 private:
  enum class Signal { kValLoss, kValAccuracy, kLoss };
  explicit MonitoredMetric(Signal signal) : signal_(signal) {}

  Signal signal_ = Signal::kValLoss;
};

// The starting "best" of a metric (torch's mode_worse, Keras' initial best): any finite value
// improves on it.
inline double worst_value(MetricMode mode) {
  return mode == MetricMode::kMin ? std::numeric_limits<double>::infinity()
                                  : -std::numeric_limits<double>::infinity();
}

inline std::optional<MetricMode> parse_metric_mode(std::string_view name) {
  if (name == "min") return MetricMode::kMin;
  if (name == "max") return MetricMode::kMax;
  return std::nullopt;
}

inline plugin::ParamSpec monitor_param() {
  return choice_param("monitor", "val_loss", {"val_loss", "val_accuracy", "loss"},
                      "the metric watched: val_loss and val_accuracy count one step per "
                      "evaluation, loss one step per telemetry record");
}

inline plugin::ParamSpec mode_param() {
  return choice_param("mode", "min", {"min", "max"},
                      "min: the metric improves when it falls (losses); max: when it rises "
                      "(accuracy)");
}

// Reads monitor and mode; an unknown name is refused through `in` (the schema already excludes
// it, so this only guards against a host that skipped validation).
struct MonitorSettings {
  MonitoredMetric metric;
  MetricMode mode = MetricMode::kMin;
};

inline MonitorSettings read_monitor_settings(ParamReader& in) {
  MonitorSettings settings;
  const std::string monitor = in.text("monitor");
  const std::string mode = in.text("mode");
  if (const auto metric = MonitoredMetric::parse(monitor)) {
    settings.metric = *metric;
  } else {
    in.refuse("parameter 'monitor': unknown metric '" + monitor + "'");
  }
  if (const auto parsed = parse_metric_mode(mode)) {
    settings.mode = *parsed;
  } else {
    in.refuse("parameter 'mode': expected min or max, got '" + mode + "'");
  }
  return settings;
}

}  // namespace tv::policies
