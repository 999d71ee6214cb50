// plateau: lowers the learning rate when the monitored metric stops improving.
//
// Reference semantics: PyTorch 1.13 torch.optim.lr_scheduler.ReduceLROnPlateau, step for step
// (is_better with rel/abs thresholds, patience, cooldown, min_lr, eps), so that a schedule tuned
// in PyTorch behaves the same here; shared/golden/reduce_lr_on_plateau.json (beside the repository)
// pins it. One scheduler step is one record carrying the monitored value (an evaluation for
// val_loss and val_accuracy, every record for loss). Its output is a write of
// training/optimizer/learning_rate.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "common/decision_builder.hpp"
#include "common/monitored_metric.hpp"
#include "common/param_schema.hpp"
#include "common/policy_plugin_for.hpp"
#include "common/record_policy.hpp"
#include "common/trainer_config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {
namespace {

struct PlateauSettings {
  MonitorSettings monitor;
  double factor = 0.1;
  std::int64_t patience = 10;
  std::int64_t cooldown = 0;
  double threshold = 1e-4;
  bool relative_threshold = true;
  double min_lr = 0.0;
  double eps = 1e-8;
  bool dry_run = false;
};

class PlateauPolicy final : public RecordPolicy {
 public:
  static plugin::Descriptor descriptor() {
    return policy_descriptor(
        "plateau",
        "reduces the learning rate when a metric has stopped improving (PyTorch "
        "ReduceLROnPlateau)",
        {monitor_param(), mode_param(),
         number_param("factor", 0.1, 0.0, 1.0,
                      "new learning rate = old * factor; must be above 0 and below 1"),
         integer_param("patience", 10, 0, 1'000'000,
                       "steps without improvement tolerated before the learning rate is reduced"),
         integer_param("cooldown", 0, 0, 1'000'000,
                       "steps after a reduction during which bad steps are not counted"),
         number_param("threshold", 1e-4, 0.0, 1e6,
                      "how much better than the best a value must be to count as an improvement"),
         choice_param("threshold_mode", "rel", {"rel", "abs"},
                      "rel: threshold is relative to the best value; abs: an absolute margin"),
         number_param("min_lr", 0.0, 0.0, 100.0, "the learning rate is never reduced below this"),
         number_param("eps", 1e-8, 0.0, 1.0,
                      "reductions smaller than this are not made (the write is skipped)")});
  }

  static PlateauSettings read_settings(ParamReader& in) {
    PlateauSettings s;
    s.monitor = read_monitor_settings(in);
    s.factor = in.number("factor");
    s.patience = in.integer("patience");
    s.cooldown = in.integer("cooldown");
    s.threshold = in.number("threshold");
    const std::string threshold_mode = in.text("threshold_mode");
    s.relative_threshold = threshold_mode == "rel";
    s.min_lr = in.number("min_lr");
    s.eps = in.number("eps");
    s.dry_run = in.flag("dry_run");
    // The schema's range is closed; PyTorch refuses factor >= 1, and 0 would not be a reduction.
    if (in.ok() && !(s.factor > 0.0 && s.factor < 1.0)) {
      in.refuse("parameter 'factor' must be above 0 and below 1, got " + format_number(s.factor));
    }
    if (threshold_mode != "rel" && threshold_mode != "abs") {
      in.refuse("parameter 'threshold_mode': expected rel or abs, got '" + threshold_mode + "'");
    }
    return s;
  }

  explicit PlateauPolicy(const PlateauSettings& settings)
      : RecordPolicy(settings.dry_run), s_(settings), best_(worst_value(settings.monitor.mode)) {}

 private:
  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView& config,
                 DecisionBuilder& decision) override {
    if (!s_.monitor.metric.carried_by(point)) return;
    const double current = s_.monitor.metric.value_of(point);
    if (is_better(current)) {
      best_ = current;
      num_bad_epochs_ = 0;
    } else {
      ++num_bad_epochs_;
    }
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      num_bad_epochs_ = 0;
    }
    if (num_bad_epochs_ > s_.patience) {
      reduce_lr(current, config, decision);
      cooldown_counter_ = s_.cooldown;
      num_bad_epochs_ = 0;
    }
  }

  bool is_better(double current) const {
    if (s_.monitor.mode == MetricMode::kMin) {
      return s_.relative_threshold ? current < best_ * (1.0 - s_.threshold)
                                   : current < best_ - s_.threshold;
    }
    return s_.relative_threshold ? current > best_ * (s_.threshold + 1.0)
                                 : current > best_ + s_.threshold;
  }

  // PyTorch scales the optimizer's own lr; ours is the value this policy last proposed, since the
  // trainer may not have applied it yet when the next records arrive.
  void reduce_lr(double current, const plugin::ConfigView& config, DecisionBuilder& decision) {
    const std::optional<double> old_lr =
        proposed_lr_ ? proposed_lr_ : config_number(config, kLearningRateKey);
    if (!old_lr) return;  // the job exposes no learning rate: nothing to scale
    const double new_lr = std::max(*old_lr * s_.factor, s_.min_lr);
    if (!(*old_lr - new_lr > s_.eps)) return;
    proposed_lr_ = new_lr;
    const char* metric = s_.monitor.metric.name();
    decision.propose(kLearningRateKey, new_lr,
                     std::string(metric) + " " + format_number(current) + " has not improved on " +
                         format_number(best_) + " for " + std::to_string(num_bad_epochs_) + " " +
                         s_.monitor.metric.steps_noun() + " (patience " +
                         std::to_string(s_.patience) + "): learning_rate " +
                         format_number(*old_lr) + " -> " + format_number(new_lr));
  }

  PlateauSettings s_;
  double best_;
  std::int64_t num_bad_epochs_ = 0;
  std::int64_t cooldown_counter_ = 0;
  std::optional<double> proposed_lr_;
};

}  // namespace

using PlateauPlugin = PolicyPluginFor<PlateauPolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::PlateauPlugin)
