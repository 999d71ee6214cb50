// The coordinator's job queue: the jobs of the manifest, the host policies and the registered
// workers in SQLite (WAL, through the store layer, store/connection.hpp), with atomic claims and
// fenced leases. The coordinator keeps them in its one database (coordinator_store.hpp).
//
// Who calls it: the coordinator (manifest reload, HTTP job and worker endpoints, the periodic
// stale sweep, operator cancel/requeue) and the embedded `trainvisor up`. Host daemons never
// open the file; they reach it through the coordinator's HTTP API.
//
// Thread-safety: a JobQueue owns one SQLite connection guarded by an internal mutex, so one
// object may be shared by any number of threads (calls are serialized). Several objects, in one
// process or in many, may open the same file: every write is one `BEGIN IMMEDIATE` transaction
// and SQLite's file locks (with the busy timeout) order them, so exactly one of N racing
// claimers wins a job. The options' clock is called from the calling threads, so it must be
// safe to call concurrently. A moved-from JobQueue may only be destroyed or assigned to.
//
// Leases: a claim returns a random lease token; the queue stores only its SHA-256 (the holder
// keeps the secret) and compares digests in constant time. heartbeat, mark_running, complete and
// fail must present it; once the job has gone back to pending (stale sweep, a failure that retries,
// requeue) the token is cleared and the old holder gets kStaleLease (HTTP 409). A lease lives until
// the sweep runs, not until its expiry time: a late heartbeat before the sweep still extends it.
// The token stays on a job that ends (completed, stopped, failed, cancelled) so that a retried
// call from its holder is recognised (kOk for the same completion, kWrongState otherwise).
// Each lease is bound to the worker that claimed it: a lease call that names its caller's host
// (`holder`) is kNotHolder when another host holds the job, even with the right token. An empty
// holder is not checked: an in-process caller that holds the lease itself.
//
// Generations: a requeue that starts over advances the job's generation, which every claim
// carries; a host resumes a checkpoint only when it was written in the claim's generation, so a
// requeued job trains from step 0 unless the operator asked to resume its checkpoint.
//
// Failure accounting: a trainer failure counts toward max_attempts and retries after a jittered
// exponential backoff; a lost host (expired lease, or fail with kHostLost) returns the job to
// pending at once and counts only toward a separate cap of 2 * max_attempts, after which the
// job fails ("lost N times"); a cancel never counts.
//
// Errors: invalid arguments throw QueueError with a message naming the job or the value; an
// unusable file at open() throws QueueError naming it; any later database failure throws the
// store layer's store::StoreError (the file, the statement, SQLite's message). Lease and
// operator calls report an unknown job or a wrong token as a QueueResult. Nothing is written
// when a call throws or returns anything but kOk.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/job_status.hpp"

namespace tv::fleet {

// Milliseconds since the Unix epoch, as every timestamp in the queue is stored.
using UnixMillis = std::int64_t;

// The on-disk schema this build creates and understands (PRAGMA user_version).
// 3: lease tokens are stored as their SHA-256; opening a version 2 file hashes its tokens, so
// in-flight leases survive the upgrade.
// 4: jobs.pipeline holds a pipeline training's PipelineTraining as JSON ('' for other jobs).
inline constexpr std::int64_t kQueueSchemaVersion = 5;

// JobStatus and FailureClass, with their names, are in job_status.hpp.
// Throws QueueError naming `name` and the valid statuses when it is none of them.
JobStatus parse_job_status(std::string_view name);
FailureClass parse_failure_class(std::string_view name);  // throws QueueError

enum class QueueResult {
  kOk,
  kStaleLease,  // the token is not the job's current one: the caller no longer holds the job
  kNotFound,    // no job (or worker) with that id
  kWrongState,  // the job exists and the token matches, but its status forbids the call
  kNotHolder,   // the token matches, but the caller is not the host that holds the job
};
std::string_view to_string(QueueResult result);

class QueueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct QueueOptions {
  // Lease length: a holder silent this long loses its job at the next sweep. 30 s is six of a
  // host's default 5 s heartbeats, so a loaded host that misses a few keeps its job, while a
  // lost host's job is pending again within stale_after + the coordinator's sweep period.
  std::chrono::milliseconds stale_after{std::chrono::seconds(30)};
  // How long a prefer_cuda job waits, after it became pending, before a host without CUDA may
  // take it.
  std::chrono::milliseconds prefer_cuda_grace{std::chrono::seconds(300)};
  // Retry delay after the n-th counted failure: min(cap, base * 2^(n-1)), then +-20 % jitter.
  std::chrono::milliseconds backoff_base{std::chrono::seconds(5)};
  std::chrono::milliseconds backoff_cap{std::chrono::minutes(10)};
  // How long a write waits for another connection's transaction before QueueError.
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(10)};
  // Current time in Unix milliseconds; empty: the system clock. Tests move time with it.
  std::function<UnixMillis()> clock;
};

struct ManifestReport {
  std::int64_t added = 0;      // new ids, inserted pending
  std::int64_t updated = 0;    // known ids whose non-identity fields (priority, ...) changed
  std::int64_t unchanged = 0;  // known ids with an identical spec: not written at all
};

// Who ended a job early and why: the actor and reason of the accepted write of
// training/control/early_stop ("policy:divergence", "human:ana", ...).
struct StopCause {
  std::string actor;
  std::string reason;
};

// How a requeue restarts the job's training.
enum class RequeueFrom {
  kStart,       // from step 0: checkpoints of earlier runs are not resumed (a new generation)
  kCheckpoint,  // from the latest checkpoint the next host finds (the same generation)
};

struct Claim {
  JobSpec spec;
  std::int64_t attempt = 0;  // 1 for the first claim, counting every claim since the last requeue
  std::int64_t generation = 0;  // checkpoints of another generation must not be resumed
  std::string lease_token;      // 32 hex digits (128 random bits); stored only as its SHA-256
  UnixMillis lease_expires_ms = 0;
};

struct HeartbeatReply {
  QueueResult result = QueueResult::kNotFound;
  // The operator cancelled the job: the holder should stop its trainer and then call fail().
  bool cancel_requested = false;
  UnixMillis lease_expires_ms = 0;  // the extended lease (kOk only)
};

struct CancelReply {
  QueueResult result = QueueResult::kNotFound;  // kWrongState: the job had already ended
  JobStatus previous = JobStatus::kPending;
  std::string worker;  // the holder to tell, when the job was claimed or running
  bool was_held() const {
    return previous == JobStatus::kClaimed || previous == JobStatus::kRunning;
  }
};

// One job as the operator sees it. The lease token is never exposed here.
struct JobRow {
  JobSpec spec;
  JobStatus status = JobStatus::kPending;
  std::int64_t attempt = 0;           // claims since creation or the last requeue
  std::int64_t counted_failures = 0;  // trainer failures, compared with max_attempts
  std::int64_t lost_count = 0;        // lost hosts, compared with 2 * max_attempts
  std::string worker;                 // the current holder, or the last one; empty: never held
  bool cancel_requested = false;      // cancelled while held; the holder has not answered yet
  UnixMillis created_ms = 0;
  UnixMillis updated_ms = 0;
  UnixMillis pending_since_ms = 0;  // when it last became pending (prefer_cuda grace)
  UnixMillis not_before_ms = 0;     // not claimable before this (retry backoff)
  std::int64_t backoff_ms = 0;      // the jittered backoff stored with the last counted failure
  std::optional<UnixMillis> claimed_ms;
  std::optional<UnixMillis> started_ms;
  std::optional<UnixMillis> heartbeat_ms;
  std::optional<UnixMillis> lease_expires_ms;
  std::optional<UnixMillis> finished_ms;
  std::string last_error;  // empty: none
  std::optional<FailureClass> last_failure;
  std::string artifact_digest;       // sha256 hex of the uploaded bundle; empty: none
  std::optional<StopCause> stopped;  // status kStopped: who stopped it and why
  std::int64_t generation = 0;       // requeues that started over
};

// Why a job may or may not run on one host.
struct Explanation {
  std::string host;
  bool registered = false;  // false: a host the manifest names that has never claimed
  std::string reason;       // empty: the job may run there now
};

struct WorkerRow {
  std::string name;
  HostCapability capability;
  UnixMillis registered_ms = 0;
  UnixMillis last_seen_ms = 0;
};

class JobQueue {
 public:
  // Opens (creating if needed) the database at `path`, switches it to WAL and creates or
  // migrates the schema. Throws QueueError for an unusable file or a schema newer than this
  // build's.
  static JobQueue open(const std::string& path, QueueOptions options = {});

  JobQueue(JobQueue&&) noexcept;
  JobQueue& operator=(JobQueue&&) noexcept;
  ~JobQueue();

  // Idempotent manifest load: new ids are inserted pending in the order given; a known id keeps
  // its status and counters (its spec fields are rewritten only if they differ); ids absent from
  // `jobs` stay. Throws QueueError, writing nothing, for an empty id or name, a duplicate id,
  // max_attempts < 1, or a negative or non-finite memory constraint.
  ManifestReport upsert_manifest(std::span<const JobSpec> jobs);
  // Replaces the host policy table (nothing is written when it is identical). Throws
  // QueueError for an empty or duplicate host name.
  void upsert_hosts(std::span<const HostPolicy> hosts);
  std::vector<HostPolicy> hosts() const;  // by name

  // Registers `name` or refreshes its capability; either way marks it seen now.
  void register_worker(const std::string& name, const HostCapability& capability);
  // Marks a registered worker seen now; kNotFound if it never registered.
  QueueResult touch_worker(const std::string& name);
  std::vector<WorkerRow> workers() const;  // by name

  // Claims the best job `worker` may run: among pending jobs past their backoff that pass the
  // job's constraints and the worker's host policy (the HostPolicy named like the worker), the
  // highest priority, then the oldest. nullopt when none qualifies. One transaction.
  //
  // Constraints: require_cuda needs capability.cuda; min_vram_gib applies on a CUDA host (a job
  // that may run on the CPU ignores it there); min_ram_gib always; allowed_hosts (empty: any)
  // must name the worker. Host policy: a non-empty allow_jobs must contain the job's name or
  // model; deny_jobs must contain neither. A prefer_cuda job goes to a host without CUDA only
  // after prefer_cuda_grace since it became pending.
  std::optional<Claim> claim_next(const std::string& worker, const HostCapability& capability);
  std::optional<Claim> claim_next(const std::string& worker, const HostCapability& capability,
                                  UnixMillis now);

  // Extends the lease (claimed, running, or cancelled-but-unanswered jobs).
  HeartbeatReply heartbeat(const std::string& job_id, const std::string& token,
                           std::string_view holder = {});
  // claimed -> running (running -> running is kOk, so a retry is harmless).
  QueueResult mark_running(const std::string& job_id, const std::string& token,
                           std::string_view holder = {});
  // claimed/running -> completed, or stopped when `stopped` says who ended it early.
  // `artifact_digest` must be 64 lowercase hex digits (QueueError otherwise). Repeating the same
  // completion is kOk.
  QueueResult complete(const std::string& job_id, const std::string& token,
                       std::optional<std::string> artifact_digest = std::nullopt,
                       std::optional<StopCause> stopped = std::nullopt,
                       std::string_view holder = {});
  // claimed/running -> pending (with backoff) or failed by `failure` (see the top of this file).
  // On a job the operator cancelled, any failure is the holder's acknowledgement: the job stays
  // cancelled and cancel_requested clears. Only an operator's cancel ends a job cancelled:
  // kCancelled on a job no operator cancelled throws QueueError, writing nothing.
  QueueResult fail(const std::string& job_id, const std::string& token, FailureClass failure,
                   std::string_view reason, std::string_view holder = {});

  // Returns every claimed/running job whose lease expired at or before `now` to pending (or to
  // failed once lost 2 * max_attempts times), clearing its token. Returns their ids.
  std::vector<std::string> sweep_stale();
  std::vector<std::string> sweep_stale(UnixMillis now);

  // pending/claimed/running -> cancelled. A held job keeps its lease so the holder learns of the
  // cancel from its next heartbeat. kWrongState when it had already ended.
  CancelReply cancel(const std::string& job_id);
  // Any status -> pending, claimable at once: attempts, failure counters, backoff, lease,
  // worker, artifact and stop cause cleared (last_error is kept for the operator). kStart
  // advances the generation (see the top of this file).
  QueueResult requeue(const std::string& job_id, RequeueFrom from = RequeueFrom::kStart);

  std::optional<JobRow> get(const std::string& job_id) const;
  std::vector<JobRow> list(std::optional<JobStatus> status = std::nullopt) const;  // by age
  std::map<JobStatus, std::int64_t> counts() const;  // every status, zero included

  // sqlite3_total_changes64 of this connection: rows written since open (for tests).
  // For every registered worker and every host of the manifest: which constraint (if any) keeps
  // the job off it at `now`. Throws QueueError for an unknown job.
  std::vector<Explanation> explain(const std::string& job_id, UnixMillis now) const;
  // The same for a job not queued (yet): a pipeline's trainings before its first firing.
  std::vector<Explanation> explain(const JobSpec& spec, UnixMillis pending_since,
                                   UnixMillis now) const;

  std::int64_t total_changes() const;
  const std::string& path() const;

 private:
  struct Impl;
  explicit JobQueue(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
