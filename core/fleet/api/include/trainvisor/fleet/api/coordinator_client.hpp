// The typed client of the coordinator's API: the one way the host daemon, the config agent, the
// operator CLI and the benchmarks reach a coordinator. Each call is one HTTP request with the
// options' deadline (an upload's deadline is per piece without progress).
//
// Errors, one style:
// - a refusal is a value: Reply<T> holds either the reply or the coordinator's ErrorReply with
//   its HTTP status (409 for a lease that is no longer the caller's, 404 for an unknown job, ...);
// - an unreachable, hung or broken coordinator throws std::runtime_error (http::Client's), and
//   so does a success reply this protocol cannot read: the caller tries again later or gives up.
//
// Thread-safety: a CoordinatorClient is one keep-alive connection and belongs to one thread. A
// ConfigStreamReader runs on one thread; interrupt() may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "trainvisor/fleet/api/artifacts.hpp"
#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/job_log.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/api/manifest.hpp"
#include "trainvisor/fleet/api/pipelines.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"
#include "trainvisor/fleet/http.hpp"

namespace tv::fleet::api {

struct CoordinatorClientOptions {
  http::ClientOptions http;                // url, CA file, deadline per call
  std::string worker_token;                // for a host's enrolment (enrol_self)
  std::string host_credential;             // "NAME:SECRET": for a host's calls
  std::string operator_token;              // for operator calls
  std::string read_token;                  // for reads; any of the three tokens reads
  std::string operator_name = "operator";  // the human:NAME of an operator's config writes
};

// A call's outcome: the reply, or the coordinator's refusal.
template <class T>
class Reply {
 public:
  static Reply accepted(int status, T value) { return Reply(status, std::move(value)); }
  static Reply refused(ErrorReply error) { return Reply(std::move(error)); }

  explicit operator bool() const { return value_.has_value(); }
  const T& operator*() const { return *value_; }
  const T* operator->() const { return &*value_; }
  int status() const { return status_; }
  const ErrorReply& error() const { return error_; }
  // The coordinator does not count the caller as the job's holder (swept, requeued, unknown,
  // another host's).
  bool lease_lost() const { return status_ == 409 || status_ == 404 || status_ == 403; }

 private:
  Reply(int status, T value) : status_(status), value_(std::move(value)) {}
  explicit Reply(ErrorReply e) : status_(e.status), error_(std::move(e)) {}
  int status_ = 0;
  std::optional<T> value_;
  ErrorReply error_;
};

struct Ok {};  // a reply with nothing in it but success

class CoordinatorClient {
 public:
  explicit CoordinatorClient(CoordinatorClientOptions options);  // throws for a bad URL
  ~CoordinatorClient();
  CoordinatorClient(CoordinatorClient&&) noexcept;

  const CoordinatorClientOptions& options() const;
  // The credential host calls carry from now on: a host learns it at enrolment.
  void set_host_credential(std::string credential);

  // A credential for `host`, which has none yet (worker token; 409 once it has one).
  Reply<EnrolReply> enrol_self(const std::string& host);

  // Host calls (host credential; the coordinator takes the host from it).
  Reply<ClaimReply> claim(const ClaimRequest& request);
  Reply<HeartbeatReply> heartbeat(const std::string& job, const std::string& lease_token);
  Reply<Ok> mark_running(const std::string& job, const std::string& lease_token);
  Reply<Ok> complete(const std::string& job, const CompleteRequest& request);
  Reply<Ok> fail(const std::string& job, const FailRequest& request);
  Reply<std::uint64_t> send_telemetry(const std::string& job, const TelemetryBatch& batch);
  // The tail of the job's trainer log (job_log.hpp): `tail` is whole lines of the log's bytes;
  // `truncated` says older lines were left out.
  Reply<Ok> send_log(const std::string& job, const std::string& lease_token,
                     const std::string& tail, bool truncated);
  // Streams the file at `path` as the job's artifact `name`; `sha256` is its digest (hex).
  Reply<UploadReply> upload(const std::string& job, const std::string& name,
                            const std::string& path, const std::string& sha256,
                            const std::string& lease_token);

  // A config write: a policy's (request.policy set: host credential) or a human's (operator
  // token).
  Reply<ConfigWriteReply> write_config(const std::string& job, const ConfigWriteRequest& request);

  // Operator calls (operator token).
  Reply<CancelReply> cancel(const std::string& job);
  // From step 0, or with `from_checkpoint` from the checkpoint the next host finds.
  Reply<Ok> requeue(const std::string& job, bool from_checkpoint = false);
  Reply<std::vector<std::string>> freeze(const std::string& job, const std::string& prefix);
  Reply<std::vector<std::string>> unfreeze(const std::string& job, const std::string& prefix);
  Reply<ReloadReply> reload_manifest(bool dry_run);
  // A new credential for `host`, replacing any earlier one; revoke makes it worthless.
  Reply<EnrolReply> enrol(const std::string& host);
  Reply<RevokeReply> revoke(const std::string& host);

  // Reads (no token).
  Reply<Health> health();
  Reply<std::vector<JobInfo>> jobs(std::optional<JobStatus> status = std::nullopt);
  Reply<JobInfo> job(const std::string& job);
  // A job by full id, name or unique id prefix (kJobByRef): 409 when the reference is ambiguous.
  Reply<JobInfo> job_by_ref(const std::string& ref);
  Reply<std::vector<HostVerdict>> explain(const std::string& job);
  Reply<std::vector<WorkerInfo>> workers();
  Reply<ArtifactStat> artifact_stat(const std::string& digest);
  Reply<std::vector<ArtifactInfo>> artifacts(const std::string& job);
  Reply<Ok> download_artifact(const std::string& digest, const std::string& path);
  // A pipeline's segment (kSegment), as the coordinator stored it.
  Reply<Ok> download_segment(const std::string& digest, const std::string& path);
  // Ingest of one sample batch (`body`: pipelines::encode_batch's bytes) as an operator; a
  // non-empty `idempotency_key` makes a batch sent again a no-op (IngestReply::repeated).
  Reply<IngestReply> ingest(const std::string& pipeline, const std::string& body,
                            const std::string& idempotency_key);
  // Pipelines (reads), and an operator's moves of a pipeline's alias.
  Reply<std::vector<PipelineSummary>> pipelines();
  Reply<PipelineDetail> pipeline(const std::string& name);
  Reply<TriggerList> pipeline_triggers(const std::string& name);
  Reply<AliasMove> deploy(const std::string& pipeline, const DeployRequest& request);
  Reply<AliasMove> rollback(const std::string& pipeline, const RollbackRequest& request);
  Reply<ConfigInfo> config(const std::string& job);
  Reply<std::vector<AuditRecord>> config_log(const std::string& job, std::uint64_t after,
                                             std::uint64_t limit);
  Reply<TelemetryCurve> telemetry(const std::string& job, std::uint64_t max_points);
  Reply<JobLog> job_log(const std::string& job);

 private:
  Reply<std::vector<std::string>> set_frozen(std::string_view route, const std::string& job,
                                             const std::string& prefix);

  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One job's config stream, as its host's agent reads it.
class ConfigStreamReader {
 public:
  // Connects and completes the upgrade. A refusal throws http::WebSocketRefused; an unreachable
  // coordinator std::runtime_error.
  ConfigStreamReader(const http::ClientOptions& coordinator, const std::string& host_credential,
                     const std::string& job, std::uint64_t from_revision);
  ~ConfigStreamReader();

  // The next message. Throws std::runtime_error when the stream closed, broke, stayed silent
  // for `idle`, was interrupted, or sent a message this protocol cannot read.
  StreamMessage next(std::chrono::milliseconds idle);
  void interrupt();  // thread-safe
  void close();      // best effort

 private:
  std::unique_ptr<http::WebSocketClient> ws_;
};

}  // namespace tv::fleet::api
