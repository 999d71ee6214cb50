// The `data_count` trigger: fires every `every` samples, at the row that completes each N,
// wherever the batch boundaries fall.
#include <cstdint>
#include <memory>
#include <string>

#include "common/batch_check.hpp"
#include "common/plugin_params.hpp"
#include "common/trigger_plugin_for.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers {
namespace {

class DataCountTrigger final : public plugin::Trigger {
 public:
  struct Settings {
    std::int64_t every = 0;
  };

  static plugin::Descriptor descriptor() {
    return trigger_descriptor(
        "data_count", "fires every N samples of the stream",
        {plugin_params::integer_param("every", 1000, 1, 1'000'000'000'000,
                                      "samples per firing: fires at the sample that completes "
                                      "each group of this many")});
  }

  static Settings read_settings(plugin_params::ParamReader& in) { return {in.integer("every")}; }

  explicit DataCountTrigger(const Settings& settings)
      : every_(static_cast<std::uint64_t>(settings.every)) {}

  bool observe(const plugin::SampleBatch& batch, plugin::TriggerDecision& decision,
               std::string& error) override {
    if (const auto problem = cursor_.check(batch)) {
      error = *problem;
      return false;
    }
    // Rows are counted from 0, so the row that completes the current group is the one `every -
    // pending_ - 1` rows on; each later group ends `every` rows further.
    for (std::uint64_t row = every_ - pending_ - 1; row < batch.rows; row += every_) {
      const std::uint64_t total = seen_ + row + 1;
      const bool first = total == every_;
      decision.evaluations.push_back(
          {static_cast<std::size_t>(row),
           batch.time_ns[row],
           true,
           std::to_string(every_) + " samples since " +
               (first ? std::string("the stream began") : std::string("the last firing")) + " (" +
               std::to_string(total) + " in all)",
           {{"every", static_cast<double>(every_)},
            {"total_samples", static_cast<double>(total)}}});
    }
    cursor_.commit(batch);
    seen_ += batch.rows;
    pending_ = (pending_ + batch.rows) % every_;
    return true;
  }

 private:
  std::uint64_t every_;
  std::uint64_t seen_ = 0;     // samples observed
  std::uint64_t pending_ = 0;  // samples since the last firing (or the start)
  StreamCursor cursor_{false};
};

}  // namespace
}  // namespace tv::triggers

TRAINVISOR_PLUGIN(tv::triggers::TriggerPluginFor<tv::triggers::DataCountTrigger>)
