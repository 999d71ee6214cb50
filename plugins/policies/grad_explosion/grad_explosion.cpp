// grad_explosion: reacts to a gradient-norm spike by lowering the learning rate and clipping.
//
// When a record's grad_norm is above `threshold`, or not finite, it proposes
// learning_rate *= lr_factor and, unless clipping is already at least as tight,
// grad_clip_max = clip_value. It then ignores further spikes for `cooldown_steps` training steps,
// so that one burst of large gradients leads to one reaction, not one per record. The usual
// remedy for exploding gradients (Pascanu et al. 2013, "On the difficulty of training recurrent
// neural networks": clip the norm), applied live instead of at the next restart.
//
// It scales the live learning rate. The cooldown starts only once one of its writes takes
// effect: a reaction refused whole (frozen, or both keys held by a human) is made again at the
// next spike. A key a human holds is left alone, and the reason says so.
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "common/decision_builder.hpp"
#include "common/param_schema.hpp"
#include "common/policy_plugin_for.hpp"
#include "common/record_policy.hpp"
#include "common/trainer_config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {
namespace {

struct GradExplosionSettings {
  double threshold = 10.0;
  double lr_factor = 0.5;
  double clip_value = 1.0;
  std::int64_t cooldown_steps = 100;
  bool dry_run = false;
};

class GradExplosionPolicy final : public RecordPolicy {
 public:
  static plugin::Descriptor descriptor() {
    return policy_descriptor(
        "grad_explosion",
        "lowers the learning rate and clips gradients when the gradient norm spikes",
        {number_param("threshold", 10.0, 0.0, 1e12,
                      "a gradient norm above this (or a non-finite one) is a spike"),
         number_param("lr_factor", 0.5, 0.0, 1.0,
                      "on a spike, learning rate = current * lr_factor; above 0, 1 keeps it"),
         number_param("clip_value", 1.0, 0.0, 1e12,
                      "on a spike, grad_clip_max is set to this unless already at most this; "
                      "0 leaves clipping alone"),
         integer_param("cooldown_steps", 100, 0, 1'000'000'000,
                       "training steps after a reaction during which further spikes are "
                       "ignored")});
  }

  static GradExplosionSettings read_settings(ParamReader& in) {
    GradExplosionSettings s;
    s.threshold = in.number("threshold");
    s.lr_factor = in.number("lr_factor");
    s.clip_value = in.number("clip_value");
    s.cooldown_steps = in.integer("cooldown_steps");
    s.dry_run = in.flag("dry_run");
    // A zero learning rate would silently freeze training; the schema's range is closed.
    if (in.ok() && !(s.lr_factor > 0.0)) {
      in.refuse("parameter 'lr_factor' must be above 0, got " + format_number(s.lr_factor));
    }
    return s;
  }

  explicit GradExplosionPolicy(const GradExplosionSettings& settings)
      : RecordPolicy(settings.dry_run), s_(settings) {}

 private:
  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView& config,
                 DecisionBuilder& decision) override {
    const bool finite = std::isfinite(point.grad_norm);
    if (finite && !(point.grad_norm > s_.threshold)) return;
    if (in_cooldown(point.step)) return;

    const std::string cause =
        "grad_norm " + format_number(point.grad_norm) +
        (finite ? " > threshold " + format_number(s_.threshold) : std::string(" is not finite")) +
        " at step " + std::to_string(point.step);
    const bool lowered = lower_learning_rate(cause, config, decision);
    if (!(tighten_clipping(cause, config, decision) || lowered)) return;
    if (!reacted_) before_reaction_ = last_reaction_step_;
    reacted_ = true;
    last_reaction_step_ = point.step;
  }

  void settle(const plugin::DecisionOutcome& outcome) override {
    if (!reacted_) return;
    reacted_ = false;
    if (took_effect(outcome, kLearningRateKey) || took_effect(outcome, kGradClipMaxKey)) return;
    last_reaction_step_ = before_reaction_;
  }

  // A record stepping back (a job resumed from an earlier checkpoint) ends the cooldown: the
  // steps it counted are being redone.
  bool in_cooldown(std::uint64_t step) const {
    if (!last_reaction_step_ || step < *last_reaction_step_) return false;
    return step - *last_reaction_step_ <= static_cast<std::uint64_t>(s_.cooldown_steps);
  }

  // Both return true when they proposed a write.
  bool lower_learning_rate(const std::string& cause, const plugin::ConfigView& config,
                           DecisionBuilder& decision) const {
    std::optional<double> lr = decision.proposed_number(kLearningRateKey);
    if (!lr) lr = config_number(config, kLearningRateKey);
    if (!lr) return false;  // the job exposes no learning rate
    const double new_lr = *lr * s_.lr_factor;
    if (new_lr == *lr) return false;
    if (const plugin::HumanHold* hold = decision.held(kLearningRateKey)) {
      decision.yield(*hold, "not lowered (" + cause + ")");
      return false;
    }
    decision.propose(
        kLearningRateKey, new_lr,
        cause + ": learning_rate " + format_number(*lr) + " -> " + format_number(new_lr));
    return true;
  }

  // Clipping is off when grad_clip_max is absent or not positive; a tighter limit set by the user
  // is kept.
  bool tighten_clipping(const std::string& cause, const plugin::ConfigView& config,
                        DecisionBuilder& decision) const {
    if (!(s_.clip_value > 0.0)) return false;
    std::optional<double> clip = decision.proposed_number(kGradClipMaxKey);
    if (!clip) clip = config_number(config, kGradClipMaxKey);
    const bool clipping = clip && *clip > 0.0;
    if (clipping && *clip <= s_.clip_value) return false;
    if (const plugin::HumanHold* hold = decision.held(kGradClipMaxKey)) {
      decision.yield(*hold, "not tightened (" + cause + ")");
      return false;
    }
    decision.propose(kGradClipMaxKey, s_.clip_value,
                     cause + ": grad_clip_max " +
                         (clipping ? format_number(*clip) : std::string("off")) + " -> " +
                         format_number(s_.clip_value));
    return true;
  }

  GradExplosionSettings s_;
  std::optional<std::uint64_t> last_reaction_step_;
  // The reaction of the decision awaiting its outcome, and the cooldown before it.
  bool reacted_ = false;
  std::optional<std::uint64_t> before_reaction_;
};

}  // namespace

using GradExplosionPlugin = PolicyPluginFor<GradExplosionPolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::GradExplosionPlugin)
