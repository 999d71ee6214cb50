// The trainer's live knobs: their key paths, types, defaults and ranges. The schema is shared by
// the trainer (which refuses an out-of-range value and keeps the last good one), the config
// writer (which validates writes) and manifest validation.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::knobs {

// The key paths (knobs::kLearningRate, ...) are those of the public plugin header, where
// policies take them too: defined once, in plugin::knob.
using namespace plugin::knob;

// Every knob, with its default and range. grad_clip_max 0 means no clipping; eval_every 0 means
// at the end of every epoch; checkpoint_every 0 means only on SIGTERM and at the end.
const std::vector<plugin::ParamSpec>& schema();

// The spec of `key`, or null.
const plugin::ParamSpec* find(std::string_view key);

// Checks one value against the schema (an int64 is accepted for a float64 knob). Nothing when
// valid, else the reason: an unknown key with a did-you-mean, a wrong type, out of range, not
// allowed.
std::optional<std::string> check(std::string_view key, const plugin::ParamValue& value);

// When the built-in trainer (core/trainer) acts on a changed value: at the next step (it
// re-reads its block at every step's start), at the next epoch (the batch size is fixed per
// epoch so a resumed run sees the same batches), only at start (the optimizer is built once), or
// never from an operator: the config agent writes the revision.
enum class Effect { kNextStep, kNextEpoch, kStart, kAgent };

// The effect of `key`'s changes. Throws std::invalid_argument for a key not in the schema.
Effect takes_effect(std::string_view key);

// "next_step", "next_epoch", "start", "agent": the API's spelling.
std::string_view effect_name(Effect effect) noexcept;

}  // namespace tv::knobs
