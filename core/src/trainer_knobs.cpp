#include "trainvisor/core/trainer_knobs.hpp"

#include <stdexcept>

#include "trainvisor/core/param_schema.hpp"

namespace tv::knobs {

using plugin::ParamSpec;
using plugin::ParamType;

const std::vector<ParamSpec>& schema() {
  static const std::vector<ParamSpec> s = {
      {std::string(kOptimizer),
       ParamType::kString,
       std::string("sgd"),
       {},
       {},
       {"sgd", "adamw"},
       "optimizer: SGD with momentum or AdamW (read at start)"},
      {std::string(kLearningRate), ParamType::kFloat64, 0.05, 0.0, 10.0, {}, "learning rate"},
      {std::string(kMomentum), ParamType::kFloat64, 0.9, 0.0, 0.999, {}, "SGD momentum"},
      {std::string(kWeightDecay), ParamType::kFloat64, 0.0, 0.0, 1.0, {}, "weight decay"},
      {std::string(kGradClipMax),
       ParamType::kFloat64,
       0.0,
       0.0,
       1e6,
       {},
       "clip the gradient norm to this (0: no clipping)"},
      {std::string(kDropout),
       ParamType::kFloat64,
       0.0,
       0.0,
       0.95,
       {},
       "dropout probability (models with dropout)"},
      {std::string(kBatchSize),
       ParamType::kInt64,
       std::int64_t{64},
       1.0,
       65536.0,
       {},
       "batch size (applied at the next epoch)"},
      {std::string(kEvalEvery),
       ParamType::kInt64,
       std::int64_t{0},
       0.0,
       1e9,
       {},
       "evaluate every N steps (0: at each epoch end)"},
      {std::string(kMaxEpochs),
       ParamType::kInt64,
       std::int64_t{5},
       1.0,
       1e6,
       {},
       "epochs to train"},
      {std::string(kEarlyStop), ParamType::kBool, false, {}, {}, {}, "stop at the next step"},
      {std::string(kCheckpointEvery),
       ParamType::kInt64,
       std::int64_t{0},
       0.0,
       1e9,
       {},
       "checkpoint every N steps (0: only on SIGTERM)"},
      {std::string(kRevision),
       ParamType::kInt64,
       std::int64_t{0},
       0.0,
       {},
       {},
       "config revision (written by the config agent)"},
  };
  return s;
}

const ParamSpec* find(std::string_view key) {
  for (const ParamSpec& p : schema()) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

std::optional<std::string> check(std::string_view key, const plugin::ParamValue& value) {
  const ParamSpec* spec = find(key);
  if (spec == nullptr) {
    std::vector<std::string> keys;
    for (const ParamSpec& p : schema())
      keys.push_back(p.key);
    const std::string close = did_you_mean(key, keys);
    return "unknown knob '" + std::string(key) + "'" +
           (close.empty() ? "" : " (did you mean '" + close + "'?)");
  }
  if (const auto why = check_param_value(*spec, as_declared_type(*spec, value))) {
    return "trainer parameter '" + spec->key + "': " + *why;
  }
  return std::nullopt;
}

Effect takes_effect(std::string_view key) {
  if (find(key) == nullptr) throw std::invalid_argument("unknown knob '" + std::string(key) + "'");
  // training_loop.cpp: the optimizer is made in the constructor; start_epoch() reads the batch
  // size; every other knob is read after the refresh at each step's start (apply_knobs for the
  // optimizer's settings and dropout; the step reads the clip, eval and checkpoint cadences; the
  // loop between steps reads early_stop and max_epochs).
  if (key == kOptimizer) return Effect::kStart;
  if (key == kBatchSize) return Effect::kNextEpoch;
  if (key == kRevision) return Effect::kAgent;
  return Effect::kNextStep;
}

std::string_view effect_name(Effect effect) noexcept {
  switch (effect) {
    case Effect::kNextStep:
      return "next_step";
    case Effect::kNextEpoch:
      return "next_epoch";
    case Effect::kStart:
      return "start";
    case Effect::kAgent:
      return "agent";
  }
  return "unknown";
}

}  // namespace tv::knobs
