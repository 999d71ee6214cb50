#include "coordinator_metrics.hpp"

#include <charconv>

#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/job_queue.hpp"

namespace tv::fleet::coordinator {
namespace {

// A write reaches a trainer within a telemetry round or two (about a second each) when all is
// well; the long buckets show a host that is away.
constexpr double kApplyLagBuckets[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

std::string_view actor_kind(const std::string& actor) {
  const auto a = api::Actor::parse(actor);
  if (a && a->is_human()) return "human";
  if (a && a->is_policy()) return "policy";
  return "api";
}

}  // namespace

void ApplyLag::written(const std::string& job, std::uint64_t revision, std::int64_t time_ms) {
  std::lock_guard lock(mu_);
  if (pending_.size() >= kMaxPending) {
    auto oldest = pending_.begin();
    for (auto it = pending_.begin(); it != pending_.end(); ++it)
      if (it->second < oldest->second) oldest = it;
    pending_.erase(oldest);
  }
  pending_[{job, revision}] = time_ms;
}

void ApplyLag::applied(const std::string& job, std::uint64_t revision, std::int64_t now_ms,
                       metrics::Histogram& lag) {
  std::lock_guard lock(mu_);
  auto it = pending_.lower_bound({job, 0});
  while (it != pending_.end() && it->first.first == job && it->first.second <= revision) {
    lag.observe(static_cast<double>(std::max<std::int64_t>(0, now_ms - it->second)) / 1000.0);
    it = pending_.erase(it);
  }
}

CoordinatorMetrics::CoordinatorMetrics(const JobQueue& queue)
    : jobs(registry.gauge("trainvisor_jobs", "Jobs in the queue by status.", {"status"})),
      claims(registry.counter("trainvisor_claims_total",
                              "Claims by hosts: granted a job, or none to give.", {"outcome"})),
      claims_granted(claims.with({"granted"})),
      claims_none(claims.with({"none"})),
      stale_sweeps(registry
                       .counter("trainvisor_stale_sweeps_total",
                                "Rounds of the sweeper that returns expired leases' jobs.")
                       .get()),
      swept_leases(registry
                       .counter("trainvisor_swept_leases_total",
                                "Leases lost to the sweeper (their holder stopped heartbeating).")
                       .get()),
      config_writes(registry.counter("trainvisor_config_writes_total",
                                     "Config writes by the writer's kind and whether they were "
                                     "accepted (agent: refused by a host's config agent).",
                                     {"actor_kind", "outcome"})),
      config_apply_lag(registry
                           .histogram("trainvisor_config_apply_lag_seconds",
                                      "Time from an accepted config write to the first telemetry "
                                      "showing its revision applied.",
                                      {}, kApplyLagBuckets)
                           .get()),
      config_streams(
          registry.gauge("trainvisor_config_streams", "Host agents' config streams open now.")
              .get()),
      event_connections(
          registry.gauge("trainvisor_event_connections", "Dashboards' event channels open now.")
              .get()),
      telemetry_batches(
          registry.counter("trainvisor_telemetry_batches_total", "Telemetry batches received.")
              .get()),
      telemetry_points(
          registry.counter("trainvisor_telemetry_points_total", "Telemetry points received.")
              .get()),
      http_requests(registry.counter("trainvisor_http_requests_total",
                                     "HTTP requests by route pattern, method and status code.",
                                     {"route", "method", "code"})),
      http_request_duration(
          registry.histogram("trainvisor_http_request_duration_seconds",
                             "Time from a request's head to its answer, by route pattern.",
                             {"route"}, metrics::kLatencyBuckets)),
      artifact_uploaded_bytes(registry
                                  .counter("trainvisor_artifact_uploaded_bytes_total",
                                           "Artifact bytes stored from hosts' uploads.")
                                  .get()),
      artifact_downloaded_bytes(registry
                                    .counter("trainvisor_artifact_downloaded_bytes_total",
                                             "Artifact bytes served to downloads.")
                                    .get()) {
  for (const auto& [status, name] : kJobStatusNames)
    jobs.with({name});
  for (const char* kind : {"human", "policy", "api"})
    for (const char* outcome : {"accepted", "refused"})
      config_writes.with({kind, outcome});
  config_writes.with({"agent", "refused"});  // an agent only ever refuses
  registry.on_scrape([this, &queue] {
    for (const auto& [status, n] : queue.counts())
      jobs.with({to_string(status)}).set(static_cast<double>(n));
  });
}

void CoordinatorMetrics::observe_request(const http::RequestObservation& r) {
  char code[8];
  const auto end = std::to_chars(code, code + sizeof code, r.status).ptr;
  http_requests.with({r.pattern, r.method, std::string_view(code, end - code)}).inc();
  http_request_duration.with({r.pattern})
      .observe(std::chrono::duration<double>(r.duration).count());
}

void CoordinatorMetrics::config_write(const std::string& actor, bool accepted) {
  config_writes.with({actor_kind(actor), accepted ? "accepted" : "refused"}).inc();
}

}  // namespace tv::fleet::coordinator
