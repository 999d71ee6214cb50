// The coordinator: the fleet's job queue, config hub, telemetry and artifact store behind the
// HTTP API. The routes, their messages and the config stream's protocol are defined in
// core/fleet/api (paths.hpp lists who may call what); the handlers live by resource in src/.
//
// Tokens travel in X-Worker-Token / X-Operator-Token / X-Read-Token and are compared in constant
// time; an unset token refuses every request that needs it. Reads (jobs, workers, configs, audit
// log, telemetry, artifacts) take any of the three tokens or a host credential unless reads are
// public; health is always open (a liveness probe).
//
// Hosts: the worker token only enrols a host name (POST /v1/hosts/NAME/enrol, trust on first
// use); every host call then carries the credential it got (X-Host-Credential: NAME:SECRET, kept
// hashed in the database), and the coordinator takes the host from it, never from a body. A
// lease is bound to the host that claimed it: heartbeat, running, complete, fail, upload,
// telemetry, the config stream and policy writes from another host get 403 naming the holder;
// a call from a holder whose lease was swept (or whose job was requeued) gets 409. A host writes
// config only as one of the job's policies, and reports only trainer_failure or host_lost (or
// acknowledges an operator's cancel): only an operator's cancel ends a job cancelled.
//
// The dashboard: its bundle at / (web_root), one metric's downsampled curve, config markers, the
// knob schema, each job's trainer-log tail (sent by its host, kept in memory: the newest one a
// job, the last one after it ended) and the events push channel for readers; every response carries
// a strict Content-Security-Policy, nosniff and no-referrer.
//
// Files: the data directory is made owner-only (0700) at start, with a line to on_error (or
// stderr) when it was not, and the database files are 0600.
// A write that meets a full disk (store::StorageFull, an artifact's ENOSPC) gets 507 "disk full:
// WHAT writing METHOD PATH (FILE)" from every route; nothing of it is stored, reads go on, and
// writes succeed again once space is freed, without a restart.
// A stale sweep runs on its own thread every sweep_every; a sweep that fails is reported through
// on_error and retried next round.
//
// Thread-safety: HTTP handlers run on connection threads; the queue and the stores are safe for
// that, the manifest reload is serialised by a mutex.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/api/manifest.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/job_queue.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"

namespace tv {
class PluginRegistry;
}
namespace tv::fleet::pipelines {
class Embedder;
}

namespace tv::fleet {

struct CoordinatorOptions {
  std::string data_dir;       // coordinator.sqlite and artifacts/ live here
  std::string manifest_path;  // loaded at start and on reload; empty: no jobs until one is given
  std::string operator_token;
  std::string worker_token;
  std::string read_token;    // reads only; the operator and worker tokens read too
  std::string ingest_token;  // a pipeline's samples only; the operator and worker tokens too
  // Reads without a token. Unset: public when http.bind is a loopback address (only this
  // machine can ask), a token required otherwise (telemetry and configs stay off the network).
  std::optional<bool> public_reads;
  std::vector<std::string> plugin_dirs;  // for manifest validation, before the defaults
  // The dashboard's bundle (index.html, assets/), served at / and /assets/; empty or without
  // index.html: those routes answer 404 saying the dashboard is not built. The CLI's
  // default_web_root() finds the build's or the install's.
  std::string web_root;
  // Makes the embedder of the pipelines whose trigger reads embeddings, from the plugins a
  // manifest was loaded with (which outlive it) and the path of an artifact by digest (throws
  // when there is none). Unset: such a pipeline stops with an error saying so. The trainer
  // library's ModelEmbedder is the one `trainvisor coordinator` gives.
  std::function<std::shared_ptr<pipelines::Embedder>(
      const PluginRegistry&, std::function<std::filesystem::path(const std::string&)>)>
      make_embedder;
  http::ServerOptions http;
  QueueOptions queue;
  TelemetryOptions telemetry;  // how many points each job's curve keeps
  std::uint64_t max_artifact_bytes = std::uint64_t{8} << 30;
  // How often expired leases are swept: a lost host's job is pending again at most
  // queue.stale_after + sweep_every after its last heartbeat.
  std::chrono::milliseconds sweep_every{std::chrono::seconds(5)};
  std::chrono::milliseconds stream_keepalive{500};
  // Test hooks for the config stream: every Nth delta is not sent (a lost message); the
  // connection is dropped after every Nth message. 0: off.
  struct StreamFault {
    int skip_every = 0;
    int close_every = 0;
  } stream_fault;
  // What the operator should read in the log: a background task that failed (a stale sweep),
  // the manifest's warnings at start, a data directory whose mode was narrowed at start;
  // default: a line on stderr.
  std::function<void(const std::string&)> on_error;
};

// A fresh token for CoordinatorOptions (32 hex digits from OpenSSL's generator), for a process
// that runs a coordinator for itself (`up`, `replay`). Throws std::runtime_error when no random
// bytes can be had.
std::string random_token();

struct ReloadSummary {
  std::vector<std::string> added;  // job names (replacements included)
  std::vector<std::string> unchanged;
  std::vector<std::string> removed;  // in the queue, no longer in the manifest (kept)
  ManifestReport report;             // what was written (nothing for a dry run)
  // Added jobs whose name the queue already holds under other ids (their spec changed): both
  // stay, and a name shared by several jobs no longer resolves to one.
  std::vector<api::ReplacedJob> replaced;
  // The manifest's warnings (manifest_warnings, with the registered workers as known hosts).
  std::vector<std::string> warnings;
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

}  // namespace tv::fleet
