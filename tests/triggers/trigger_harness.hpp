// Test side of the trigger plugins: the real plugin libraries loaded through the PluginRegistry
// (the files named in TV_TRIGGER_PLUGIN_FILES, ':'-separated), triggers created through the
// host's TriggerServices (with the host's real drift statistics), and batches built from plain
// vectors.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/drift/drift_statistics.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers::test {

inline constexpr std::int64_t kSecond = 1'000'000'000;
// 2026-01-01T00:00:00Z: stream times in the tests start here.
inline constexpr std::int64_t kStreamStart = 1'767'225'600 * kSecond;

// The trigger plugins this executable was built with, each loaded once (libraries are never
// unloaded). A library the registry refuses fails loudly.
inline const PluginRegistry& trigger_registry() {
  static const PluginRegistry* registry = [] {
    auto* r = new PluginRegistry;
    std::string_view files = TV_TRIGGER_PLUGIN_FILES;
    while (!files.empty()) {
      const auto colon = files.find(':');
      r->load_file(std::string(files.substr(0, colon)));
      files = colon == std::string_view::npos ? std::string_view() : files.substr(colon + 1);
    }
    for (const PluginLoadError& e : r->errors())
      throw std::runtime_error("trigger plugin refused: " + e.message());
    return r;
  }();
  return *registry;
}

inline const HostTriggerServices& trigger_services() {
  static const HostTriggerServices services(trigger_registry(), drift::drift_statistics());
  return services;
}

// A trigger created from text parameters; the test fails (throws) when it is refused.
inline std::unique_ptr<plugin::Trigger> make_trigger(
    const std::string& plugin, const std::map<std::string, std::string>& params = {}) {
  std::string error;
  auto trigger = trigger_services().create_trigger(plugin, params, error);
  if (!trigger) throw std::runtime_error("cannot create trigger '" + plugin + "': " + error);
  return trigger;
}

// Why creating the trigger was refused ("" when it was not).
inline std::string creation_error(const std::string& plugin,
                                  const std::map<std::string, std::string>& params) {
  std::string error;
  auto trigger = trigger_services().create_trigger(plugin, params, error);
  if (trigger) return "";
  EXPECT_FALSE(error.empty()) << plugin << " was refused without a reason";
  return error;
}

// A batch that owns its values. Features are row * 10 + column, labels the row's parity.
struct Batch {
  std::size_t rows = 0;
  std::size_t dims = 0;
  std::vector<float> features;
  std::vector<std::int64_t> time_ns;
  std::vector<std::int64_t> labels;

  plugin::SampleBatch view() const { return {features, rows, dims, time_ns, labels}; }
};

inline Batch batch_at(std::vector<std::int64_t> time_ns, std::size_t dims = 2,
                      bool with_labels = false) {
  Batch b;
  b.rows = time_ns.size();
  b.dims = dims;
  b.time_ns = std::move(time_ns);
  for (std::size_t r = 0; r < b.rows; ++r) {
    for (std::size_t c = 0; c < dims; ++c)
      b.features.push_back(static_cast<float>(r * 10 + c));
    if (with_labels) b.labels.push_back(static_cast<std::int64_t>(r % 2));
  }
  return b;
}

// `rows` samples `step_ns` apart from `first_ns`.
inline Batch evenly_spaced(std::size_t rows, std::int64_t first_ns, std::int64_t step_ns,
                           std::size_t dims = 2) {
  std::vector<std::int64_t> times;
  for (std::size_t r = 0; r < rows; ++r)
    times.push_back(first_ns + static_cast<std::int64_t>(r) * step_ns);
  return batch_at(std::move(times), dims);
}

// Observes `batch`; the test fails (throws) when it is refused.
inline plugin::TriggerDecision observe(plugin::Trigger& trigger, const Batch& batch) {
  plugin::TriggerDecision decision;
  std::string error;
  if (!trigger.observe(batch.view(), decision, error)) {
    throw std::runtime_error("batch refused: " + error);
  }
  return decision;
}

// Why the trigger refused `batch` ("" when it did not); a refusal must leave no evaluation.
inline std::string refusal(plugin::Trigger& trigger, const Batch& batch) {
  plugin::TriggerDecision decision;
  std::string error;
  if (trigger.observe(batch.view(), decision, error)) return "";
  EXPECT_TRUE(decision.evaluations.empty());
  EXPECT_FALSE(error.empty());
  return error;
}

inline std::vector<std::size_t> fired_rows(const plugin::TriggerDecision& decision) {
  std::vector<std::size_t> rows;
  for (const plugin::TriggerEvaluation& e : decision.evaluations) {
    if (e.fired) rows.push_back(e.row);
  }
  return rows;
}

// Feeds a stream of `total` samples one `step_ns` apart from kStreamStart, cut into batches of
// the given sizes (repeated until the stream ends), and returns the stream positions (0-based)
// of the firings.
inline std::vector<std::size_t> stream_firings(plugin::Trigger& trigger, std::size_t total,
                                               const std::vector<std::size_t>& sizes,
                                               std::int64_t step_ns) {
  std::vector<std::size_t> positions;
  std::size_t done = 0;
  for (std::size_t i = 0; done < total; ++i) {
    const std::size_t rows = std::min(sizes[i % sizes.size()], total - done);
    const auto decision = observe(
        trigger,
        evenly_spaced(rows, kStreamStart + static_cast<std::int64_t>(done) * step_ns, step_ns));
    for (const std::size_t row : fired_rows(decision))
      positions.push_back(done + row);
    done += rows;
  }
  return positions;
}

inline double stat(const plugin::TriggerEvaluation& e, const std::string& name) {
  for (const plugin::TriggerStat& s : e.stats) {
    if (s.name == name) return s.value;
  }
  throw std::runtime_error("no stat '" + name + "' in: " + e.reason);
}

}  // namespace tv::triggers::test
