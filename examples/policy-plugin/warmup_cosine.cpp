// warmup_cosine: an out-of-tree policy plugin. It drives the learning rate through a linear
// warm-up and then a cosine decay (Loshchilov & Hutter 2017, "SGDR", without restarts), and
// yields to humans: while a human holds the rate it pauses and says so, and once the hold ends it
// keeps the human's level and goes on with the schedule's shape from there.
//
// It uses nothing but the plugin header: the host hands it validated, complete parameters, the
// telemetry and the live config, and tells it what became of each write.
#include <trainvisor/plugin.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <numbers>
#include <optional>
#include <string>
#include <variant>

namespace {

using namespace tv::plugin;

const std::string kLr = knob::kLearningRate;

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

struct Schedule {
  double base_lr = 0.1;
  double min_lr = 0.0;
  std::int64_t warmup_steps = 500;
  std::int64_t total_steps = 10000;

  // The rate at `step`: from base_lr / warmup_steps up to base_lr, then down to min_lr.
  double at(std::uint64_t step) const {
    const double s = static_cast<double>(step);
    if (s < static_cast<double>(warmup_steps)) return base_lr * (s + 1) / warmup_steps;
    if (s >= static_cast<double>(total_steps)) return min_lr;
    const double progress = (s - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + std::cos(std::numbers::pi * progress));
  }

  std::string phase(std::uint64_t step) const {
    if (step < static_cast<std::uint64_t>(warmup_steps))
      return "warm-up step " + std::to_string(step) + " of " + std::to_string(warmup_steps);
    if (step >= static_cast<std::uint64_t>(total_steps))
      return "step " + std::to_string(step) + " past the schedule's " + std::to_string(total_steps);
    return "cosine decay at step " + std::to_string(step) + " of " + std::to_string(total_steps);
  }
};

class WarmupCosine final : public Policy {
 public:
  WarmupCosine(Schedule schedule, std::int64_t update_every, bool dry_run)
      : schedule_(schedule), update_every_(update_every), pause_(update_every), dry_run_(dry_run) {}

  Decision observe(const Observation& o) override {
    Decision d;
    d.dry_run = dry_run_;
    if (o.first_new >= o.history.size()) return d;  // nothing new
    const std::uint64_t step = o.history.back().step;
    const auto live_it = o.config.find(kLr);
    if (live_it == o.config.end() || !std::holds_alternative<double>(live_it->second)) return d;
    const double live = std::get<double>(live_it->second);  // what the trainer runs with now
    for (const HumanHold& hold : o.holds) {
      if (hold.path != kLr) continue;
      rescale_ = true;
      d.note = "learning_rate held by " + hold.actor + "'s write of revision " +
               std::to_string(hold.revision) + " " + hold.until + ": schedule paused at step " +
               std::to_string(step);
      return d;
    }
    std::string rescaled;
    if (rescale_ && schedule_.at(step) > 0) {  // the hold is over: the human's level stays
      scale_ = live / schedule_.at(step);
      rescale_ = false;
      rescaled = " (the schedule scaled x" + number(scale_) + " to a human's rate)";
    }
    if (next_step_ && step < *next_step_) return d;
    const double target = scale_ * schedule_.at(step);
    if (target == live) return d;
    proposed_step_ = step;
    d.writes.push_back({kLr, target,
                        std::string(dry_run_ ? "dry run: " : "") + schedule_.phase(step) +
                            ": learning_rate " + number(live) + " -> " + number(target) +
                            rescaled});
    return d;
  }

  // The next write is due update_every steps after one that took effect (applied, or queued
  // while the coordinator is away). After a refusal (a freeze, a hold that began meanwhile) the
  // pause doubles, up to 64 times, so that a frozen folder does not fill the log with retries.
  void outcome(const DecisionOutcome& outcome) override {
    if (!proposed_step_) return;
    const bool took_effect = dry_run_ || outcome.accepted(kLr);
    pause_ = took_effect ? update_every_ : std::min(pause_ * 2, 64 * update_every_);
    next_step_ = *proposed_step_ + static_cast<std::uint64_t>(pause_);
    proposed_step_.reset();
  }

 private:
  Schedule schedule_;
  std::int64_t update_every_;
  std::int64_t pause_;  // steps from a write to the next
  bool dry_run_;
  double scale_ = 1.0;
  bool rescale_ = false;
  std::optional<std::uint64_t> proposed_step_;
  std::optional<std::uint64_t> next_step_;
};

ParamSpec number_param(const char* key, double value, double min, double max, const char* help) {
  return {key, ParamType::kFloat64, value, min, max, {}, help};
}
ParamSpec integer_param(const char* key, std::int64_t value, double max, const char* help) {
  return {key, ParamType::kInt64, value, 1.0, max, {}, help};
}

class WarmupCosinePlugin final : public PolicyPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kPolicy,
            "warmup_cosine",
            "0.1.0",
            "linear warm-up then cosine decay of the learning rate, yielding to humans",
            {number_param("base_lr", 0.1, 1e-9, 10.0, "the rate at the end of the warm-up"),
             number_param("min_lr", 0.0, 0.0, 10.0, "the rate at the end of the decay"),
             integer_param("warmup_steps", 500, 1e9, "steps of linear warm-up"),
             integer_param("total_steps", 10000, 1e9, "the step at which the decay ends"),
             integer_param("update_every", 50, 1e9, "steps between two writes of the rate"),
             {"dry_run", ParamType::kBool, false, {}, {}, {}, "report writes, apply none"}}};
  }

  std::unique_ptr<Policy> create(const Params& params, std::string& error) override {
    // The host validated every value against describe() and filled in the defaults.
    Schedule s;
    s.base_lr = std::get<double>(params.at("base_lr"));
    s.min_lr = std::get<double>(params.at("min_lr"));
    s.warmup_steps = std::get<std::int64_t>(params.at("warmup_steps"));
    s.total_steps = std::get<std::int64_t>(params.at("total_steps"));
    if (s.total_steps <= s.warmup_steps) {
      error = "total_steps " + std::to_string(s.total_steps) + " must be above warmup_steps " +
              std::to_string(s.warmup_steps);
      return nullptr;
    }
    if (s.min_lr > s.base_lr) {
      error = "min_lr " + number(s.min_lr) + " is above base_lr " + number(s.base_lr);
      return nullptr;
    }
    return std::make_unique<WarmupCosine>(s, std::get<std::int64_t>(params.at("update_every")),
                                          std::get<bool>(params.at("dry_run")));
  }
};

}  // namespace

TRAINVISOR_PLUGIN(WarmupCosinePlugin)
