// The `time` trigger: fires every `every_s` seconds of stream time (the samples' timestamps, not
// the clock of the machine that observes them).
//
// Intervals are laid from the first sample's timestamp: boundaries at t0 + k * every_s. The
// trigger fires at the first row at or past each boundary, so a batch spanning several
// boundaries fires once for each, at its own row. A row that reaches past several boundaries at
// once (the intervals between held no sample) fires once: an empty interval has no data of its
// own to train on, and a long gap in the stream must not turn into one firing per interval. The
// reason says how many intervals that firing closes.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/batch_check.hpp"
#include "common/plugin_params.hpp"
#include "common/stream_time.hpp"
#include "common/trigger_plugin_for.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers {
namespace {

using Int128 = __int128;
constexpr double kNsPerS = 1e9;

class TimeTrigger final : public plugin::Trigger {
 public:
  struct Settings {
    double every_s = 0;
  };

  static plugin::Descriptor descriptor() {
    return trigger_descriptor(
        "time", "fires every interval of stream time (the samples' timestamps)",
        {plugin_params::number_param(
            "every_s", 3600.0, 0.001, 3.2e9,
            "interval in seconds of stream time; the first starts at the first sample's "
            "timestamp, and the trigger fires at the first sample at or past each interval's "
            "end")});
  }

  static Settings read_settings(plugin_params::ParamReader& in) { return {in.number("every_s")}; }

  explicit TimeTrigger(const Settings& settings)
      : every_s_(settings.every_s),
        interval_ns_(std::max<std::int64_t>(1, std::llround(settings.every_s * kNsPerS))) {}

  bool observe(const plugin::SampleBatch& batch, plugin::TriggerDecision& decision,
               std::string& error) override {
    if (const auto problem = cursor_.check(batch)) {
      error = *problem;
      return false;
    }
    if (batch.rows == 0) return true;
    // The boundaries in 128 bits: t0 + k * interval may pass the int64 range near its end.
    Int128 next = next_boundary_ ? *next_boundary_ : Int128{batch.time_ns[0]} + interval_ns_;
    std::vector<plugin::TriggerEvaluation> firings;
    for (std::size_t row = 0; row < batch.rows; ++row) {
      const std::int64_t t = batch.time_ns[row];
      if (t < next) continue;
      // Boundaries at `next`, next + interval, ... up to t: `crossed` of them.
      const Int128 crossed = (Int128{t} - next) / interval_ns_ + 1;
      firings.push_back(firing(row, t, next - interval_ns_, crossed));
      next += crossed * interval_ns_;
    }
    cursor_.commit(batch);
    next_boundary_ = next;
    for (auto& f : firings)
      decision.evaluations.push_back(std::move(f));
    return true;
  }

 private:
  plugin::TriggerEvaluation firing(std::size_t row, std::int64_t t, Int128 since_ns,
                                   Int128 crossed) const {
    const double seconds = every_s_ * static_cast<double>(crossed);
    const auto since = static_cast<std::int64_t>(since_ns);
    std::string reason = number_text(seconds) + " s of stream time since " + utc_text(since);
    if (crossed > 1) {
      reason += " (" + std::to_string(static_cast<std::int64_t>(crossed)) + " intervals of " +
                number_text(every_s_) + " s, the last " +
                std::to_string(static_cast<std::int64_t>(crossed - 1)) + " without samples)";
    }
    reason += "; sample at " + utc_text(t);
    return {row,
            t,
            true,
            std::move(reason),
            {{"every_s", every_s_},
             {"intervals", static_cast<double>(crossed)},
             {"interval_start_s", static_cast<double>(since) / kNsPerS},
             {"sample_time_s", static_cast<double>(t) / kNsPerS}}};
  }

  double every_s_;
  std::int64_t interval_ns_;
  StreamCursor cursor_{false};
  std::optional<Int128> next_boundary_;  // the end of the current interval
};

}  // namespace
}  // namespace tv::triggers

TRAINVISOR_PLUGIN(tv::triggers::TriggerPluginFor<tv::triggers::TimeTrigger>)
