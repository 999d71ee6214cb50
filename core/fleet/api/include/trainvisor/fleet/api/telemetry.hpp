// The telemetry endpoints' messages (JSON rules in json.hpp). A metric that is unknown (not
// measured at that step) is NaN in a point and null in JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/json.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

namespace api {

// A revision the host's agent could not apply, for the hub's audit log.
struct AgentRefusalReport {
  std::uint64_t revision = 0;
  std::string reason;
};

// POST kJobTelemetry (worker, from the job's holder). Bounds (points per batch, each field's
// range, reason lengths) are in checked.hpp.
struct TelemetryBatch {
  std::string host;
  std::uint64_t missed = 0;  // records the host's reader lost since the last batch
  std::vector<plugin::TelemetryPoint> points;
  std::vector<AgentRefusalReport> refusals;
};

// GET kJobTelemetry: the curve (thinned to max_points) and the config lag.
struct TelemetryCurve {
  std::string job;
  std::optional<std::uint64_t> desired_revision;
  std::optional<AppliedConfig> applied;
  std::vector<plugin::TelemetryPoint> points;
};

// GET kJobCurve: one metric of a job's curve, downsampled to at most `buckets` buckets of equal
// width over [from, to] of x (the step, or the wall time in Unix milliseconds). A bucket holds
// the metric's points whose x falls in [x_lo, x_hi]: how many, their min and max, the first and
// the last (in step order); a missing (NaN) value is not a point; a bucket with none is left out.
// Steps before `exact_from` are kept only as per-`rollup_steps` aggregates (TelemetryStore's
// long-term layer): there a bucket is made of whole aggregates, attributed by their first x; on
// the step axis `from` and `to` then widen to whole aggregates and bucket_width is a multiple of
// rollup_steps, so every bucket is exact.
enum class CurveMetric { kLoss, kValLoss, kValAccuracy, kLearningRate, kGradNorm, kSamplesPerSec };
enum class CurveAxis { kStep, kTime };
inline constexpr std::string_view kCurveMetricNames[] = {
    "loss", "val_loss", "val_accuracy", "learning_rate", "grad_norm", "samples_per_sec"};
inline constexpr std::size_t kCurveMetrics = std::size(kCurveMetricNames);
// nullopt for a name that is none of kCurveMetricNames.
std::optional<CurveMetric> curve_metric(std::string_view name);
std::string_view to_string(CurveMetric m);

struct CurveBucket {
  std::int64_t x_lo = 0;
  std::int64_t x_hi = 0;
  std::uint64_t count = 0;
  double min = 0;
  double max = 0;
  double first = 0;
  double last = 0;
};

// JSON: {"job","metric","x":"step"|"time","from","to","bucket_width","exact_from"(null: every
// point is kept),"rollup_steps","columns":["x_lo","x_hi","count","min","max","first","last"],
// "buckets":[[x_lo,x_hi,count,min,max,first,last],...]}: arrays, not objects, to keep a long
// curve's reply small.
struct MetricCurve {
  std::string job;
  CurveMetric metric = CurveMetric::kLoss;
  CurveAxis x = CurveAxis::kStep;
  std::int64_t from = 0;
  std::int64_t to = 0;
  std::int64_t bucket_width = 1;
  std::optional<std::int64_t> exact_from;
  std::uint64_t rollup_steps = 0;
  std::vector<CurveBucket> buckets;
};

TV_API_JSON(AgentRefusalReport);
TV_API_JSON(MetricCurve);
TV_API_JSON(TelemetryBatch);
TV_API_JSON(TelemetryCurve);

}  // namespace api

// A point's JSON: every metric a number, or null when unknown (NaN).
nlohmann::json telemetry_point_json(const plugin::TelemetryPoint& p);
plugin::TelemetryPoint telemetry_point_from_json(const nlohmann::json& j);

}  // namespace tv::fleet
