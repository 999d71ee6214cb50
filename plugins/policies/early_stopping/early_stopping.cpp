// early_stopping: stops a job once the monitored metric has stopped improving.
//
// Reference semantics: Keras' keras.callbacks.EarlyStopping (Keras 3, keras-team/keras,
// keras/src/callbacks/early_stopping.py, on_epoch_end and _is_improvement), one of its epochs
// being one record that carries the metric (an evaluation for val_loss and val_accuracy, every
// record for loss). Epochs before start_from_epoch change nothing. Per later epoch: wait += 1; on
// an improvement over best by more than min_delta (the first watched epoch always is one, best
// starting as "none"), best = current and, unless a baseline is set and not beaten, wait = 0;
// otherwise, once wait >= patience and it is not epoch 0, stop. Keras' `baseline=None` is
// expressed as use_baseline=false, since a float parameter has no "none". restore_best_weights
// has no counterpart: it never changes when Keras stops, and the trainer's checkpoints keep the
// weights. tests/golden/early_stopping.json holds Keras' stopping epochs for this plugin's tests.
#include <cstdint>
#include <optional>
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
  std::int64_t start_from_epoch = 0;
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
                      "beats this value"),
         integer_param("start_from_epoch", 0, 0, 1'000'000,
                       "steps (evaluations, or records for loss) ignored at the start: a warm-up "
                       "in which the metric is not watched")});
  }

  static EarlyStoppingSettings read_settings(ParamReader& in) {
    EarlyStoppingSettings s;
    s.monitor = read_monitor_settings(in);
    s.min_delta = in.number("min_delta");
    s.patience = in.integer("patience");
    s.use_baseline = in.flag("use_baseline");
    s.baseline = in.number("baseline");
    s.start_from_epoch = in.integer("start_from_epoch");
    s.dry_run = in.flag("dry_run");
    return s;
  }

  explicit EarlyStoppingPolicy(const EarlyStoppingSettings& settings)
      : RecordPolicy(settings.dry_run), s_(settings) {}

 private:
  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView&,
                 DecisionBuilder& decision) override {
    if (!s_.monitor.metric.carried_by(point)) return;
    const double current = s_.monitor.metric.value_of(point);
    const std::int64_t epoch = epoch_++;
    if (epoch < s_.start_from_epoch) return;
    ++wait_;
    // Keras' best starts as None, which every value improves on, even NaN: a NaN best is then
    // never improved on again, since no comparison with NaN holds.
    if (!best_ || is_improvement(current, *best_)) {
      best_ = current;
      if (!s_.use_baseline || is_improvement(current, s_.baseline)) wait_ = 0;
      return;
    }
    // Keras checks only after the first epoch of training (warm-up epochs included).
    if (wait_ < s_.patience || epoch == 0) return;
    std::string reason = std::string(s_.monitor.metric.name()) + " " + format_number(current) +
                         " has not improved on best " + format_number(*best_) +
                         " by more than min_delta " + format_number(s_.min_delta) + " for " +
                         std::to_string(wait_) + " " + s_.monitor.metric.steps_noun() +
                         " (patience " + std::to_string(s_.patience) + ")";
    if (s_.use_baseline) reason += ", baseline " + format_number(s_.baseline);
    decision.stop(reason);
  }

  // Keras: monitor_op(current - min_delta, reference), min_delta negated for ops.less; strict,
  // so a change of exactly min_delta is no improvement.
  bool is_improvement(double current, double reference) const {
    if (s_.monitor.mode == MetricMode::kMin) return current + s_.min_delta < reference;
    return current - s_.min_delta > reference;
  }

  EarlyStoppingSettings s_;
  std::optional<double> best_;
  std::int64_t wait_ = 0;
  // 0-based index of the next record that carries the metric: Keras' epoch.
  std::int64_t epoch_ = 0;
};

}  // namespace

using EarlyStoppingPlugin = PolicyPluginFor<EarlyStoppingPolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::EarlyStoppingPlugin)
