#include "trainvisor/fleet/telemetry_store.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <mutex>

#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet {
namespace {

using store::Statement;
using store::Transaction;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS telemetry (job_id TEXT NOT NULL, step INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL, flags INTEGER NOT NULL, wall_time_ns INTEGER NOT NULL,"
    "  loss REAL, grad_norm REAL, learning_rate REAL, config_revision INTEGER NOT NULL,"
    "  val_loss REAL, val_accuracy REAL, samples_per_sec REAL, PRIMARY KEY (job_id, step));"
    "CREATE TABLE IF NOT EXISTS telemetry_applied (job_id TEXT PRIMARY KEY,"
    "  revision INTEGER NOT NULL, since_step INTEGER NOT NULL, last_step INTEGER NOT NULL,"
    "  host TEXT NOT NULL, time_ms INTEGER NOT NULL, points INTEGER NOT NULL,"
    "  missed INTEGER NOT NULL, stored INTEGER);";

// A database made before retention lacks the stored column: NULL, counted at the next append.
void add_stored_column(store::Connection& db) {
  Statement st =
      db.prepare("SELECT 1 FROM pragma_table_info('telemetry_applied') WHERE name='stored'");
  if (st.step()) return;
  db.exec("ALTER TABLE telemetry_applied ADD COLUMN stored INTEGER");
}

std::int64_t i64(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

std::uint64_t u64(std::int64_t v) {
  return static_cast<std::uint64_t>(v);
}

// SQLite has no non-finite REAL that survives a round trip (NaN reads back as NULL).
void bind_real(Statement& st, int index, double v) {
  if (v != v) {
    st.bind_null(index);
  } else {
    st.bind_double(index, v);
  }
}

double real_of(const Statement& st, int col) {
  return st.is_null(col) ? std::numeric_limits<double>::quiet_NaN() : st.column_double(col);
}

}  // namespace

struct TelemetryStore::Impl {
  mutable std::mutex mu;
  // NORMAL: telemetry, not state; a power cut may lose the last batches, never the file.
  mutable store::Connection db;  // guarded by mu
  TelemetryOptions options;
  Impl(const std::string& path, TelemetryOptions o)
      : db(path, {"telemetry store", std::chrono::seconds(10), store::Durability::kNormal}),
        options(o) {
    db.exec(kSchema);
    add_stored_column(db);
  }

  // The points the job keeps; counted once for a row written before the count was kept.
  std::int64_t stored(const std::string& job) const {
    {
      Statement st = db.prepare("SELECT stored FROM telemetry_applied WHERE job_id=?");
      st.bind_all(job);
      if (!st.step()) return 0;
      if (!st.is_null(0)) return st.column_int(0);
    }
    Statement st = db.prepare("SELECT COUNT(*) FROM telemetry WHERE job_id=?");
    st.bind_all(job);
    return st.step() ? st.column_int(0) : 0;
  }

  // Deletes the job's oldest points beyond the cap; returns how many it keeps. The oldest are
  // the first `excess` entries of the (job_id, step) key: found without reading the rest.
  std::int64_t prune(const std::string& job, std::int64_t kept) {
    const auto keep = static_cast<std::int64_t>(options.keep_per_job);
    if (keep <= 0 || kept <= keep) return kept;
    db.prepare(
          "DELETE FROM telemetry WHERE job_id=?1 AND step <= (SELECT step FROM telemetry WHERE "
          "job_id=?1 ORDER BY step LIMIT 1 OFFSET ?2)")
        .bind_all(job, kept - keep - 1)
        .run();
    return kept - db.changes();
  }

  std::optional<AppliedConfig> applied(const std::string& job) const {
    Statement st = db.prepare(
        "SELECT revision, since_step, last_step, host, time_ms, points, missed FROM "
        "telemetry_applied WHERE job_id=?");
    st.bind_all(job);
    if (!st.step()) return std::nullopt;
    AppliedConfig a;
    a.revision = u64(st.column_int(0));
    a.since_step = u64(st.column_int(1));
    a.last_step = u64(st.column_int(2));
    a.host = st.column_text(3);
    a.time_ms = st.column_int(4);
    a.points = u64(st.column_int(5));
    a.missed = u64(st.column_int(6));
    return a;
  }
};

TelemetryStore::TelemetryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TelemetryStore::TelemetryStore(TelemetryStore&&) noexcept = default;
TelemetryStore::~TelemetryStore() = default;

TelemetryStore TelemetryStore::open(const std::string& path, TelemetryOptions options) {
  return TelemetryStore(std::make_unique<Impl>(path, options));
}

void TelemetryStore::append(const std::string& job_id,
                            const std::vector<plugin::TelemetryPoint>& points,
                            const std::string& host, std::uint64_t missed, std::int64_t time_ms) {
  std::lock_guard lock(impl_->mu);
  AppliedConfig a = impl_->applied(job_id).value_or(AppliedConfig{});
  std::int64_t kept = impl_->stored(job_id);
  Transaction tx(impl_->db);
  for (const plugin::TelemetryPoint& p : points) {
    if (a.points > 0 && p.step <= a.last_step) continue;  // already stored
    Statement st = impl_->db.prepare(
        "INSERT OR IGNORE INTO telemetry (job_id, step, epoch, flags, wall_time_ns, loss, "
        "grad_norm, learning_rate, config_revision, val_loss, val_accuracy, samples_per_sec) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    st.bind_all(job_id, i64(p.step), std::int64_t{p.epoch}, std::int64_t{p.flags}, p.wall_time_ns);
    bind_real(st, 6, p.loss);
    bind_real(st, 7, p.grad_norm);
    bind_real(st, 8, p.learning_rate);
    st.bind_int(9, i64(p.config_revision));
    bind_real(st, 10, p.val_loss);
    bind_real(st, 11, p.val_accuracy);
    bind_real(st, 12, p.samples_per_sec);
    st.run();
    kept += impl_->db.changes();
    if (p.config_revision != a.revision) {
      a.revision = p.config_revision;
      a.since_step = p.step;
    }
    a.last_step = p.step;
    ++a.points;
  }
  a.host = host;
  a.time_ms = time_ms;
  a.missed += missed;
  kept = impl_->prune(job_id, kept);
  impl_->db
      .prepare(
          "INSERT INTO telemetry_applied (job_id, revision, since_step, last_step, host, "
          "time_ms, points, missed, stored) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (job_id) DO "
          "UPDATE SET revision=excluded.revision, since_step=excluded.since_step, "
          "last_step=excluded.last_step, host=excluded.host, time_ms=excluded.time_ms, "
          "points=excluded.points, missed=excluded.missed, stored=excluded.stored")
      .bind_all(job_id, i64(a.revision), i64(a.since_step), i64(a.last_step), a.host, a.time_ms,
                i64(a.points), i64(a.missed), kept)
      .run();
  tx.commit();
}

std::vector<plugin::TelemetryPoint> TelemetryStore::curve(const std::string& job_id,
                                                          std::size_t max_points) const {
  std::lock_guard lock(impl_->mu);
  // Evaluations and training steps are thinned separately, half the budget each, so that a curve
  // with frequent evaluations still shows its training loss and the other way round.
  std::int64_t evals = 0, steps = 0;
  {
    Statement st = impl_->db.prepare(
        "SELECT COALESCE(SUM((flags & ?) != 0), 0), COALESCE(SUM((flags & ?) = 0), 0) FROM "
        "telemetry WHERE job_id=?");
    st.bind_all(std::int64_t{plugin::kTelemetryEval}, std::int64_t{plugin::kTelemetryEval}, job_id);
    if (st.step()) {
      evals = st.column_int(0);
      steps = st.column_int(1);
    }
  }
  const std::int64_t half = std::max<std::int64_t>(1, i64(max_points) / 2);
  const auto stride = [&](std::int64_t n) {
    return max_points == 0 ? 1 : std::max<std::int64_t>(1, (n + half - 1) / half);
  };
  std::vector<plugin::TelemetryPoint> out;
  Statement st = impl_->db.prepare(
      "SELECT step, epoch, flags, wall_time_ns, loss, grad_norm, learning_rate, config_revision, "
      "val_loss, val_accuracy, samples_per_sec FROM (SELECT *, (flags & ?3) != 0 AS ev, "
      "ROW_NUMBER() OVER (PARTITION BY (flags & ?3) != 0 ORDER BY step) AS rn, "
      "COUNT(*) OVER (PARTITION BY (flags & ?3) != 0) AS n FROM telemetry WHERE job_id=?1) "
      "WHERE (rn - 1) % (CASE WHEN ev THEN ?4 ELSE ?2 END) = 0 OR rn = n ORDER BY step");
  st.bind_all(job_id, stride(steps), std::int64_t{plugin::kTelemetryEval}, stride(evals));
  while (st.step()) {
    plugin::TelemetryPoint p;
    p.step = u64(st.column_int(0));
    p.epoch = static_cast<std::uint32_t>(st.column_int(1));
    p.flags = static_cast<std::uint32_t>(st.column_int(2));
    p.wall_time_ns = st.column_int(3);
    p.loss = real_of(st, 4);
    p.grad_norm = real_of(st, 5);
    p.learning_rate = real_of(st, 6);
    p.config_revision = u64(st.column_int(7));
    p.val_loss = real_of(st, 8);
    p.val_accuracy = real_of(st, 9);
    p.samples_per_sec = real_of(st, 10);
    out.push_back(p);
  }
  return out;
}

std::optional<AppliedConfig> TelemetryStore::applied(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->applied(job_id);
}

std::uint64_t TelemetryStore::stored(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  return u64(impl_->stored(job_id));
}

}  // namespace tv::fleet
