// early_stopping: stops a job once the monitored metric has stopped improving.
//
// Reference semantics: Keras' tf.keras.callbacks.EarlyStopping (on_epoch_end), one of its epochs
// being one record that carries the metric (an evaluation for val_loss and val_accuracy, every
// record for loss). Per step: wait += 1; on an improvement over best (by more than min_delta),
// best = current and, unless a baseline is set and not beaten, wait = 0; otherwise, once
// wait >= patience and it is not the first step, stop. Keras' `baseline=None` is expressed as
// use_baseline=false, since a float parameter has no "none".
#include <cstdint>
#include <string>

#include "common/decision_builder.hpp"
#include "common/monitored_metric.hpp"
#include "common/param_schema.hpp"
#include "common/policy_plugin_for.hpp"
#include "common/record_policy.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {
namespace {

struct EarlyStoppingSettings {
  MonitorSettings monitor;
  double min_delta = 0.0;
  std::int64_t patience = 5;
  bool use_baseline = false;
  double baseline = 0.0;
  bool dry_run = false;
};

class EarlyStoppingPolicy final : public RecordPolicy {
 public:
  static plugin::Descriptor descriptor() {
    return policy_descriptor(
        "early_stopping", "stops a job when a metric has stopped improving (Keras EarlyStopping)",
        {monitor_param(), mode_param(),
         number_param("min_delta", 0.0, 0.0, 1e6,
                      "a change must exceed this to count as an improvement"),
         integer_param("patience", 5, 0, 1'000'000,
                       "steps without improvement after which the job is stopped"),
         flag_param("use_baseline", false,
                    "whether `baseline` applies (Keras' baseline=None when off)"),
         number_param("baseline", 0.0, -1e12, 1e12,
                      "with use_baseline: the patience countdown only restarts once the metric "
                      "beats this value")});
  }

  static EarlyStoppingSettings read_settings(ParamReader& in) {
    EarlyStoppingSettings s;
    s.monitor = read_monitor_settings(in);
    s.min_delta = in.number("min_delta");
    s.patience = in.integer("patience");
    s.use_baseline = in.flag("use_baseline");
    s.baseline = in.number("baseline");
    s.dry_run = in.flag("dry_run");
    return s;
  }

  explicit EarlyStoppingPolicy(const EarlyStoppingSettings& settings)
      : RecordPolicy(settings.dry_run), s_(settings), best_(worst_value(settings.monitor.mode)) {}

 private:
  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView&,
                 DecisionBuilder& decision) override {
    if (!s_.monitor.metric.carried_by(point)) return;
    const double current = s_.monitor.metric.value_of(point);
    ++steps_;
    ++wait_;
    if (is_improvement(current, best_)) {
      best_ = current;
      if (!s_.use_baseline || is_improvement(current, s_.baseline)) wait_ = 0;
      return;
    }
    // Keras checks only after the first epoch.
    if (wait_ < s_.patience || steps_ == 1) return;
    std::string reason = std::string(s_.monitor.metric.name()) + " " + format_number(current) +
                         " has not improved on best " + format_number(best_) +
                         " by more than min_delta " + format_number(s_.min_delta) + " for " +
                         std::to_string(wait_) + " " + s_.monitor.metric.steps_noun() +
                         " (patience " + std::to_string(s_.patience) + ")";
    if (s_.use_baseline) reason += ", baseline " + format_number(s_.baseline);
    decision.stop(reason);
  }

  // Keras: monitor_op(current - min_delta, reference), min_delta negated for np.less.
  bool is_improvement(double current, double reference) const {
    if (s_.monitor.mode == MetricMode::kMin) return current + s_.min_delta < reference;
    return current - s_.min_delta > reference;
  }

  EarlyStoppingSettings s_;
  double best_;
  std::int64_t wait_ = 0;
  std::int64_t steps_ = 0;
};

}  // namespace

using EarlyStoppingPlugin = PolicyPluginFor<EarlyStoppingPolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::EarlyStoppingPlugin)
