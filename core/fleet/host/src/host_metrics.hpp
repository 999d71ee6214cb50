// The host daemon's Prometheus metrics and the small HTTP listener that serves them at
// GET /metrics (HostDaemonOptions::metrics_port). Private to the host daemon.
//
// Thread-safety: the daemon's loop updates the series; the listener's threads render them; both
// are safe (tv_metrics). Per-job series are created and removed by the loop alone.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/metrics.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

struct HostMetrics {
  HostMetrics();

  metrics::Registry registry;
  metrics::Gauge& jobs_running;
  metrics::Counter& claims_attempted;
  metrics::Counter& claims_granted;
  metrics::Counter& heartbeats_sent;
  metrics::Counter& heartbeats_failed;
  metrics::Counter& telemetry_forwarded;
  metrics::Counter& telemetry_lost;
  metrics::Counter& config_applied;
  metrics::Counter& config_refused;
  metrics::Family<metrics::Gauge>& job_step_rate;    // job, only while it runs
  metrics::Family<metrics::Gauge>& job_loss;         // job, only while it runs
  metrics::Family<metrics::Counter>& trainer_exits;  // class

  // The per-job gauges from the trainer's telemetry so far (its history, oldest first).
  void job_progress(const std::string& job, const std::vector<plugin::TelemetryPoint>& history);
  // Removes the job's series: it no longer runs here.
  void job_ended(const std::string& job);
};

// Serves `m` at GET /metrics on bind:port (port 0: any free one). Throws std::runtime_error
// naming the address when it cannot listen.
std::unique_ptr<http::Server> serve_metrics(const HostMetrics& m, const std::string& bind,
                                            std::uint16_t port);

}  // namespace tv::fleet
