// plateau: lowers the learning rate when the monitored metric stops improving.
//
// Reference semantics: PyTorch 1.13 torch.optim.lr_scheduler.ReduceLROnPlateau, step for step
// (is_better with rel/abs thresholds, patience, cooldown, min_lr, eps), so that a schedule tuned
// in PyTorch behaves the same here; tests/golden/reduce_lr_on_plateau.json pins it. One scheduler
// step is one record carrying the monitored value (an evaluation for
// val_loss and val_accuracy, every record for loss). Its output is a write of
// training/optimizer/learning_rate, scaled from the live rate (a human's value included).
//
// A reduction resets the counters and starts the cooldown only once its write takes effect: when
// it is refused (frozen, held by a human) the policy stays as it was, so it reduces at its next
// step from the live rate again, and unfreezing applies one reduction, not the many it would
// otherwise have walked through in its head. While a human holds the rate it says so and waits.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

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
      : RecordPolicy(settings.dry_run), s_(settings) {
    state_.best = worst_value(settings.monitor.mode);
  }

 private:
  // ReduceLROnPlateau's state.
  struct State {
    double best = 0;
    std::int64_t num_bad_epochs = 0;
    std::int64_t cooldown_counter = 0;
  };
  // A reduction proposed and not yet confirmed: the state before it, and the values seen since.
  struct Tentative {
    State before;
    std::vector<double> later;
  };

  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView& config,
                 DecisionBuilder& decision) override {
    if (!s_.monitor.metric.carried_by(point)) return;
    const double current = s_.monitor.metric.value_of(point);
    if (tentative_) tentative_->later.push_back(current);
    track(state_, current);
    if (state_.num_bad_epochs <= s_.patience) return;
    if (const plugin::HumanHold* hold = decision.held(kLearningRateKey)) {
      decision.yield(*hold, "not reduced (" + stall(current) + ")");
      return;  // the reduction waits for the hold to end
    }
    const State before = state_;
    if (reduce_lr(current, config, decision) && !tentative_) tentative_ = Tentative{before, {}};
    state_.cooldown_counter = s_.cooldown;
    state_.num_bad_epochs = 0;
  }

  // One scheduler step without the reduction: best, bad steps and cooldown.
  void track(State& state, double current) const {
    if (is_better(current, state.best)) {
      state.best = current;
      state.num_bad_epochs = 0;
    } else {
      ++state.num_bad_epochs;
    }
    if (state.cooldown_counter > 0) {
      --state.cooldown_counter;
      state.num_bad_epochs = 0;
    }
  }

  void settle(const plugin::DecisionOutcome& outcome) override {
    if (!tentative_) return;
    if (!took_effect(outcome, kLearningRateKey)) {
      // Replayed as if the reduction had not been proposed: the next step proposes it again.
      state_ = tentative_->before;
      for (const double value : tentative_->later)
        track(state_, value);
    }
    tentative_.reset();
  }

  bool is_better(double current, double best) const {
    if (s_.monitor.mode == MetricMode::kMin) {
      return s_.relative_threshold ? current < best * (1.0 - s_.threshold)
                                   : current < best - s_.threshold;
    }
    return s_.relative_threshold ? current > best * (s_.threshold + 1.0)
                                 : current > best + s_.threshold;
  }

  std::string stall(double current) const {
    return std::string(s_.monitor.metric.name()) + " " + format_number(current) +
           " has not improved on " + format_number(state_.best) + " for " +
           std::to_string(state_.num_bad_epochs) + " " + s_.monitor.metric.steps_noun() +
           " (patience " + std::to_string(s_.patience) + ")";
  }

  // PyTorch scales the optimizer's own rate; ours is the live one (or what this call already
  // proposed, when one batch holds two reductions). True when a write was proposed.
  bool reduce_lr(double current, const plugin::ConfigView& config, DecisionBuilder& decision) {
    std::optional<double> old_lr = decision.proposed_number(kLearningRateKey);
    if (!old_lr) old_lr = config_number(config, kLearningRateKey);
    if (!old_lr) return false;  // the job exposes no learning rate: nothing to scale
    const double new_lr = std::max(*old_lr * s_.factor, s_.min_lr);
    if (!(*old_lr - new_lr > s_.eps)) return false;
    decision.propose(kLearningRateKey, new_lr,
                     stall(current) + ": learning_rate " + format_number(*old_lr) + " -> " +
                         format_number(new_lr));
    return true;
  }

  PlateauSettings s_;
  State state_;
  std::optional<Tentative> tentative_;
};

}  // namespace

using PlateauPlugin = PolicyPluginFor<PlateauPolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::PlateauPlugin)
