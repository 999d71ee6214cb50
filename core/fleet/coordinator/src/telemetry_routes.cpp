// The telemetry routes: batches from the job's holder (worker token) and the curve for readers.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;

// The most points one curve reply is thinned to.
constexpr std::uint64_t kMaxCurvePoints = 100000;

Response telemetry_post(CoordinatorState& s, Request& req) {
  const api::TelemetryBatch b = body_json(req).get<api::TelemetryBatch>();
  const std::string& job = req.params[0];
  const auto row = s.queue.get(job);
  if (!row) return Response::error(404, no_such_job(job));
  // A cancelled job's holder keeps reporting until its trainer has stopped.
  if (row->worker != b.host ||
      (row->status != JobStatus::kClaimed && row->status != JobStatus::kRunning &&
       row->status != JobStatus::kCancelled)) {
    return Response::error(409, "job " + job + ": not held by " + b.host);
  }
  s.telemetry.append(job, b.points, b.host, b.missed,
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  for (const api::AgentRefusalReport& f : b.refusals) {
    try {
      s.hub.record_agent_refusal(job, f.revision, "host " + b.host + ": " + f.reason);
    } catch (const ConfigHubError& e) {
      return Response::error(400, e.what());
    }
  }
  return Response::json(200, {{"ok", true}, {"stored", b.points.size()}});
}

Response telemetry_get(CoordinatorState& s, Request& req) {
  const std::string& job = req.params[0];
  if (!s.queue.get(job)) return Response::error(404, no_such_job(job));
  api::TelemetryCurve c;
  c.job = job;
  // 0: every point.
  c.points = s.telemetry.curve(job, query_number(req, "max_points", 500, 0, kMaxCurvePoints));
  c.desired_revision = s.desired_revision(job);
  c.applied = s.applied(job);
  return Response::json(200, nlohmann::json(c));
}

}  // namespace

void add_telemetry_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kJobTelemetry),
               for_workers(s, [&s](Request& req, BodyStream*) { return telemetry_post(s, req); })});
  r.push_back({"GET", std::string(api::kJobTelemetry),
               for_readers(s, [&s](Request& req, BodyStream*) { return telemetry_get(s, req); })});
}

}  // namespace tv::fleet::coordinator
