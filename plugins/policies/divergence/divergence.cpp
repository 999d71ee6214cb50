// divergence: stops a job whose training loss has blown up, before it burns more compute.
//
// It stops when the loss has been above `max_loss` for `patience` records in a row, or at once
// on a non-finite loss (a NaN/inf loss value or a record flagged kTelemetryNonFiniteLoss) while
// `check_non_finite` is on. The same guard as Keras' TerminateOnNaN plus a loss ceiling. It stops
// once and then stays quiet.
#include <cmath>
#include <cstdint>
#include <string>

#include "common/decision_builder.hpp"
#include "common/param_schema.hpp"
#include "common/policy_plugin_for.hpp"
#include "common/record_policy.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {
namespace {

struct DivergenceSettings {
  double max_loss = 1e6;
  std::int64_t patience = 1;
  bool check_non_finite = true;
  bool dry_run = false;
};

class DivergencePolicy final : public RecordPolicy {
 public:
  static plugin::Descriptor descriptor() {
    return policy_descriptor(
        "divergence", "stops a job whose loss is non-finite or stays above a ceiling",
        {number_param("max_loss", 1e6, 0.0, 1e30, "a training loss above this counts as diverged"),
         integer_param("patience", 1, 1, 1'000'000,
                       "records in a row with the loss above max_loss before the job is stopped"),
         flag_param("check_non_finite", true,
                    "stop at once on a non-finite loss; when off, such records are ignored")});
  }

  static DivergenceSettings read_settings(ParamReader& in) {
    DivergenceSettings s;
    s.max_loss = in.number("max_loss");
    s.patience = in.integer("patience");
    s.check_non_finite = in.flag("check_non_finite");
    s.dry_run = in.flag("dry_run");
    return s;
  }

  explicit DivergencePolicy(const DivergenceSettings& settings)
      : RecordPolicy(settings.dry_run), s_(settings) {}

 private:
  void on_record(const plugin::TelemetryPoint& point, const plugin::ConfigView&,
                 DecisionBuilder& decision) override {
    const std::string at_step = " at step " + std::to_string(point.step);
    if (!std::isfinite(point.loss) || (point.flags & plugin::kTelemetryNonFiniteLoss) != 0) {
      // With the check off these records neither count nor break a run above max_loss: the
      // trainer skipped their update, so they say nothing about where the loss is heading.
      if (!s_.check_non_finite) return;
      decision.stop(std::isfinite(point.loss)
                        ? "the update" + at_step + " was skipped for a non-finite loss (loss " +
                              format_number(point.loss) + ")"
                        : "loss " + format_number(point.loss) + " is not finite" + at_step);
      return;
    }
    if (!(point.loss > s_.max_loss)) {
      records_above_ = 0;
      return;
    }
    ++records_above_;
    if (records_above_ < s_.patience) return;
    decision.stop("loss " + format_number(point.loss) + " > max_loss " +
                  format_number(s_.max_loss) + " for " + std::to_string(records_above_) +
                  " records in a row (patience " + std::to_string(s_.patience) + ")" + at_step);
  }

  DivergenceSettings s_;
  std::int64_t records_above_ = 0;
};

}  // namespace

using DivergencePlugin = PolicyPluginFor<DivergencePolicy>;

}  // namespace tv::policies

TRAINVISOR_PLUGIN(tv::policies::DivergencePlugin)
