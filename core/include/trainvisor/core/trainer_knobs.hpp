// The trainer's live knobs: their key paths, types, defaults and ranges. The schema is shared by
// the trainer (which refuses an out-of-range value and keeps the last good one), the config
// writer (which validates writes) and manifest validation.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::knobs {

inline constexpr std::string_view kOptimizer = "training/optimizer/name";  // start only
inline constexpr std::string_view kLearningRate = "training/optimizer/learning_rate";
inline constexpr std::string_view kMomentum = "training/optimizer/momentum";
inline constexpr std::string_view kWeightDecay = "training/optimizer/weight_decay";
inline constexpr std::string_view kGradClipMax = "training/regularization/grad_clip_max";
inline constexpr std::string_view kDropout = "training/regularization/dropout";
inline constexpr std::string_view kBatchSize = "training/control/batch_size";  // next epoch
inline constexpr std::string_view kEvalEvery = "training/control/eval_every";
inline constexpr std::string_view kMaxEpochs = "training/control/max_epochs";
inline constexpr std::string_view kEarlyStop = "training/control/early_stop";
inline constexpr std::string_view kCheckpointEvery = "training/control/checkpoint_every";
// The config revision, written by the config agent with every batch it applies.
inline constexpr std::string_view kRevision = "trainvisor/revision";

// Every knob, with its default and range. grad_clip_max 0 means no clipping; eval_every 0 means
// at the end of every epoch; checkpoint_every 0 means only on SIGTERM and at the end.
const std::vector<plugin::ParamSpec>& schema();

// The spec of `key`, or null.
const plugin::ParamSpec* find(std::string_view key);

// Checks one value against the schema. Returns "" when valid, else the reason (unknown key with
// a did-you-mean, wrong type, out of range, not allowed).
std::string check(std::string_view key, const plugin::ParamValue& value);

}  // namespace tv::knobs
