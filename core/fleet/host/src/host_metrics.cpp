#include "host_metrics.hpp"

#include <cmath>

#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet {
namespace {

// The step rate is measured over at least this much of the trainer's own clock, so that a
// trainer reporting in bursts does not show as a spike.
constexpr std::int64_t kRateWindowNs = 1'000'000'000;
// The most points looked back for that window: a cost bound for a trainer reporting very often.
constexpr std::size_t kRateLookback = 1000;

}  // namespace

HostMetrics::HostMetrics()
    : jobs_running(
          registry.gauge("trainvisor_host_jobs_running", "Jobs this host runs now.").get()),
      claims_attempted(registry
                           .counter("trainvisor_host_claims_attempted_total",
                                    "Claims this host asked the coordinator for.")
                           .get()),
      claims_granted(
          registry
              .counter("trainvisor_host_claims_granted_total", "Claims that gave this host a job.")
              .get()),
      heartbeats_sent(
          registry.counter("trainvisor_host_heartbeats_sent_total", "Lease heartbeats answered.")
              .get()),
      heartbeats_failed(registry
                            .counter("trainvisor_host_heartbeats_failed_total",
                                     "Lease heartbeats refused or unanswered.")
                            .get()),
      telemetry_forwarded(registry
                              .counter("trainvisor_host_telemetry_points_forwarded_total",
                                       "Telemetry points the coordinator accepted.")
                              .get()),
      telemetry_lost(registry
                         .counter("trainvisor_host_telemetry_points_lost_total",
                                  "Telemetry records the host's reader missed (the trainer "
                                  "overwrote them first).")
                         .get()),
      config_applied(registry
                         .counter("trainvisor_host_config_revisions_applied_total",
                                  "Config revisions the config agents wrote into jobs' blocks.")
                         .get()),
      config_refused(registry
                         .counter("trainvisor_host_config_revisions_refused_total",
                                  "Config revisions the config agents refused.")
                         .get()),
      job_step_rate(registry.gauge("trainvisor_host_job_step_rate",
                                   "Training steps per second of a running job.", {"job"})),
      job_loss(registry.gauge("trainvisor_host_job_loss",
                              "The last training loss of a running job.", {"job"})),
      trainer_exits(registry.counter("trainvisor_host_trainer_exits_total",
                                     "Trainers that ended here, by how the job ended.",
                                     {"class"})) {}

void HostMetrics::job_progress(const std::string& job,
                               const std::vector<plugin::TelemetryPoint>& history) {
  if (history.empty()) return;
  const plugin::TelemetryPoint& last = history.back();
  const std::size_t lookback = std::min(history.size() - 1, kRateLookback);
  for (std::size_t back = 1; back <= lookback; ++back) {
    const plugin::TelemetryPoint& then = history[history.size() - 1 - back];
    const std::int64_t span_ns = last.wall_time_ns - then.wall_time_ns;
    if (span_ns < kRateWindowNs && back < lookback) continue;
    if (span_ns > 0 && last.step >= then.step)
      job_step_rate.with({job}).set(static_cast<double>(last.step - then.step) * 1e9 /
                                    static_cast<double>(span_ns));
    break;
  }
  // A step without a loss (an evaluation's record) keeps the last one shown.
  for (auto it = history.rbegin(); it != history.rend(); ++it) {
    if (std::isfinite(it->loss)) {
      job_loss.with({job}).set(it->loss);
      break;
    }
  }
}

void HostMetrics::job_ended(const std::string& job) {
  job_step_rate.remove({job});
  job_loss.remove({job});
}

std::unique_ptr<http::Server> serve_metrics(const HostMetrics& m, const std::string& bind,
                                            std::uint16_t port) {
  http::ServerOptions o;
  o.bind = bind;
  o.port = port;
  // A scraper or two: a few threads and connections are plenty.
  o.io_threads = 1;
  o.handler_threads = 2;
  o.max_connections = 16;
  o.max_websocket_sessions = 0;
  std::vector<http::Route> routes;
  routes.push_back({"GET", std::string(api::kMetrics), [&m](http::Request&, http::BodyStream*) {
                      http::Response r;
                      r.content_type = std::string(metrics::kContentType);
                      r.body = m.registry.render();
                      return r;
                    }});
  return std::make_unique<http::Server>(std::move(o), std::move(routes));
}

}  // namespace tv::fleet
