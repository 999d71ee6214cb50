#include "trainvisor/fleet/job_queue.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <mutex>
#include <set>
#include <utility>

#include "spec_codec.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet {
namespace {

using store::Connection;
using store::Statement;
using store::Transaction;

constexpr std::array<std::pair<QueueResult, std::string_view>, 5> kResultNames{{
    {QueueResult::kOk, "ok"},
    {QueueResult::kStaleLease, "stale_lease"},
    {QueueResult::kNotFound, "not_found"},
    {QueueResult::kWrongState, "wrong_state"},
    {QueueResult::kNotHolder, "not_holder"},
}};

// Schema migrations: entry i takes user_version i to i + 1. Append only; never edit a shipped
// entry, since databases in the field have already run it.
constexpr std::array<const char*, kQueueSchemaVersion> kMigrations{{
    R"sql(
CREATE TABLE jobs (
  seq INTEGER PRIMARY KEY,              -- insertion order: the tie-break after priority
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  mode TEXT NOT NULL,
  hyper TEXT NOT NULL,                  -- JSON (spec_codec)
  model_params TEXT NOT NULL,           -- JSON
  policies TEXT NOT NULL,               -- JSON
  require_cuda INTEGER NOT NULL,
  prefer_cuda INTEGER NOT NULL,
  min_vram_gib REAL NOT NULL,
  min_ram_gib REAL NOT NULL,
  allowed_hosts TEXT NOT NULL,          -- JSON array
  seed INTEGER NOT NULL,                -- the uint64 seed's bits as int64
  max_attempts INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  canonical TEXT NOT NULL,
  max_train_samples INTEGER NOT NULL,   -- the split recipe (JobSpec::data)
  max_val_samples INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN
    ('pending', 'claimed', 'running', 'completed', 'failed', 'cancelled')),
  attempt INTEGER NOT NULL DEFAULT 0,
  counted_failures INTEGER NOT NULL DEFAULT 0,
  lost_count INTEGER NOT NULL DEFAULT 0,
  worker TEXT,
  lease_token TEXT,
  lease_expires_ms INTEGER,
  heartbeat_ms INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  pending_since_ms INTEGER NOT NULL,
  not_before_ms INTEGER NOT NULL DEFAULT 0,
  backoff_ms INTEGER NOT NULL DEFAULT 0,
  claimed_ms INTEGER,
  started_ms INTEGER,
  finished_ms INTEGER,
  last_error TEXT,
  last_failure TEXT,
  artifact_digest TEXT
);
CREATE INDEX jobs_by_claim_order ON jobs (status, priority DESC, seq);
CREATE INDEX jobs_by_lease ON jobs (status, lease_expires_ms);
CREATE TABLE workers (
  name TEXT PRIMARY KEY,
  capability TEXT NOT NULL,             -- JSON (spec_codec)
  registered_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
);
CREATE TABLE hosts (
  name TEXT PRIMARY KEY,
  allow_jobs TEXT NOT NULL,             -- JSON array
  deny_jobs TEXT NOT NULL,              -- JSON array
  priority INTEGER NOT NULL
);
)sql",
    // 2: the 'stopped' status with who stopped the job and why; the generation a requeue that
    // starts over advances. SQLite cannot change a CHECK constraint in place: the table is
    // rebuilt and its rows copied.
    R"sql(
CREATE TABLE jobs_v2 (
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  model TEXT NOT NULL,
  mode TEXT NOT NULL,
  hyper TEXT NOT NULL,
  model_params TEXT NOT NULL,
  policies TEXT NOT NULL,
  require_cuda INTEGER NOT NULL,
  prefer_cuda INTEGER NOT NULL,
  min_vram_gib REAL NOT NULL,
  min_ram_gib REAL NOT NULL,
  allowed_hosts TEXT NOT NULL,
  seed INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  priority INTEGER NOT NULL,
  canonical TEXT NOT NULL,
  max_train_samples INTEGER NOT NULL,
  max_val_samples INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN
    ('pending', 'claimed', 'running', 'completed', 'stopped', 'failed', 'cancelled')),
  attempt INTEGER NOT NULL DEFAULT 0,
  counted_failures INTEGER NOT NULL DEFAULT 0,
  lost_count INTEGER NOT NULL DEFAULT 0,
  worker TEXT,
  lease_token TEXT,
  lease_expires_ms INTEGER,
  heartbeat_ms INTEGER,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  pending_since_ms INTEGER NOT NULL,
  not_before_ms INTEGER NOT NULL DEFAULT 0,
  backoff_ms INTEGER NOT NULL DEFAULT 0,
  claimed_ms INTEGER,
  started_ms INTEGER,
  finished_ms INTEGER,
  last_error TEXT,
  last_failure TEXT,
  artifact_digest TEXT,
  stopped_by TEXT,                      -- the actor of the early_stop write (stopped only)
  stop_reason TEXT,                     -- its reason
  generation INTEGER NOT NULL DEFAULT 0 -- requeues that started over: older checkpoints are void
);
INSERT INTO jobs_v2 SELECT *, NULL, NULL, 0 FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_v2 RENAME TO jobs;
CREATE INDEX jobs_by_claim_order ON jobs (status, priority DESC, seq);
CREATE INDEX jobs_by_lease ON jobs (status, lease_expires_ms);
)sql",
    // 3: lease_token holds the token's SHA-256. SQLite has no hash function: the stored tokens
    // are hashed by JobQueue::Impl::hash_lease_tokens right after this (empty) step.
    "-- 3: lease tokens hashed",
    "ALTER TABLE jobs ADD COLUMN pipeline TEXT NOT NULL DEFAULT '';",
    // 5: a command job's trainer (JSON, "" for a model plugin's job).
    "ALTER TABLE jobs ADD COLUMN trainer TEXT NOT NULL DEFAULT '';",
}};

// The spec columns, in the order SpecColumns and the job SELECTs use.
constexpr const char* kSpecColumns =
    "id, name, model, mode, hyper, model_params, policies, require_cuda, prefer_cuda, "
    "min_vram_gib, min_ram_gib, allowed_hosts, seed, max_attempts, priority, canonical, "
    "max_train_samples, max_val_samples, pipeline, trainer";
constexpr int kSpecColumnCount = 20;
constexpr const char* kStateColumns =
    "status, attempt, counted_failures, lost_count, worker, cancel_requested, created_ms, "
    "updated_ms, pending_since_ms, not_before_ms, backoff_ms, claimed_ms, started_ms, "
    "heartbeat_ms, lease_expires_ms, finished_ms, last_error, last_failure, artifact_digest, "
    "stopped_by, stop_reason, generation";

std::string in_quotes(std::string_view s) {
  return "'" + std::string(s) + "'";
}

// The value named `name` in `table`, or QueueError listing what would have been accepted.
template <typename E, std::size_t N>
E parse_in(const std::array<std::pair<E, std::string_view>, N>& table, std::string_view name,
           const char* what) {
  if (auto v = value_named(table, name)) return *v;
  throw QueueError("unknown " + std::string(what) + " " + in_quotes(name) + " (expected " +
                   names_of(table) + ")");
}

std::string job_what(const std::string& id) {
  return "job " + id;
}

// A JobSpec as its stored column values. Comparing these, rather than JobSpecs, decides
// whether a reload writes: equal text means equal spec, NaN hyperparameters included.
struct SpecColumns {
  std::string id, name, model, mode, hyper, model_params, policies;
  std::int64_t require_cuda = 0, prefer_cuda = 0;
  double min_vram_gib = 0, min_ram_gib = 0;
  std::string allowed_hosts;
  std::int64_t seed = 0, max_attempts = 0, priority = 0;
  std::string canonical;
  std::int64_t max_train_samples = 0, max_val_samples = 0;
  std::string pipeline;  // JSON, or "" for a job that is no pipeline's training
  std::string trainer;   // JSON, or "" for a model plugin's job
  bool operator==(const SpecColumns&) const = default;
};

SpecColumns encode_spec(const JobSpec& s) {
  const std::string what = "job " + in_quotes(s.name) + " (" + s.id + ")";
  SpecColumns c;
  c.id = s.id;
  c.name = s.name;
  c.model = s.model;
  c.mode = s.mode;
  c.hyper = codec::encode_params(s.hyper, what + " hyper");
  c.model_params = codec::encode_params(s.model_params, what + " model_params");
  c.policies = codec::encode_policies(s.policies, what + " policies");
  c.require_cuda = s.constraints.require_cuda;
  c.prefer_cuda = s.constraints.prefer_cuda;
  c.min_vram_gib = s.constraints.min_vram_gib;
  c.min_ram_gib = s.constraints.min_ram_gib;
  c.allowed_hosts = codec::encode_strings(s.constraints.allowed_hosts, what + " allowed_hosts");
  c.seed = static_cast<std::int64_t>(s.seed);
  c.max_attempts = s.max_attempts;
  c.priority = s.priority;
  c.canonical = s.canonical;
  c.max_train_samples = s.data.max_train_samples;
  c.max_val_samples = s.data.max_val_samples;
  if (s.pipeline) c.pipeline = codec::encode_pipeline(*s.pipeline, what + " pipeline");
  if (s.command) c.trainer = codec::encode_trainer(*s.command, what + " trainer");
  return c;
}

SpecColumns read_spec_columns(const Statement& st, int first) {
  SpecColumns c;
  c.id = st.column_text(first + 0);
  c.name = st.column_text(first + 1);
  c.model = st.column_text(first + 2);
  c.mode = st.column_text(first + 3);
  c.hyper = st.column_text(first + 4);
  c.model_params = st.column_text(first + 5);
  c.policies = st.column_text(first + 6);
  c.require_cuda = st.column_int(first + 7);
  c.prefer_cuda = st.column_int(first + 8);
  c.min_vram_gib = st.column_double(first + 9);
  c.min_ram_gib = st.column_double(first + 10);
  c.allowed_hosts = st.column_text(first + 11);
  c.seed = st.column_int(first + 12);
  c.max_attempts = st.column_int(first + 13);
  c.priority = st.column_int(first + 14);
  c.canonical = st.column_text(first + 15);
  c.max_train_samples = st.column_int(first + 16);
  c.max_val_samples = st.column_int(first + 17);
  c.pipeline = st.column_text(first + 18);
  c.trainer = st.column_text(first + 19);
  return c;
}

// Binds the 20 spec columns to parameters first .. first + 19.
void bind_spec_columns(Statement& st, int first, const SpecColumns& c) {
  st.bind_text(first + 0, c.id)
      .bind_text(first + 1, c.name)
      .bind_text(first + 2, c.model)
      .bind_text(first + 3, c.mode)
      .bind_text(first + 4, c.hyper)
      .bind_text(first + 5, c.model_params)
      .bind_text(first + 6, c.policies)
      .bind_int(first + 7, c.require_cuda)
      .bind_int(first + 8, c.prefer_cuda)
      .bind_double(first + 9, c.min_vram_gib)
      .bind_double(first + 10, c.min_ram_gib)
      .bind_text(first + 11, c.allowed_hosts)
      .bind_int(first + 12, c.seed)
      .bind_int(first + 13, c.max_attempts)
      .bind_int(first + 14, c.priority)
      .bind_text(first + 15, c.canonical)
      .bind_int(first + 16, c.max_train_samples)
      .bind_int(first + 17, c.max_val_samples)
      .bind_text(first + 18, c.pipeline)
      .bind_text(first + 19, c.trainer);
}

JobSpec decode_spec(const SpecColumns& c) {
  const std::string what = "job " + c.id;
  JobSpec s;
  s.id = c.id;
  s.name = c.name;
  s.model = c.model;
  s.mode = c.mode;
  s.hyper = codec::decode_params(c.hyper, what + " hyper");
  s.model_params = codec::decode_params(c.model_params, what + " model_params");
  s.policies = codec::decode_policies(c.policies, what + " policies");
  s.constraints.require_cuda = c.require_cuda != 0;
  s.constraints.prefer_cuda = c.prefer_cuda != 0;
  s.constraints.min_vram_gib = c.min_vram_gib;
  s.constraints.min_ram_gib = c.min_ram_gib;
  s.constraints.allowed_hosts = codec::decode_strings(c.allowed_hosts, what + " allowed_hosts");
  s.seed = static_cast<std::uint64_t>(c.seed);
  s.max_attempts = c.max_attempts;
  s.priority = c.priority;
  s.canonical = c.canonical;
  s.data.max_train_samples = c.max_train_samples;
  s.data.max_val_samples = c.max_val_samples;
  if (!c.pipeline.empty()) s.pipeline = codec::decode_pipeline(c.pipeline, what + " pipeline");
  if (!c.trainer.empty()) s.command = codec::decode_trainer(c.trainer, what + " trainer");
  return s;
}

JobStatus status_from_db(const std::string& text) {
  if (auto status = value_named(kJobStatusNames, text)) return *status;
  throw QueueError("job queue: stored job status " + in_quotes(text) + " is unknown");
}

JobRow read_job_row(const Statement& st) {
  JobRow r;
  r.spec = decode_spec(read_spec_columns(st, 0));
  int i = kSpecColumnCount;
  r.status = status_from_db(st.column_text(i++));
  r.attempt = st.column_int(i++);
  r.counted_failures = st.column_int(i++);
  r.lost_count = st.column_int(i++);
  r.worker = st.column_text(i++);
  r.cancel_requested = st.column_int(i++) != 0;
  r.created_ms = st.column_int(i++);
  r.updated_ms = st.column_int(i++);
  r.pending_since_ms = st.column_int(i++);
  r.not_before_ms = st.column_int(i++);
  r.backoff_ms = st.column_int(i++);
  r.claimed_ms = st.column_optional_int(i++);
  r.started_ms = st.column_optional_int(i++);
  r.heartbeat_ms = st.column_optional_int(i++);
  r.lease_expires_ms = st.column_optional_int(i++);
  r.finished_ms = st.column_optional_int(i++);
  r.last_error = st.column_text(i++);
  if (!st.is_null(i)) r.last_failure = parse_failure_class(st.column_text(i));
  ++i;
  r.artifact_digest = st.column_text(i++);
  if (!st.is_null(i)) r.stopped = StopCause{st.column_text(i), st.column_text(i + 1)};
  i += 2;
  r.generation = st.column_int(i++);
  return r;
}

// The columns of a pending job that eligibility looks at.
struct Candidate {
  std::string id;
  std::string name;
  std::string model;
  std::string pipeline;  // a pipeline's training: the pipeline's name
  bool require_cuda = false;
  bool prefer_cuda = false;
  double min_vram_gib = 0;
  double min_ram_gib = 0;
  std::vector<std::string> allowed_hosts;
  UnixMillis pending_since_ms = 0;
};

bool contains(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Why `job` may not run on `worker` now, or nullopt when it may.
std::optional<std::string> ineligibility(const Candidate& job, const std::string& worker,
                                         const HostCapability& cap,
                                         const std::optional<HostPolicy>& policy, UnixMillis now,
                                         std::chrono::milliseconds grace) {
  const auto gib = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.2f GiB", v);
    return std::string(b);
  };
  if (job.require_cuda && !cap.cuda) return "require_cuda: the host has no CUDA device";
  // On a CUDA host the job will use the GPU, so the GPU must be big enough; on a CPU host it
  // runs on the CPU (it cannot require CUDA to get here) and VRAM is irrelevant. This is the
  // reference table: a prefer_cuda job with min_vram_gib 1 still goes to the Pi after grace.
  if (cap.cuda && cap.vram_gib < job.min_vram_gib) {
    return "min_vram_gib " + gib(job.min_vram_gib) + ": the host's GPU has " + gib(cap.vram_gib);
  }
  if (cap.ram_gib < job.min_ram_gib) {
    return "min_ram_gib " + gib(job.min_ram_gib) + ": the host has " + gib(cap.ram_gib);
  }
  if (!job.allowed_hosts.empty() && !contains(job.allowed_hosts, worker)) {
    return "allowed_hosts: the job lists other hosts";
  }
  if (policy) {
    const auto named = [&](const std::vector<std::string>& list) {
      return contains(list, job.name) || contains(list, job.model) ||
             (!job.pipeline.empty() && contains(list, job.pipeline));
    };
    if (!policy->allow_jobs.empty() && !named(policy->allow_jobs)) {
      return "host policy: allow_jobs does not name this job, its model or its pipeline";
    }
    if (named(policy->deny_jobs)) {
      return "host policy: deny_jobs names this job, its model or its pipeline";
    }
  }
  if (job.prefer_cuda && !cap.cuda && now < job.pending_since_ms + grace.count()) {
    return "prefer_cuda: a CPU host may take it " +
           std::to_string((job.pending_since_ms + grace.count() - now + 999) / 1000) +
           " s from now";
  }
  return std::nullopt;
}

bool eligible(const Candidate& job, const std::string& worker, const HostCapability& cap,
              const std::optional<HostPolicy>& policy, UnixMillis now,
              std::chrono::milliseconds grace) {
  return !ineligibility(job, worker, cap, policy, now, grace).has_value();
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    throw QueueError("job queue: OpenSSL RAND_bytes failed to produce random bytes");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  for (unsigned char b : raw) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

// Uniform in [0.8, 1.2]: spreads the retries of jobs that failed together (a broken host
// failing a batch) so they do not all come back in the same instant.
double jitter_factor() {
  std::uint32_t r = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r) != 1) {
    throw QueueError("job queue: OpenSSL RAND_bytes failed to produce random bytes");
  }
  return 0.8 + 0.4 * (static_cast<double>(r) / 4294967295.0);
}

std::int64_t backoff_for(std::int64_t counted_failures, std::chrono::milliseconds base,
                         std::chrono::milliseconds cap) {
  // Doubling saturates at the cap long before 2^62, so stop doubling there.
  std::int64_t nominal = base.count();
  for (std::int64_t i = 1; i < counted_failures && nominal < cap.count(); ++i)
    nominal *= 2;
  nominal = std::min(nominal, cap.count());
  return std::llround(static_cast<double>(nominal) * jitter_factor());
}

// Whether `given` is the lease token whose digest is `stored`. Constant time, like every secret
// the coordinator compares; an ended lease (no digest) matches nothing.
bool lease_matches(const std::string& stored, const std::string& given) {
  const std::string digest = sha256_hex(given);
  return !stored.empty() && stored.size() == digest.size() &&
         CRYPTO_memcmp(stored.data(), digest.data(), digest.size()) == 0;
}

bool is_sha256_hex(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

UnixMillis system_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The lease state of one job, read inside a write transaction.
struct LeaseState {
  JobStatus status = JobStatus::kPending;
  std::string token;
  bool cancel_requested = false;
  std::string worker;
  std::int64_t counted_failures = 0;
  std::int64_t lost_count = 0;
  std::int64_t max_attempts = 1;
  std::string artifact_digest;
};

// The check every lease call makes first, in its transaction: kOk when `token` is the job's
// lease and `holder` (unless empty) the host that holds it.
QueueResult lease_check(const LeaseState& s, const std::string& token, std::string_view holder) {
  if (!lease_matches(s.token, token)) return QueueResult::kStaleLease;
  if (!holder.empty() && holder != s.worker) return QueueResult::kNotHolder;
  return QueueResult::kOk;
}

}  // namespace

std::string_view to_string(QueueResult result) {
  return name_of(kResultNames, result);
}

JobStatus parse_job_status(std::string_view name) {
  return parse_in(kJobStatusNames, name, "job status");
}

FailureClass parse_failure_class(std::string_view name) {
  return parse_in(kFailureClassNames, name, "failure class");
}

struct JobQueue::Impl {
  Impl(const std::string& path, QueueOptions opts)
      : options(std::move(opts)),
        // FULL: a claim or a completion the coordinator acknowledged survives a power cut.
        db(path, {"job queue", options.busy_timeout, store::Durability::kFull}) {
    if (!options.clock) options.clock = system_now;
  }

  QueueOptions options;
  // Guards db and its statement cache: SQLite connections are not to be used by two threads
  // at once, and a cached statement is shared state.
  mutable std::mutex mutex;
  mutable Connection db;

  UnixMillis now() const { return options.clock(); }

  void migrate() {
    Transaction tx(db);
    std::int64_t version = 0;
    {
      Statement st = db.prepare("PRAGMA user_version");
      if (st.step()) version = st.column_int(0);
    }
    if (version > kQueueSchemaVersion) {
      throw QueueError("job queue " + db.path() + ": schema version " + std::to_string(version) +
                       " is newer than this build's " + std::to_string(kQueueSchemaVersion) +
                       "; use a newer trainvisor");
    }
    if (version == kQueueSchemaVersion) return;  // the transaction rolls back: nothing written
    for (auto v = version; v < kQueueSchemaVersion; ++v) {
      db.exec(kMigrations[v]);
      if (v + 1 == 3) hash_lease_tokens();
    }
    db.exec("PRAGMA user_version=" + std::to_string(kQueueSchemaVersion));
    tx.commit();
  }

  // Schema 3: every stored lease token becomes its SHA-256, so a holder's token still matches.
  void hash_lease_tokens() {
    std::vector<std::pair<std::string, std::string>> tokens;
    {
      Statement st = db.prepare("SELECT id, lease_token FROM jobs WHERE lease_token IS NOT NULL");
      while (st.step())
        tokens.emplace_back(st.column_text(0), st.column_text(1));
    }
    for (const auto& [id, token] : tokens) {
      Statement st = db.prepare("UPDATE jobs SET lease_token=? WHERE id=?");
      st.bind_all(sha256_hex(token), id).run();
    }
  }

  std::optional<HostPolicy> host_policy(const std::string& name) {
    Statement st = db.prepare("SELECT allow_jobs, deny_jobs, priority FROM hosts WHERE name=?");
    st.bind_text(1, name);
    if (!st.step()) return std::nullopt;
    const std::string what = "host " + in_quotes(name);
    return HostPolicy{name, codec::decode_strings(st.column_text(0), what + " allow_jobs"),
                      codec::decode_strings(st.column_text(1), what + " deny_jobs"),
                      st.column_int(2)};
  }

  std::vector<HostPolicy> all_hosts() {
    std::vector<HostPolicy> out;
    Statement st =
        db.prepare("SELECT name, allow_jobs, deny_jobs, priority FROM hosts ORDER BY name");
    while (st.step()) {
      const std::string name = st.column_text(0);
      const std::string what = "host " + in_quotes(name);
      out.push_back({name, codec::decode_strings(st.column_text(1), what + " allow_jobs"),
                     codec::decode_strings(st.column_text(2), what + " deny_jobs"),
                     st.column_int(3)});
    }
    return out;
  }

  void touch(const std::string& worker, UnixMillis now) {
    if (worker.empty()) return;
    Statement st = db.prepare("UPDATE workers SET last_seen_ms=? WHERE name=?");
    st.bind_int(1, now).bind_text(2, worker).run();
  }

  std::optional<LeaseState> lease_state(const std::string& job_id) {
    Statement st = db.prepare(
        "SELECT status, lease_token, cancel_requested, worker, counted_failures, lost_count, "
        "max_attempts, artifact_digest FROM jobs WHERE id=?");
    st.bind_text(1, job_id);
    if (!st.step()) return std::nullopt;
    return LeaseState{status_from_db(st.column_text(0)),
                      st.column_text(1),
                      st.column_int(2) != 0,
                      st.column_text(3),
                      st.column_int(4),
                      st.column_int(5),
                      std::max<std::int64_t>(1, st.column_int(6)),
                      st.column_text(7)};
  }

  // Puts a held job back to pending: the lease and its token go, so the old holder is fenced.
  void return_to_pending(const std::string& job_id, UnixMillis now, UnixMillis not_before,
                         std::int64_t backoff_ms, std::int64_t counted, std::int64_t lost,
                         FailureClass failure, const std::string& error) {
    Statement st = db.prepare(
        "UPDATE jobs SET status='pending', lease_token=NULL, lease_expires_ms=NULL, "
        "cancel_requested=0, pending_since_ms=?, not_before_ms=?, backoff_ms=?, "
        "counted_failures=?, lost_count=?, last_failure=?, last_error=?, updated_ms=? "
        "WHERE id=?");
    st.bind_int(1, now)
        .bind_int(2, not_before)
        .bind_int(3, backoff_ms)
        .bind_int(4, counted)
        .bind_int(5, lost)
        .bind_text(6, to_string(failure))
        .bind_text(7, error)
        .bind_int(8, now)
        .bind_text(9, job_id)
        .run();
  }

  // Ends a held job. The token stays so that a retried call from the holder is recognised.
  void finish(const std::string& job_id, JobStatus status, UnixMillis now, std::int64_t counted,
              std::int64_t lost, FailureClass failure, const std::string& error) {
    Statement st = db.prepare(
        "UPDATE jobs SET status=?, lease_expires_ms=NULL, cancel_requested=0, finished_ms=?, "
        "counted_failures=?, lost_count=?, last_failure=?, last_error=?, updated_ms=? "
        "WHERE id=?");
    st.bind_text(1, to_string(status))
        .bind_int(2, now)
        .bind_int(3, counted)
        .bind_int(4, lost)
        .bind_text(5, to_string(failure))
        .bind_text(6, error)
        .bind_int(7, now)
        .bind_text(8, job_id)
        .run();
  }

  // A lost holder (expired lease or kHostLost): back to pending at once, or failed once the
  // host-loss cap is reached. Keeping lost hosts out of max_attempts stops a flaky network from
  // failing a healthy job; the separate cap still stops a job that kills every host it lands on.
  void lose(const std::string& job_id, const LeaseState& s, UnixMillis now,
            const std::string& why) {
    const std::int64_t lost = s.lost_count + 1;
    const std::int64_t cap = 2 * s.max_attempts;
    if (lost >= cap) {
      finish(job_id, JobStatus::kFailed, now, s.counted_failures, lost, FailureClass::kHostLost,
             "lost " + std::to_string(lost) + " times; last: " + why);
    } else {
      return_to_pending(job_id, now, now, 0, s.counted_failures, lost, FailureClass::kHostLost,
                        why);
    }
  }
};

JobQueue::JobQueue(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JobQueue::JobQueue(JobQueue&&) noexcept = default;
JobQueue& JobQueue::operator=(JobQueue&&) noexcept = default;
JobQueue::~JobQueue() = default;

JobQueue JobQueue::open(const std::string& path, QueueOptions options) {
  if (options.stale_after.count() <= 0 || options.backoff_base.count() < 0 ||
      options.backoff_cap.count() < options.backoff_base.count() ||
      options.prefer_cuda_grace.count() < 0 || options.busy_timeout.count() < 0) {
    throw QueueError("job queue " + path +
                     ": invalid options (stale_after must be > 0, backoff_base >= 0, "
                     "backoff_cap >= backoff_base, prefer_cuda_grace and busy_timeout >= 0)");
  }
  try {
    auto impl = std::make_unique<Impl>(path, std::move(options));
    impl->migrate();
    return JobQueue(std::move(impl));
  } catch (const store::StoreError& e) {
    throw QueueError(e.what());  // open's documented type: the file is unusable
  }
}

ManifestReport JobQueue::upsert_manifest(std::span<const JobSpec> jobs) {
  // Validate and encode everything first, so that a bad entry anywhere writes nothing.
  std::vector<SpecColumns> encoded;
  encoded.reserve(jobs.size());
  std::set<std::string> ids;
  for (const auto& job : jobs) {
    const std::string what = "manifest job " + in_quotes(job.name);
    if (job.id.empty()) throw QueueError(what + ": empty id");
    if (job.name.empty()) throw QueueError("manifest job " + job.id + ": empty name");
    if (!ids.insert(job.id).second) {
      throw QueueError(what + ": id " + job.id + " appears twice in the manifest");
    }
    if (job.max_attempts < 1) {
      throw QueueError(what + ": max_attempts must be at least 1 (got " +
                       std::to_string(job.max_attempts) + ")");
    }
    for (auto [key, value] : {std::pair{"min_vram_gib", job.constraints.min_vram_gib},
                              std::pair{"min_ram_gib", job.constraints.min_ram_gib}}) {
      if (!std::isfinite(value) || value < 0) {
        throw QueueError(what + ": " + key + " must be a finite number >= 0 (got " +
                         std::to_string(value) + ")");
      }
    }
    encoded.push_back(encode_spec(job));
  }

  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  ManifestReport report;
  Transaction tx(db);
  for (const auto& cols : encoded) {
    std::optional<SpecColumns> stored;
    {
      Statement st = db.prepare(std::string("SELECT ") + kSpecColumns + " FROM jobs WHERE id=?");
      st.bind_text(1, cols.id);
      if (st.step()) stored = read_spec_columns(st, 0);
    }
    if (!stored) {
      Statement st = db.prepare(std::string("INSERT INTO jobs (") + kSpecColumns +
                                ", status, created_ms, updated_ms, pending_since_ms) VALUES "
                                "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'pending',?,?,?)");
      bind_spec_columns(st, 1, cols);
      st.bind_int(21, now).bind_int(22, now).bind_int(23, now).run();
      ++report.added;
    } else if (*stored == cols) {
      ++report.unchanged;
    } else {
      // Same id, so the same training (the id hashes model, mode, hyper, hosts and seed); only
      // scheduling fields such as priority or max_attempts can differ. Status stays.
      Statement st = db.prepare(
          "UPDATE jobs SET id=?, name=?, model=?, mode=?, hyper=?, model_params=?, policies=?, "
          "require_cuda=?, prefer_cuda=?, min_vram_gib=?, min_ram_gib=?, allowed_hosts=?, "
          "seed=?, max_attempts=?, priority=?, canonical=?, max_train_samples=?, "
          "max_val_samples=?, pipeline=?, trainer=?, updated_ms=? WHERE id=?");
      bind_spec_columns(st, 1, cols);
      st.bind_int(21, now).bind_text(22, cols.id).run();
      ++report.updated;
    }
  }
  tx.commit();
  return report;
}

void JobQueue::upsert_hosts(std::span<const HostPolicy> hosts) {
  std::vector<HostPolicy> sorted(hosts.begin(), hosts.end());
  std::sort(sorted.begin(), sorted.end(),
            [](const HostPolicy& a, const HostPolicy& b) { return a.name < b.name; });
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (sorted[i].name.empty()) throw QueueError("manifest host with an empty name");
    if (i > 0 && sorted[i].name == sorted[i - 1].name) {
      throw QueueError("manifest host " + in_quotes(sorted[i].name) + " appears twice");
    }
  }
  std::vector<std::array<std::string, 2>> lists;
  for (const auto& h : sorted) {
    const std::string what = "host " + in_quotes(h.name);
    lists.push_back({codec::encode_strings(h.allow_jobs, what + " allow_jobs"),
                     codec::encode_strings(h.deny_jobs, what + " deny_jobs")});
  }

  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  Transaction tx(db);
  const auto current = impl_->all_hosts();
  const auto same = [](const HostPolicy& a, const HostPolicy& b) {
    return a.name == b.name && a.allow_jobs == b.allow_jobs && a.deny_jobs == b.deny_jobs &&
           a.priority == b.priority;
  };
  if (std::equal(current.begin(), current.end(), sorted.begin(), sorted.end(), same)) return;
  db.prepare("DELETE FROM hosts").run();
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    Statement st =
        db.prepare("INSERT INTO hosts (name, allow_jobs, deny_jobs, priority) VALUES (?,?,?,?)");
    st.bind_text(1, sorted[i].name)
        .bind_text(2, lists[i][0])
        .bind_text(3, lists[i][1])
        .bind_int(4, sorted[i].priority)
        .run();
  }
  tx.commit();
}

std::vector<HostPolicy> JobQueue::hosts() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->all_hosts();
}

void JobQueue::register_worker(const std::string& name, const HostCapability& capability) {
  if (name.empty()) throw QueueError("register_worker: empty worker name");
  const std::string cap = codec::encode_capability(capability, "worker " + in_quotes(name));
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  Statement st = db.prepare(
      "INSERT INTO workers (name, capability, registered_ms, last_seen_ms) VALUES (?,?,?,?) "
      "ON CONFLICT (name) DO UPDATE SET capability=excluded.capability, "
      "last_seen_ms=excluded.last_seen_ms");
  st.bind_text(1, name).bind_text(2, cap).bind_int(3, now).bind_int(4, now).run();
  tx.commit();
}

QueueResult JobQueue::touch_worker(const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  Transaction tx(db);
  impl_->touch(name, impl_->now());
  if (db.changes() == 0) return QueueResult::kNotFound;
  tx.commit();
  return QueueResult::kOk;
}

std::vector<WorkerRow> JobQueue::workers() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<WorkerRow> out;
  Statement st = impl_->db.prepare(
      "SELECT name, capability, registered_ms, last_seen_ms FROM workers ORDER BY name");
  while (st.step()) {
    WorkerRow w;
    w.name = st.column_text(0);
    w.capability = codec::decode_capability(st.column_text(1), "worker " + in_quotes(w.name));
    w.registered_ms = st.column_int(2);
    w.last_seen_ms = st.column_int(3);
    out.push_back(std::move(w));
  }
  return out;
}

std::optional<Claim> JobQueue::claim_next(const std::string& worker,
                                          const HostCapability& capability) {
  return claim_next(worker, capability, impl_->now());
}

std::optional<Claim> JobQueue::claim_next(const std::string& worker,
                                          const HostCapability& capability, UnixMillis now) {
  if (worker.empty()) throw QueueError("claim_next: empty worker name");
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  {
    // Idle workers poll; answering "nothing" from a read keeps them off the write lock. The
    // real decision is re-made inside the transaction below.
    Statement st = db.prepare(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE status='pending' AND not_before_ms <= ?)");
    st.bind_int(1, now);
    if (!st.step() || st.column_int(0) == 0) return std::nullopt;
  }

  Transaction tx(db);
  const auto policy = impl_->host_policy(worker);
  std::optional<std::string> chosen;
  {
    Statement st = db.prepare(
        "SELECT id, name, model, require_cuda, prefer_cuda, min_vram_gib, min_ram_gib, "
        "allowed_hosts, pending_since_ms, CASE WHEN pipeline='' THEN '' ELSE "
        "json_extract(pipeline, '$.pipeline') END FROM jobs WHERE status='pending' AND "
        "not_before_ms <= ? "
        "ORDER BY priority DESC, seq");
    st.bind_int(1, now);
    // Walks the queue in claim order and stops at the first job this worker qualifies for.
    while (st.step()) {
      Candidate c;
      c.id = st.column_text(0);
      c.name = st.column_text(1);
      c.model = st.column_text(2);
      c.require_cuda = st.column_int(3) != 0;
      c.prefer_cuda = st.column_int(4) != 0;
      c.min_vram_gib = st.column_double(5);
      c.min_ram_gib = st.column_double(6);
      c.allowed_hosts = codec::decode_strings(st.column_text(7), job_what(c.id) + " allowed_hosts");
      c.pending_since_ms = st.column_int(8);
      c.pipeline = st.column_text(9);
      if (eligible(c, worker, capability, policy, now, impl_->options.prefer_cuda_grace)) {
        chosen = c.id;
        break;
      }
    }
  }
  if (!chosen) return std::nullopt;

  Claim claim;
  claim.lease_token = random_hex(16);
  claim.lease_expires_ms = now + impl_->options.stale_after.count();
  {
    Statement st = db.prepare(
        "UPDATE jobs SET status='claimed', attempt=attempt+1, worker=?, lease_token=?, "
        "lease_expires_ms=?, claimed_ms=?, heartbeat_ms=?, started_ms=NULL, finished_ms=NULL, "
        "cancel_requested=0, artifact_digest=NULL, updated_ms=? "
        "WHERE id=? AND status='pending'");
    st.bind_text(1, worker)
        .bind_text(2, sha256_hex(claim.lease_token))
        .bind_int(3, claim.lease_expires_ms)
        .bind_int(4, now)
        .bind_int(5, now)
        .bind_int(6, now)
        .bind_text(7, *chosen)
        .run();
  }
  // We hold the write lock since BEGIN IMMEDIATE, so the row cannot have left pending; if it
  // did, the database is not behaving as SQLite promises and nothing may be handed out.
  if (db.changes() != 1) {
    throw QueueError("job queue " + db.path() + ": job " + *chosen +
                     " left pending inside a write transaction");
  }
  impl_->touch(worker, now);
  {
    Statement st = db.prepare(std::string("SELECT ") + kSpecColumns +
                              ", attempt, generation FROM jobs "
                              "WHERE id=?");
    st.bind_text(1, *chosen);
    st.step();
    claim.spec = decode_spec(read_spec_columns(st, 0));
    claim.attempt = st.column_int(kSpecColumnCount);
    claim.generation = st.column_int(kSpecColumnCount + 1);
  }
  tx.commit();
  return claim;
}

HeartbeatReply JobQueue::heartbeat(const std::string& job_id, const std::string& token,
                                   std::string_view holder) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  const auto s = impl_->lease_state(job_id);
  if (!s) return {QueueResult::kNotFound};
  if (const QueueResult r = lease_check(*s, token, holder); r != QueueResult::kOk) return {r};
  const bool held = s->status == JobStatus::kClaimed || s->status == JobStatus::kRunning;
  const bool cancelling = s->status == JobStatus::kCancelled && s->cancel_requested;
  if (!held && !cancelling) return {QueueResult::kWrongState};
  const UnixMillis expires = now + impl_->options.stale_after.count();
  Statement st = db.prepare(
      "UPDATE jobs SET heartbeat_ms=?, lease_expires_ms=CASE WHEN status IN "
      "('claimed','running') THEN ? ELSE lease_expires_ms END, updated_ms=? WHERE id=?");
  st.bind_int(1, now).bind_int(2, expires).bind_int(3, now).bind_text(4, job_id).run();
  impl_->touch(s->worker, now);
  tx.commit();
  return {QueueResult::kOk, cancelling, expires};
}

QueueResult JobQueue::mark_running(const std::string& job_id, const std::string& token,
                                   std::string_view holder) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  const auto s = impl_->lease_state(job_id);
  if (!s) return QueueResult::kNotFound;
  if (const QueueResult r = lease_check(*s, token, holder); r != QueueResult::kOk) return r;
  if (s->status != JobStatus::kClaimed && s->status != JobStatus::kRunning) {
    return QueueResult::kWrongState;
  }
  Statement st = db.prepare(
      "UPDATE jobs SET status='running', started_ms=COALESCE(started_ms, ?), heartbeat_ms=?, "
      "lease_expires_ms=?, updated_ms=? WHERE id=?");
  st.bind_int(1, now)
      .bind_int(2, now)
      .bind_int(3, now + impl_->options.stale_after.count())
      .bind_int(4, now)
      .bind_text(5, job_id)
      .run();
  impl_->touch(s->worker, now);
  tx.commit();
  return QueueResult::kOk;
}

QueueResult JobQueue::complete(const std::string& job_id, const std::string& token,
                               std::optional<std::string> artifact_digest,
                               std::optional<StopCause> stopped, std::string_view holder) {
  if (artifact_digest && !is_sha256_hex(*artifact_digest)) {
    throw QueueError("complete job " + job_id + ": artifact digest " + in_quotes(*artifact_digest) +
                     " is not 64 lowercase hex digits (a sha256)");
  }
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  const auto s = impl_->lease_state(job_id);
  if (!s) return QueueResult::kNotFound;
  if (const QueueResult r = lease_check(*s, token, holder); r != QueueResult::kOk) return r;
  const JobStatus ending = stopped ? JobStatus::kStopped : JobStatus::kCompleted;
  if (s->status == ending) {
    // A holder whose first reply was lost retries: the same completion is not an error.
    return s->artifact_digest == artifact_digest.value_or("") ? QueueResult::kOk
                                                              : QueueResult::kWrongState;
  }
  if (s->status != JobStatus::kClaimed && s->status != JobStatus::kRunning) {
    return QueueResult::kWrongState;
  }
  Statement st = db.prepare(
      "UPDATE jobs SET status=?, lease_expires_ms=NULL, finished_ms=?, artifact_digest=?, "
      "stopped_by=?, stop_reason=?, updated_ms=? WHERE id=?");
  st.bind_text(1, to_string(ending)).bind_int(2, now);
  if (artifact_digest) {
    st.bind_text(3, *artifact_digest);
  } else {
    st.bind_null(3);
  }
  if (stopped) {
    st.bind_text(4, stopped->actor).bind_text(5, stopped->reason);
  } else {
    st.bind_null(4).bind_null(5);
  }
  st.bind_int(6, now).bind_text(7, job_id).run();
  impl_->touch(s->worker, now);
  tx.commit();
  return QueueResult::kOk;
}

QueueResult JobQueue::fail(const std::string& job_id, const std::string& token,
                           FailureClass failure, std::string_view reason, std::string_view holder) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  const auto s = impl_->lease_state(job_id);
  if (!s) return QueueResult::kNotFound;
  if (const QueueResult r = lease_check(*s, token, holder); r != QueueResult::kOk) return r;
  const std::string why =
      std::string(to_string(failure)) + " on " + s->worker + ": " + std::string(reason);
  if (s->status == JobStatus::kCancelled && s->cancel_requested) {
    // The holder stopped the trainer the operator cancelled: acknowledged, nothing counts.
    impl_->finish(job_id, JobStatus::kCancelled, now, s->counted_failures, s->lost_count,
                  FailureClass::kCancelled, "cancelled by the operator; holder reported " + why);
  } else if (s->status != JobStatus::kClaimed && s->status != JobStatus::kRunning) {
    return QueueResult::kWrongState;
  } else if (failure == FailureClass::kTrainerFailure) {
    const std::int64_t counted = s->counted_failures + 1;
    if (counted >= s->max_attempts) {
      impl_->finish(job_id, JobStatus::kFailed, now, counted, s->lost_count, failure,
                    why + " (attempt " + std::to_string(counted) + " of " +
                        std::to_string(s->max_attempts) + ")");
    } else {
      const std::int64_t backoff =
          backoff_for(counted, impl_->options.backoff_base, impl_->options.backoff_cap);
      impl_->return_to_pending(job_id, now, now + backoff, backoff, counted, s->lost_count, failure,
                               why);
    }
  } else if (failure == FailureClass::kHostLost) {
    impl_->lose(job_id, *s, now, why);
  } else {
    throw QueueError("job " + job_id + ": '" + std::string(to_string(failure)) +
                     "' ends a job only after an operator's cancel; a holder reports '" +
                     std::string(to_string(FailureClass::kTrainerFailure)) + "' or '" +
                     std::string(to_string(FailureClass::kHostLost)) + "'");
  }
  impl_->touch(s->worker, now);
  tx.commit();
  return QueueResult::kOk;
}

std::vector<std::string> JobQueue::sweep_stale() {
  return sweep_stale(impl_->now());
}

std::vector<std::string> JobQueue::sweep_stale(UnixMillis now) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  Transaction tx(db);
  std::vector<std::pair<std::string, UnixMillis>> expired;
  {
    Statement st = db.prepare(
        "SELECT id, lease_expires_ms FROM jobs WHERE status IN ('claimed','running') AND "
        "lease_expires_ms <= ? ORDER BY seq");
    st.bind_int(1, now);
    while (st.step())
      expired.emplace_back(st.column_text(0), st.column_int(1));
  }
  std::vector<std::string> ids;
  for (const auto& [id, expires] : expired) {
    const auto s = impl_->lease_state(id);
    impl_->lose(id, *s, now,
                "lease of " + s->worker + " expired at " + std::to_string(expires) +
                    " ms without a heartbeat");
    ids.push_back(id);
  }
  if (!ids.empty()) tx.commit();
  return ids;
}

CancelReply JobQueue::cancel(const std::string& job_id) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  const auto s = impl_->lease_state(job_id);
  if (!s) return {QueueResult::kNotFound, JobStatus::kPending, {}};
  CancelReply reply{QueueResult::kOk, s->status, s->worker};
  if (!reply.was_held()) reply.worker.clear();
  if (s->status != JobStatus::kPending && !reply.was_held()) {
    reply.result = QueueResult::kWrongState;
    return reply;
  }
  Statement st = db.prepare(
      "UPDATE jobs SET status='cancelled', cancel_requested=?, finished_ms=?, last_failure=?, "
      "last_error=?, updated_ms=? WHERE id=?");
  st.bind_int(1, reply.was_held() ? 1 : 0)
      .bind_int(2, now)
      .bind_text(3, to_string(FailureClass::kCancelled))
      .bind_text(4, "cancelled by the operator")
      .bind_int(5, now)
      .bind_text(6, job_id)
      .run();
  tx.commit();
  return reply;
}

QueueResult JobQueue::requeue(const std::string& job_id, RequeueFrom from) {
  std::lock_guard lock(impl_->mutex);
  auto& db = impl_->db;
  const UnixMillis now = impl_->now();
  Transaction tx(db);
  Statement st = db.prepare(
      "UPDATE jobs SET status='pending', attempt=0, counted_failures=0, lost_count=0, "
      "worker=NULL, lease_token=NULL, lease_expires_ms=NULL, heartbeat_ms=NULL, "
      "cancel_requested=0, pending_since_ms=?, not_before_ms=0, backoff_ms=0, claimed_ms=NULL, "
      "started_ms=NULL, finished_ms=NULL, artifact_digest=NULL, stopped_by=NULL, "
      "stop_reason=NULL, generation=generation+?, updated_ms=? WHERE id=?");
  st.bind_int(1, now)
      .bind_int(2, from == RequeueFrom::kStart ? 1 : 0)
      .bind_int(3, now)
      .bind_text(4, job_id)
      .run();
  if (db.changes() == 0) return QueueResult::kNotFound;
  tx.commit();
  return QueueResult::kOk;
}

std::optional<JobRow> JobQueue::get(const std::string& job_id) const {
  std::lock_guard lock(impl_->mutex);
  Statement st = impl_->db.prepare(std::string("SELECT ") + kSpecColumns + ", " + kStateColumns +
                                   " FROM jobs WHERE id=?");
  st.bind_text(1, job_id);
  if (!st.step()) return std::nullopt;
  return read_job_row(st);
}

std::vector<JobRow> JobQueue::list(std::optional<JobStatus> status) const {
  std::lock_guard lock(impl_->mutex);
  const std::string columns = std::string("SELECT ") + kSpecColumns + ", " + kStateColumns;
  std::vector<JobRow> out;
  if (status) {
    Statement st = impl_->db.prepare(columns + " FROM jobs WHERE status=? ORDER BY seq");
    st.bind_text(1, to_string(*status));
    while (st.step())
      out.push_back(read_job_row(st));
  } else {
    Statement st = impl_->db.prepare(columns + " FROM jobs ORDER BY seq");
    while (st.step())
      out.push_back(read_job_row(st));
  }
  return out;
}

std::map<JobStatus, std::int64_t> JobQueue::counts() const {
  std::lock_guard lock(impl_->mutex);
  std::map<JobStatus, std::int64_t> out;
  for (const auto& [status, name] : kJobStatusNames)
    out[status] = 0;
  Statement st = impl_->db.prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status");
  while (st.step())
    out[status_from_db(st.column_text(0))] = st.column_int(1);
  return out;
}

std::int64_t JobQueue::total_changes() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->db.total_changes();
}

const std::string& JobQueue::path() const {
  return impl_->db.path();
}

std::vector<Explanation> JobQueue::explain(const std::string& job_id, UnixMillis now) const {
  const auto row = get(job_id);
  if (!row) throw QueueError("job " + job_id + ": no such job");
  return explain(row->spec, row->pending_since_ms, now);
}

std::vector<Explanation> JobQueue::explain(const JobSpec& spec, UnixMillis pending_since,
                                           UnixMillis now) const {
  Candidate c;
  c.id = spec.id;
  c.name = spec.name;
  c.model = spec.model;
  if (spec.pipeline) c.pipeline = spec.pipeline->pipeline;
  c.require_cuda = spec.constraints.require_cuda;
  c.prefer_cuda = spec.constraints.prefer_cuda;
  c.min_vram_gib = spec.constraints.min_vram_gib;
  c.min_ram_gib = spec.constraints.min_ram_gib;
  c.allowed_hosts = spec.constraints.allowed_hosts;
  c.pending_since_ms = pending_since;
  const std::vector<HostPolicy> policies = hosts();
  const auto policy_of = [&](const std::string& name) -> std::optional<HostPolicy> {
    for (const HostPolicy& p : policies) {
      if (p.name == name) return p;
    }
    return std::nullopt;
  };
  std::vector<Explanation> out;
  for (const WorkerRow& w : workers()) {
    const auto why = ineligibility(c, w.name, w.capability, policy_of(w.name), now,
                                   impl_->options.prefer_cuda_grace);
    out.push_back({w.name, true, why.value_or("")});
  }
  // Hosts the manifest names that never registered: only their policy is known.
  for (const HostPolicy& p : policies) {
    if (std::any_of(out.begin(), out.end(), [&](const Explanation& e) { return e.host == p.name; }))
      continue;
    HostCapability unknown;
    unknown.cuda = true;  // do not blame what we cannot know
    unknown.vram_gib = 1e9;
    unknown.ram_gib = 1e9;
    const auto why = ineligibility(c, p.name, unknown, p, now, std::chrono::milliseconds(0));
    out.push_back({p.name, false, why.value_or("")});
  }
  return out;
}

}  // namespace tv::fleet
