// The telemetry routes: batches from the job's holder (its host credential), the thinned curve
// of every metric and one metric's downsampled curve (kJobCurve) for readers.
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
// The buckets of a metric's curve: by default, and at most.
constexpr std::uint64_t kDefaultCurveBuckets = 1000;
constexpr std::uint64_t kMaxCurveBuckets = 10000;
// The largest x a curve range may name: a step, or a time in Unix milliseconds.
constexpr std::uint64_t kMaxCurveX = std::uint64_t{1} << 62;

// A stored batch in the metrics: its points, and the config writes its revision shows applied.
void count_batch(CoordinatorState& s, const std::string& job, const api::TelemetryBatch& b) {
  s.metrics.telemetry_batches.inc();
  s.metrics.telemetry_points.inc(b.points.size());
  std::uint64_t revision = 0;
  for (const plugin::TelemetryPoint& p : b.points)
    revision = std::max(revision, p.config_revision);
  if (revision > 0)
    s.metrics.apply_lag.applied(job, revision, s.now_ms(), s.metrics.config_apply_lag);
}

// A batch from `host`, the one its credential proves: the body's host, a label, must agree.
Response telemetry_post(CoordinatorState& s, Request& req, const std::string& host) {
  const api::TelemetryBatch b = body_json(req).get<api::TelemetryBatch>();
  const std::string& job = req.params[0];
  if (b.host != host) {
    return Response::error(403,
                           "this credential is host " + host + "'s; it cannot report as " + b.host);
  }
  const auto row = s.queue.get(job);
  if (!row) return Response::error(404, no_such_job(job));
  if (row->worker != host) return not_the_holder(job, row->worker, host);
  // A cancelled job's holder keeps reporting until its trainer has stopped.
  if (row->status != JobStatus::kClaimed && row->status != JobStatus::kRunning &&
      row->status != JobStatus::kCancelled) {
    return Response::error(409, "job " + job + ": not held by " + host + " (it is " +
                                    std::string(to_string(row->status)) + ")");
  }
  s.telemetry.append(job, b.points, host, b.missed,
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  count_batch(s, job, b);
  for (const api::AgentRefusalReport& f : b.refusals) {
    s.metrics.agent_refusal();
    try {
      s.hub.record_agent_refusal(job, f.revision, "host " + host + ": " + f.reason);
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

std::string metric_names() {
  std::string out;
  for (std::string_view m : api::kCurveMetricNames)
    out += (out.empty() ? "" : ", ") + std::string(m);
  return out;
}

// The curve request a query asks for; throws std::invalid_argument (400) naming the parameter
// and what it may be.
CurveRequest curve_request(const Request& req) {
  CurveRequest r;
  const auto metric = req.query.find("metric");
  if (metric == req.query.end())
    throw std::invalid_argument("metric: missing; one of " + metric_names());
  const auto m = api::curve_metric(metric->second);
  if (!m) {
    throw std::invalid_argument("metric: '" + metric->second + "' is not one of " + metric_names());
  }
  r.metric = *m;
  if (const auto x = req.query.find("x"); x != req.query.end()) {
    if (x->second != "step" && x->second != "time")
      throw std::invalid_argument("x: '" + x->second + "' is not one of step, time");
    r.x = x->second == "time" ? api::CurveAxis::kTime : api::CurveAxis::kStep;
  }
  r.buckets = query_number(req, "buckets", kDefaultCurveBuckets, 1, kMaxCurveBuckets);
  for (const auto& [key, bound] : {std::pair{"from", &r.from}, std::pair{"to", &r.to}}) {
    if (req.query.count(key))
      *bound = static_cast<std::int64_t>(query_number(req, key, 0, 0, kMaxCurveX));
  }
  if (r.from && r.to && *r.from > *r.to) {
    throw std::invalid_argument("from: " + std::to_string(*r.from) + " is after to (" +
                                std::to_string(*r.to) + ")");
  }
  return r;
}

Response curve_get(CoordinatorState& s, Request& req) {
  const std::string& job = req.params[0];
  const CurveRequest r = curve_request(req);
  if (!s.queue.get(job)) return Response::error(404, no_such_job(job));
  return Response::json(200, nlohmann::json(s.telemetry.buckets(job, r)));
}

}  // namespace

void add_telemetry_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kJobTelemetry),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 return telemetry_post(s, req, host);
               })});
  r.push_back({"GET", std::string(api::kJobTelemetry),
               for_readers(s, [&s](Request& req, BodyStream*) { return telemetry_get(s, req); })});
  r.push_back({"GET", std::string(api::kJobCurve),
               for_readers(s, [&s](Request& req, BodyStream*) { return curve_get(s, req); })});
}

}  // namespace tv::fleet::coordinator
