// The coordinator: the fleet's job queue, artifact store and manifest behind the HTTP API.
//
//   GET  /v1/health                                   anyone
//   GET  /v1/jobs[?status=S]   GET /v1/job/{id}       anyone
//   GET  /v1/workers           GET /v1/job/{id}/artifacts
//   GET  /v1/artifact/{digest} (download)  HEAD-like: GET /v1/artifact/{digest}/stat
//   POST /v1/job/claim                                worker token
//   POST /v1/job/{id}/heartbeat|running|complete|fail worker token + the claim's lease token
//   PUT  /v1/job/{id}/artifact/{name}                 worker token + lease; body streamed
//   POST /v1/job/{id}/cancel|requeue                  operator token
//   POST /v1/manifest/reload[?dry_run=1]              operator token
//   GET  /v1/job/{id}/config  POST /v1/job/{id}/config (a human: operator token; a policy: worker
//        token)  POST .../config/freeze|unfreeze (operator)  GET .../config/log
//   GET  /v1/job/{id}/config/stream?from=REV          worker token; WebSocket (below)
//   POST /v1/job/{id}/telemetry                       worker token, from the job's holder
//   GET  /v1/job/{id}/telemetry[?max_points=N]        anyone: the curve and applied revision
//
// The config stream pushes JSON text messages to the host agent of one job:
//   {"type":"snapshot","revision":R,"values":{...},"frozen":[...]}  (from=0, too old, or ahead)
//   {"type":"resume","frozen":[...]}      then the deltas after `from`, in order
//   {"type":"delta","revision":R,"actor":A,"writes":{...}}
//   {"type":"freeze","prefix":P,"frozen":true|false}
//   {"type":"keepalive","revision":R}     every stream_keepalive; R: the newest revision sent
// A receiver that sees a revision other than its own + 1, or a keepalive naming a revision it
// has not seen, lost a message: it resubscribes from its own revision.
//
// Tokens travel in X-Worker-Token / X-Operator-Token and are compared in constant time; an unset
// token refuses every request that needs it. A call from a holder whose lease was swept (or whose
// job was requeued) gets 409: only the current holder can heartbeat, complete, fail or upload.
// A stale sweep runs on its own thread every sweep_every.
//
// Thread-safety: HTTP handlers run on connection threads; the queue and the store are safe for
// that, the manifest reload is serialised by a mutex.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/job_queue.hpp"

namespace tv::fleet {

struct CoordinatorOptions {
  std::string data_dir;       // coordinator.sqlite and artifacts/ live here
  std::string manifest_path;  // loaded at start and on reload; empty: no jobs until one is given
  std::string operator_token;
  std::string worker_token;
  std::vector<std::string> plugin_dirs;  // for manifest validation, before the defaults
  http::ServerOptions http;
  QueueOptions queue;
  std::uint64_t max_artifact_bytes = std::uint64_t{8} << 30;
  std::chrono::milliseconds sweep_every{std::chrono::seconds(5)};
  std::chrono::milliseconds stream_keepalive{500};
  // Test hooks for the config stream: every Nth delta is not sent (a lost message); the
  // connection is dropped after every Nth message. 0: off.
  struct StreamFault {
    int skip_every = 0;
    int close_every = 0;
  } stream_fault;
};

struct ReloadSummary {
  std::vector<std::string> added;  // job names
  std::vector<std::string> unchanged;
  std::vector<std::string> removed;  // in the queue, no longer in the manifest (kept)
  ManifestReport report;             // what was written (nothing for a dry run)
};

class Coordinator {
 public:
  // Opens the data directory and the manifest and starts serving. Throws std::runtime_error
  // (a ManifestError for a bad manifest) naming what failed; nothing is written then.
  explicit Coordinator(CoordinatorOptions options);
  ~Coordinator();

  std::uint16_t port() const;
  std::string url() const;  // http(s)://bind:port
  // Re-reads the manifest. Throws ManifestError; a dry run writes nothing.
  ReloadSummary reload(bool dry_run);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The JSON forms of the API (also used by its clients).
nlohmann::json job_spec_json(const JobSpec& spec);
JobSpec job_spec_from_json(const nlohmann::json& j);
nlohmann::json capability_json(const HostCapability& c);
HostCapability capability_from_json(const nlohmann::json& j);
nlohmann::json job_row_json(const JobRow& row);
nlohmann::json telemetry_point_json(const plugin::TelemetryPoint& p);
plugin::TelemetryPoint telemetry_point_from_json(const nlohmann::json& j);
// Config values keep their JSON type: a float is written with a decimal point.
nlohmann::json config_values_json(const plugin::ConfigView& values);
plugin::ConfigView config_values_from_json(const nlohmann::json& j);

}  // namespace tv::fleet
