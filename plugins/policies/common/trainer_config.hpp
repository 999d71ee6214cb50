// The trainer config keys the policies read and write, and the typed read of a ConfigView.
#pragma once

#include <optional>
#include <string>
#include <variant>

#include "trainvisor/plugin.hpp"

namespace tv::policies {

// The keys come from the public plugin header, where the host's knob schema takes them too.
inline constexpr const char* kLearningRateKey = plugin::knob::kLearningRate;
inline constexpr const char* kGradClipMaxKey = plugin::knob::kGradClipMax;
inline constexpr const char* kEarlyStopKey = plugin::knob::kEarlyStop;

// Empty when the job's config has no such key or holds something other than a float64 there:
// a policy then leaves that knob alone rather than guess a value.
inline std::optional<double> config_number(const plugin::ConfigView& config,
                                           const std::string& key) {
  const auto it = config.find(key);
  if (it == config.end()) return std::nullopt;
  if (const auto* value = std::get_if<double>(&it->second)) return *value;
  return std::nullopt;
}

}  // namespace tv::policies
