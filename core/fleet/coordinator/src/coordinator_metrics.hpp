// The coordinator's Prometheus metrics, registered in one place and served at GET /metrics: what
// the routes and the sweeper count as it happens, and the jobs by status, read from the queue at
// each scrape. Private to the coordinator.
//
// Thread-safety: every member is safe from any thread (tv_metrics' series, and the pending
// writes of the apply lag behind their own mutex).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/metrics.hpp"

namespace tv::fleet {
class JobQueue;
}

namespace tv::fleet::coordinator {

// The time from an accepted config write to the first telemetry batch whose points show its
// revision (or a later one) applied. Writes wait here in memory: one the trainer never applies
// (its job ended) is dropped once kMaxPending are waiting, the oldest first; a restart forgets
// them (their lag is then not observed).
class ApplyLag {
 public:
  static constexpr std::size_t kMaxPending = 4096;
  void written(const std::string& job, std::uint64_t revision, std::int64_t time_ms);
  // Observes, in seconds, every waiting write of `job` at or before `revision`, and forgets it.
  void applied(const std::string& job, std::uint64_t revision, std::int64_t now_ms,
               metrics::Histogram& lag);

 private:
  std::mutex mu_;
  std::map<std::pair<std::string, std::uint64_t>, std::int64_t> pending_;  // -> write time, ms
};

struct CoordinatorMetrics {
  // Registers every family; `queue` is read at each scrape (jobs by status).
  explicit CoordinatorMetrics(const JobQueue& queue);

  metrics::Registry registry;
  metrics::Family<metrics::Gauge>& jobs;      // status
  metrics::Family<metrics::Counter>& claims;  // outcome
  metrics::Counter& claims_granted;
  metrics::Counter& claims_none;
  metrics::Counter& stale_sweeps;
  metrics::Counter& swept_leases;
  metrics::Family<metrics::Counter>& config_writes;  // actor_kind, outcome
  metrics::Histogram& config_apply_lag;
  metrics::Gauge& config_streams;
  metrics::Gauge& event_connections;
  metrics::Counter& telemetry_batches;
  metrics::Counter& telemetry_points;
  metrics::Family<metrics::Counter>& http_requests;            // route, method, code
  metrics::Family<metrics::Histogram>& http_request_duration;  // route
  metrics::Counter& artifact_uploaded_bytes;
  metrics::Counter& artifact_downloaded_bytes;
  ApplyLag apply_lag;

  // ServerOptions::on_request.
  void observe_request(const http::RequestObservation& r);
  // A config write decided for `actor` ("human:NAME", "policy:NAME", "api"; anything else counts
  // as api).
  void config_write(const std::string& actor, bool accepted);
  // A revision a host's config agent could not apply (actor_kind "agent", outcome "refused").
  void agent_refusal() { config_writes.with({"agent", "refused"}).inc(); }
};

}  // namespace tv::fleet::coordinator
