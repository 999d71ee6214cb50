#include "trainvisor/fleet/telemetry_store.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <mutex>
#include <stdexcept>

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
    "  missed INTEGER NOT NULL, stored INTEGER);"
    // The long-term layer: one aggregate per job, metric (api::CurveMetric) and rollup_steps.
    "CREATE TABLE IF NOT EXISTS telemetry_rollup (job_id TEXT NOT NULL, metric INTEGER NOT NULL,"
    "  bucket INTEGER NOT NULL, step_lo INTEGER NOT NULL, step_hi INTEGER NOT NULL,"
    "  t_lo INTEGER NOT NULL, t_hi INTEGER NOT NULL, n INTEGER NOT NULL, vmin REAL NOT NULL,"
    "  vmax REAL NOT NULL, vfirst REAL NOT NULL, vlast REAL NOT NULL,"
    "  PRIMARY KEY (job_id, metric, bucket));"
    "CREATE TABLE IF NOT EXISTS telemetry_revisions (job_id TEXT NOT NULL,"
    "  revision INTEGER NOT NULL, step INTEGER NOT NULL, PRIMARY KEY (job_id, revision));";

// A point's columns, in the order point_of() reads them.
constexpr const char* kPointColumns =
    "step, epoch, flags, wall_time_ns, loss, grad_norm, learning_rate, config_revision, "
    "val_loss, val_accuracy, samples_per_sec";

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

plugin::TelemetryPoint point_of(const Statement& st) {
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
  return p;
}

// The metric columns in api::CurveMetric's order (the table's columns bear the same names).
std::string metric_columns() {
  std::string out;
  for (std::string_view m : api::kCurveMetricNames)
    out += (out.empty() ? "" : ", ") + std::string(m);
  return out;
}

// Points (or aggregates of them) folded together in step order.
struct Fold {
  std::int64_t step_lo = 0, step_hi = 0, t_lo = 0, t_hi = 0;
  std::uint64_t n = 0;
  double min = 0, max = 0, first = 0, last = 0;

  static Fold point(std::int64_t step, std::int64_t t, double v) {
    return {step, step, t, t, 1, v, v, v, v};
  }
  // `later` holds points after this one's.
  void merge(const Fold& later) {
    if (n == 0) {
      *this = later;
      return;
    }
    step_hi = later.step_hi;
    t_lo = std::min(t_lo, later.t_lo);
    t_hi = std::max(t_hi, later.t_hi);
    n += later.n;
    min = std::min(min, later.min);
    max = std::max(max, later.max);
    last = later.last;
  }
};

constexpr std::int64_t kNsPerMs = 1000000;

}  // namespace

struct TelemetryStore::Impl {
  mutable std::mutex mu;
  // NORMAL: telemetry, not state; a power cut may lose the last batches, never the file.
  mutable store::Connection db;  // guarded by mu
  TelemetryOptions options;
  Impl(const std::string& path, TelemetryOptions o)
      : db(path, {"telemetry store", std::chrono::seconds(10), store::Durability::kNormal}),
        options(o) {
    if (o.rollup_steps == 0)
      throw std::invalid_argument("telemetry store: rollup_steps must be at least 1");
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
    Statement cut =
        db.prepare("SELECT step FROM telemetry WHERE job_id=? ORDER BY step LIMIT 1 OFFSET ?");
    cut.bind_all(job, kept - keep - 1);
    if (!cut.step()) return kept;
    const std::int64_t through = cut.column_int(0);
    roll_up(job, through);
    db.prepare("DELETE FROM telemetry WHERE job_id=? AND step <= ?").bind_all(job, through).run();
    return kept - db.changes();
  }

  // Folds the job's points up to `through` into the long-term layer. Called in step order, so
  // an aggregate that exists already holds earlier points than these.
  void roll_up(const std::string& job, std::int64_t through) {
    const auto width = i64(options.rollup_steps);
    std::map<std::pair<std::size_t, std::int64_t>, Fold> folds;
    Statement st = db.prepare("SELECT step, wall_time_ns, " + metric_columns() +
                              " FROM telemetry WHERE job_id=? AND step <= ? ORDER BY step");
    st.bind_all(job, through);
    while (st.step()) {
      const std::int64_t step = st.column_int(0), t = st.column_int(1);
      for (std::size_t m = 0; m < api::kCurveMetrics; ++m) {
        const int col = static_cast<int>(m) + 2;
        if (!st.is_null(col))
          folds[{m, step / width}].merge(Fold::point(step, t, st.column_double(col)));
      }
    }
    for (const auto& [key, f] : folds) {
      db.prepare(
            "INSERT INTO telemetry_rollup VALUES (?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (job_id, "
            "metric, bucket) DO UPDATE SET step_hi=excluded.step_hi, t_lo=MIN(t_lo, "
            "excluded.t_lo), t_hi=MAX(t_hi, excluded.t_hi), n=n+excluded.n, vmin=MIN(vmin, "
            "excluded.vmin), vmax=MAX(vmax, excluded.vmax), vlast=excluded.vlast")
          .bind_all(job, i64(key.first), key.second, f.step_lo, f.step_hi, f.t_lo, f.t_hi, i64(f.n),
                    f.min, f.max, f.first, f.last)
          .run();
    }
  }

  // The first and last x of the job's kept points (by step); nullopt when it keeps none.
  std::optional<std::pair<std::int64_t, std::int64_t>> kept_extent(const std::string& job,
                                                                   bool by_step) const {
    Statement st = db.prepare("SELECT MIN(step), MAX(step) FROM telemetry WHERE job_id=?");
    st.bind_all(job);
    if (!st.step() || st.is_null(0)) return std::nullopt;
    const std::int64_t first = st.column_int(0), last = st.column_int(1);
    if (by_step) return std::pair{first, last};
    const auto time_ms = [&](std::int64_t step) {
      Statement t = db.prepare("SELECT wall_time_ns FROM telemetry WHERE job_id=? AND step=?");
      t.bind_all(job, step);
      return t.step() ? t.column_int(0) / kNsPerMs : 0;
    };
    return std::pair{time_ms(first), time_ms(last)};
  }

  // The first and last x of the metric's aggregates; nullopt when it has none.
  std::optional<std::pair<std::int64_t, std::int64_t>> rolled_extent(const std::string& job,
                                                                     api::CurveMetric m,
                                                                     bool by_step) const {
    Statement st = db.prepare(
        "SELECT MIN(step_lo), MAX(step_hi), MIN(t_lo), MAX(t_hi) FROM telemetry_rollup WHERE "
        "job_id=? AND metric=?");
    st.bind_all(job, static_cast<std::int64_t>(m));
    if (!st.step() || st.is_null(0)) return std::nullopt;
    if (by_step) return std::pair{st.column_int(0), st.column_int(1)};
    return std::pair{st.column_int(2) / kNsPerMs, st.column_int(3) / kNsPerMs};
  }

  // Folds the metric's aggregates, then its kept points, with x in [lo, hi] into `slot(x)`.
  template <class Slot>
  void fold_curve(const std::string& job, api::CurveMetric m, bool by_step, std::int64_t lo,
                  std::int64_t hi, Slot slot) const {
    const auto ns = [](std::int64_t ms) {
      return ms > std::numeric_limits<std::int64_t>::max() / kNsPerMs
                 ? std::numeric_limits<std::int64_t>::max()
                 : ms * kNsPerMs;
    };
    const std::int64_t a = by_step ? lo : ns(lo);
    const std::int64_t b =
        by_step
            ? hi
            : (ns(hi) == std::numeric_limits<std::int64_t>::max() ? ns(hi) : ns(hi) + kNsPerMs - 1);
    const std::string rolled_x = by_step ? "step_lo" : "t_lo";
    Statement old = db.prepare(
        "SELECT step_lo, step_hi, t_lo, t_hi, n, vmin, vmax, vfirst, vlast FROM telemetry_rollup "
        "WHERE job_id=? AND metric=? AND " +
        rolled_x + " BETWEEN ? AND ? ORDER BY bucket");
    old.bind_all(job, static_cast<std::int64_t>(m), a, b);
    while (old.step()) {
      const Fold f{old.column_int(0),    old.column_int(1),      old.column_int(2),
                   old.column_int(3),    u64(old.column_int(4)), old.column_double(5),
                   old.column_double(6), old.column_double(7),   old.column_double(8)};
      slot(by_step ? f.step_lo : f.t_lo / kNsPerMs).merge(f);
    }
    const std::string col(api::kCurveMetricNames[static_cast<std::size_t>(m)]);
    Statement kept =
        db.prepare("SELECT step, wall_time_ns, " + col + " FROM telemetry WHERE job_id=? AND " +
                   (by_step ? "step" : "wall_time_ns") + " BETWEEN ? AND ? AND " + col +
                   " IS NOT NULL ORDER BY step");
    kept.bind_all(job, a, b);
    while (kept.step()) {
      const std::int64_t step = kept.column_int(0), t = kept.column_int(1);
      slot(by_step ? step : t / kNsPerMs).merge(Fold::point(step, t, kept.column_double(2)));
    }
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
    if (a.points == 0 || p.config_revision != a.revision) {
      impl_->db.prepare("INSERT OR IGNORE INTO telemetry_revisions VALUES (?,?,?)")
          .bind_all(job_id, i64(p.config_revision), i64(p.step))
          .run();
    }
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
      std::string("SELECT ") + kPointColumns +
      " FROM (SELECT *, (flags & ?3) != 0 AS ev, "
      "ROW_NUMBER() OVER (PARTITION BY (flags & ?3) != 0 ORDER BY step) AS rn, "
      "COUNT(*) OVER (PARTITION BY (flags & ?3) != 0) AS n FROM telemetry WHERE job_id=?1) "
      "WHERE (rn - 1) % (CASE WHEN ev THEN ?4 ELSE ?2 END) = 0 OR rn = n ORDER BY step");
  st.bind_all(job_id, stride(steps), std::int64_t{plugin::kTelemetryEval}, stride(evals));
  while (st.step())
    out.push_back(point_of(st));
  return out;
}

api::MetricCurve TelemetryStore::buckets(const std::string& job_id, const CurveRequest& r) const {
  std::lock_guard lock(impl_->mu);
  api::MetricCurve c;
  c.job = job_id;
  c.metric = r.metric;
  c.x = r.x;
  c.rollup_steps = impl_->options.rollup_steps;
  const bool by_step = r.x == api::CurveAxis::kStep;
  const auto kept = impl_->kept_extent(job_id, by_step);
  const auto rolled = impl_->rolled_extent(job_id, r.metric, by_step);
  if (rolled) c.exact_from = kept ? kept->first : rolled->second + 1;
  std::pair<std::int64_t, std::int64_t> extent = kept.value_or(std::pair{0, 0});
  if (rolled) {
    extent.first = kept ? std::min(extent.first, rolled->first) : rolled->first;
    extent.second = std::max(extent.second, rolled->second);
  }
  std::int64_t lo = r.from.value_or(extent.first);
  std::int64_t hi = r.to.value_or(extent.second);
  c.from = lo;
  c.to = hi;
  if ((!kept && !rolled) || hi < lo) return c;
  const std::uint64_t n = std::max<std::size_t>(1, r.buckets);
  std::uint64_t span = u64(hi) - u64(lo) + 1;
  std::uint64_t width = (span + n - 1) / n;
  // Where the range reaches the long-term layer a bucket holds whole aggregates: none straddles
  // two buckets or an end of the range, so each bucket's count, min and max are exact.
  if (by_step && rolled && rolled->second >= lo) {
    const std::uint64_t w = impl_->options.rollup_steps;
    lo -= static_cast<std::int64_t>(u64(lo) % w);
    if (hi <= rolled->second) hi += static_cast<std::int64_t>(w - 1 - u64(hi) % w);
    span = u64(hi) - u64(lo) + 1;
    width = ((span + n - 1) / n + w - 1) / w * w;
  }
  c.from = lo;
  c.to = hi;
  c.bucket_width = i64(width);
  std::vector<Fold> folds((span + width - 1) / width);
  impl_->fold_curve(job_id, r.metric, by_step, lo, hi, [&](std::int64_t x) -> Fold& {
    return folds[std::min<std::uint64_t>((u64(x) - u64(lo)) / width, folds.size() - 1)];
  });
  for (std::size_t i = 0; i < folds.size(); ++i) {
    const Fold& f = folds[i];
    if (f.n == 0) continue;
    const std::int64_t x_lo = lo + i64(i * width);
    c.buckets.push_back(
        {x_lo, std::min(hi, x_lo + i64(width) - 1), f.n, f.min, f.max, f.first, f.last});
  }
  return c;
}

NewPoints TelemetryStore::points_after(const std::string& job_id, std::int64_t after_step,
                                       std::size_t limit) const {
  std::lock_guard lock(impl_->mu);
  NewPoints out;
  // One more than asked: its presence says older points were left out.
  Statement st = impl_->db.prepare(std::string("SELECT ") + kPointColumns +
                                   " FROM telemetry WHERE job_id=? AND step > ? ORDER BY step "
                                   "DESC LIMIT ?");
  st.bind_all(job_id, after_step, i64(limit) + 1);
  while (st.step())
    out.points.push_back(point_of(st));
  if (out.points.size() > limit) {
    out.truncated = true;
    out.points.pop_back();
  }
  std::reverse(out.points.begin(), out.points.end());
  return out;
}

std::map<std::uint64_t, std::uint64_t> TelemetryStore::revision_steps(
    const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  std::map<std::uint64_t, std::uint64_t> out;
  Statement st = impl_->db.prepare("SELECT revision, step FROM telemetry_revisions WHERE job_id=?");
  st.bind_all(job_id);
  while (st.step())
    out[u64(st.column_int(0))] = u64(st.column_int(1));
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
