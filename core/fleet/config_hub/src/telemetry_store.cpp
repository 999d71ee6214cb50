#include "trainvisor/fleet/telemetry_store.hpp"

#include <algorithm>
#include <limits>
#include <mutex>

#include "sqlite_db.hpp"

namespace tv::fleet {
namespace {

constexpr const char* kSchema =
    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS telemetry (job_id TEXT NOT NULL, step INTEGER NOT NULL,"
    "  epoch INTEGER NOT NULL, flags INTEGER NOT NULL, wall_time_ns INTEGER NOT NULL,"
    "  loss REAL, grad_norm REAL, learning_rate REAL, config_revision INTEGER NOT NULL,"
    "  val_loss REAL, val_accuracy REAL, samples_per_sec REAL, PRIMARY KEY (job_id, step));"
    "CREATE TABLE IF NOT EXISTS telemetry_applied (job_id TEXT PRIMARY KEY,"
    "  revision INTEGER NOT NULL, since_step INTEGER NOT NULL, last_step INTEGER NOT NULL,"
    "  host TEXT NOT NULL, time_ms INTEGER NOT NULL, points INTEGER NOT NULL,"
    "  missed INTEGER NOT NULL);";

std::int64_t i64(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

// SQLite has no non-finite REAL that survives a round trip (NaN reads back as NULL).
Param real(double v) {
  if (v != v) return nullptr;
  return v;
}

double real_of(sqlite3_stmt* st, int col) {
  return sqlite3_column_type(st, col) == SQLITE_NULL ? std::numeric_limits<double>::quiet_NaN()
                                                     : sqlite3_column_double(st, col);
}

}  // namespace

struct TelemetryStore::Impl {
  mutable std::mutex mu;
  mutable Db db;
  explicit Impl(const std::string& path) : db("telemetry store", path, kSchema) {}

  std::optional<AppliedConfig> applied(const std::string& job) const {
    std::optional<AppliedConfig> out;
    db.query(
        "SELECT revision, since_step, last_step, host, time_ms, points, missed FROM "
        "telemetry_applied WHERE job_id=?",
        {job}, [&](sqlite3_stmt* st) {
          AppliedConfig a;
          a.revision = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
          a.since_step = static_cast<std::uint64_t>(sqlite3_column_int64(st, 1));
          a.last_step = static_cast<std::uint64_t>(sqlite3_column_int64(st, 2));
          a.host = text(st, 3);
          a.time_ms = sqlite3_column_int64(st, 4);
          a.points = static_cast<std::uint64_t>(sqlite3_column_int64(st, 5));
          a.missed = static_cast<std::uint64_t>(sqlite3_column_int64(st, 6));
          out = a;
        });
    return out;
  }
};

TelemetryStore::TelemetryStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TelemetryStore::TelemetryStore(TelemetryStore&&) noexcept = default;
TelemetryStore::~TelemetryStore() = default;

TelemetryStore TelemetryStore::open(const std::string& path) {
  return TelemetryStore(std::make_unique<Impl>(path));
}

void TelemetryStore::append(const std::string& job_id,
                            const std::vector<plugin::TelemetryPoint>& points,
                            const std::string& host, std::uint64_t missed, std::int64_t time_ms) {
  std::lock_guard lock(impl_->mu);
  AppliedConfig a = impl_->applied(job_id).value_or(AppliedConfig{});
  impl_->db.exec("BEGIN IMMEDIATE");
  try {
    for (const plugin::TelemetryPoint& p : points) {
      if (a.points > 0 && p.step <= a.last_step) continue;  // already stored
      impl_->db.query(
          "INSERT OR IGNORE INTO telemetry (job_id, step, epoch, flags, wall_time_ns, loss, "
          "grad_norm, learning_rate, config_revision, val_loss, val_accuracy, samples_per_sec) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
          {job_id, i64(p.step), std::int64_t{p.epoch}, std::int64_t{p.flags}, p.wall_time_ns,
           real(p.loss), real(p.grad_norm), real(p.learning_rate), i64(p.config_revision),
           real(p.val_loss), real(p.val_accuracy), real(p.samples_per_sec)});
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
    impl_->db.query(
        "INSERT INTO telemetry_applied (job_id, revision, since_step, last_step, host, time_ms, "
        "points, missed) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT (job_id) DO UPDATE SET "
        "revision=excluded.revision, since_step=excluded.since_step, "
        "last_step=excluded.last_step, host=excluded.host, time_ms=excluded.time_ms, "
        "points=excluded.points, missed=excluded.missed",
        {job_id, i64(a.revision), i64(a.since_step), i64(a.last_step), a.host, a.time_ms,
         i64(a.points), i64(a.missed)});
    impl_->db.exec("COMMIT");
  } catch (...) {
    impl_->db.exec("ROLLBACK");
    throw;
  }
}

std::vector<plugin::TelemetryPoint> TelemetryStore::curve(const std::string& job_id,
                                                          std::size_t max_points) const {
  std::lock_guard lock(impl_->mu);
  // Evaluations and training steps are thinned separately, half the budget each, so that a curve
  // with frequent evaluations still shows its training loss and the other way round.
  std::int64_t evals = 0, steps = 0;
  impl_->db.query(
      "SELECT COALESCE(SUM((flags & ?) != 0), 0), COALESCE(SUM((flags & ?) = 0), 0) FROM "
      "telemetry WHERE job_id=?",
      {std::int64_t{plugin::kTelemetryEval}, std::int64_t{plugin::kTelemetryEval}, job_id},
      [&](sqlite3_stmt* st) {
        evals = sqlite3_column_int64(st, 0);
        steps = sqlite3_column_int64(st, 1);
      });
  const std::int64_t half = std::max<std::int64_t>(1, i64(max_points) / 2);
  const auto stride = [&](std::int64_t n) {
    return max_points == 0 ? 1 : std::max<std::int64_t>(1, (n + half - 1) / half);
  };
  std::vector<plugin::TelemetryPoint> out;
  impl_->db.query(
      "SELECT step, epoch, flags, wall_time_ns, loss, grad_norm, learning_rate, config_revision, "
      "val_loss, val_accuracy, samples_per_sec FROM (SELECT *, (flags & ?3) != 0 AS ev, "
      "ROW_NUMBER() OVER (PARTITION BY (flags & ?3) != 0 ORDER BY step) AS rn, "
      "COUNT(*) OVER (PARTITION BY (flags & ?3) != 0) AS n FROM telemetry WHERE job_id=?1) "
      "WHERE (rn - 1) % (CASE WHEN ev THEN ?4 ELSE ?2 END) = 0 OR rn = n ORDER BY step",
      {job_id, stride(steps), std::int64_t{plugin::kTelemetryEval}, stride(evals)},
      [&](sqlite3_stmt* st) {
        plugin::TelemetryPoint p;
        p.step = static_cast<std::uint64_t>(sqlite3_column_int64(st, 0));
        p.epoch = static_cast<std::uint32_t>(sqlite3_column_int64(st, 1));
        p.flags = static_cast<std::uint32_t>(sqlite3_column_int64(st, 2));
        p.wall_time_ns = sqlite3_column_int64(st, 3);
        p.loss = real_of(st, 4);
        p.grad_norm = real_of(st, 5);
        p.learning_rate = real_of(st, 6);
        p.config_revision = static_cast<std::uint64_t>(sqlite3_column_int64(st, 7));
        p.val_loss = real_of(st, 8);
        p.val_accuracy = real_of(st, 9);
        p.samples_per_sec = real_of(st, 10);
        out.push_back(p);
      });
  return out;
}

std::optional<AppliedConfig> TelemetryStore::applied(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->applied(job_id);
}

}  // namespace tv::fleet
