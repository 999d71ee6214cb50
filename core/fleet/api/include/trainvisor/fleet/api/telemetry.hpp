// The telemetry endpoints' messages (JSON rules in json.hpp). A metric that is unknown (not
// measured at that step) is NaN in a point and null in JSON.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
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

TV_API_JSON(AgentRefusalReport);
TV_API_JSON(TelemetryBatch);
TV_API_JSON(TelemetryCurve);

}  // namespace api

// A point's JSON: every metric a number, or null when unknown (NaN).
nlohmann::json telemetry_point_json(const plugin::TelemetryPoint& p);
plugin::TelemetryPoint telemetry_point_from_json(const nlohmann::json& j);

}  // namespace tv::fleet
