// What the coordinator's route handlers share: its options, its state (the CoordinatorStore's
// queue, config hub and telemetry; the artifact store) and the manifest reload. Private to the
// coordinator.
//
// Error style at the routes: a handler chooses the HTTP status. Stores report expected failures
// as values (QueueResult, ArtifactResult, ConfigWriteResult) or as their own exception types,
// which the handler maps; a malformed request body throws std::invalid_argument or a JSON
// exception, which the HTTP server answers with 400.
//
// Thread-safety: handlers run on connection threads; the queue, hub, telemetry store and
// artifact store are safe for that; the worker cache and the log tails have their own mutex.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "coordinator_metrics.hpp"
#include "job_logs.hpp"
#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/artifact_store.hpp"
#include "trainvisor/fleet/config_hub.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/coordinator_store.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/job_queue.hpp"
#include "trainvisor/fleet/pipelines/pipeline_store.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"
#include "trainvisor/fleet/pipelines/trigger_runner.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"

namespace tv::fleet::coordinator {

using Handler = std::function<http::Response(http::Request&, http::BodyStream*)>;

struct CoordinatorState {
  // Creates the data directory and opens the state in it. Throws std::runtime_error naming what
  // failed.
  CoordinatorState(CoordinatorOptions options, std::function<ReloadSummary(bool)> reload);

  CoordinatorOptions options;
  bool reads_public;       // options.public_reads, or the bind address's default
  CoordinatorStore store;  // the queue, config and telemetry tables in one database
  JobQueue& queue;
  ConfigHub& hub;
  TelemetryStore& telemetry;
  HostCredentials& hosts;
  CoordinatorMetrics metrics;  // served at GET /metrics (metrics_routes.cpp)
  std::optional<ArtifactStore> artifacts;
  // Pipelines: their streams' segments (data_dir/segments), cursors, firings and aliases, and
  // the thread that runs their triggers (stopped first: it uses the stores above).
  std::optional<pipelines::SegmentStore> segments;
  std::optional<pipelines::PipelineStore> pipeline_store;
  std::unique_ptr<pipelines::TriggerRunner> runner;
  std::function<ReloadSummary(bool dry_run)> reload;
  JobLogs logs;  // each job's newest trainer-log tail (memory only)

  // Workers claim every few seconds; their row is written when their capability changes and
  // refreshed (last_seen) at most every 10 s, not on every claim: each write is an fsync.
  void note_worker(const std::string& name, const HostCapability& capability);

  // The hub's revision of a job (nullopt: no tree) and the one its trainer last applied.
  api::ConfigLag config_lag(const std::string& job);
  std::optional<std::uint64_t> desired_revision(const std::string& job);
  std::optional<api::AppliedConfig> applied(const std::string& job);
  api::JobInfo job_info(const JobRow& row);

  // Now in Unix milliseconds: the queue's clock (tests move it), else the system's.
  std::int64_t now_ms() const;

  // What the trigger runner calls: the queue and the hub for its jobs, the preflight, the log.
  pipelines::RunnerHooks runner_hooks();
  // Why a pipeline cannot run here (RunnerHooks::preflight).
  std::optional<std::string> pipeline_preflight(const PipelineSpec& p);

  // What went wrong in a background task (the sweeper), for the operator's log.
  void log_error(const std::string& what) const;

 private:
  std::mutex workers_mu_;
  std::map<std::string, std::pair<nlohmann::json, std::chrono::steady_clock::time_point>> seen_;
};

// A host's call: the handler gets the host that the request's credential proves.
using HostHandler =
    std::function<http::Response(http::Request&, http::BodyStream*, const std::string& host)>;

// Authorisation, one wrapper per role: the handler runs only with the role's token or, for a
// host, a valid X-Host-Credential (401 otherwise). A reader holds the read, operator or worker
// token or a host credential, or nothing when reads are public.
Handler for_hosts(const CoordinatorState& s, HostHandler h);
Handler for_operators(const CoordinatorState& s, Handler h);
Handler for_readers(const CoordinatorState& s, Handler h);
// The ingest, worker or operator token.
Handler for_ingesters(const CoordinatorState& s, Handler h);
bool is_worker(const CoordinatorState& s, const http::Request& req);
bool is_operator(const CoordinatorState& s, const http::Request& req);
// The host the request's X-Host-Credential proves, or nullopt (none, unknown, revoked, wrong).
std::optional<std::string> credited_host(const CoordinatorState& s, const http::Request& req);
// The 401 for a host call without a valid credential.
http::Response no_host_credential();
// The 403 for a host acting on a job another host holds.
http::Response not_the_holder(const std::string& job, const std::string& holder,
                              const std::string& host);
// "human:NAME" for an operator's request (X-Operator-Name, default "operator"); a name over
// api::kMaxLabelBytes throws std::invalid_argument (400).
std::string operator_actor(const http::Request& req);

// A queue's answer to a lease or operator call: 200, or 404/409 with why.
http::Response queue_reply(QueueResult r, const std::string& job_id);
// A queue's answer to `host`'s lease call: queue_reply, with a 403 naming the job's holder for
// kNotHolder.
http::Response lease_reply(CoordinatorState& s, QueueResult r, const std::string& job_id,
                           const std::string& host);
// The 404 text for an unknown job.
std::string no_such_job(const std::string& job);
// A query parameter that must be a whole number in lo..hi (`dflt` when absent); throws
// std::invalid_argument naming it and the range (api::checked_param).
std::uint64_t query_number(const http::Request& req, const char* key, std::uint64_t dflt,
                           std::uint64_t lo, std::uint64_t hi);
// The request body as a JSON object ({} when empty); throws std::invalid_argument otherwise.
nlohmann::json body_json(const http::Request& req);

// The routes of each resource, appended to `routes`.
void add_job_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_artifact_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_config_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_telemetry_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_manifest_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_host_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_log_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_knob_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_pipeline_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_pipeline_read_routes(CoordinatorState& s, std::vector<http::Route>& routes);
// The dashboard's bundle (web_routes.cpp) and its push channel (event_routes.cpp).
void add_web_routes(CoordinatorState& s, std::vector<http::Route>& routes);
void add_event_routes(CoordinatorState& s, std::vector<http::Route>& routes);
// GET /metrics, the Prometheus text format, for readers (metrics_routes.cpp).
void add_metrics_routes(CoordinatorState& s, std::vector<http::Route>& routes);
// What every response of the coordinator carries: a strict Content-Security-Policy, nosniff,
// no referrer, and "Cache-Control: no-store" (API data is never cached; the bundle's routes
// set their own).
std::vector<std::pair<std::string, std::string>> security_headers();
// A pipeline training's end (pipeline_outcomes.cpp): its evaluation through the gate, the
// outcome and the alias move recorded, the deployment directory updated. settle_trainings does it
// for every training still open (the sweeper, after a crash).
void settle_training(CoordinatorState& s, const JobRow& row);
void settle_trainings(CoordinatorState& s);
// Writes the alias's bundle to the pipeline's deployment directory (when it has one); a failure
// is logged, not thrown.
void publish_deployment(CoordinatorState& s, const PipelineSpec& spec,
                        const pipelines::AliasState& alias);
// The 404 for a pipeline the manifest does not have, with the closest name and the list.
http::Response no_such_pipeline(const CoordinatorState& s, const std::string& name);

}  // namespace tv::fleet::coordinator
