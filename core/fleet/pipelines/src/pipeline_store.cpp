#include "trainvisor/fleet/pipelines/pipeline_store.hpp"

#include <chrono>
#include <mutex>

#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet::pipelines {
namespace {

using store::Statement;
using store::Transaction;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS pipeline_cursor (pipeline TEXT PRIMARY KEY,"
    "  trigger_key TEXT NOT NULL, origin_seq INTEGER NOT NULL, next_seq INTEGER NOT NULL,"
    "  end_sample INTEGER NOT NULL, triggers INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pipeline_triggers (pipeline TEXT NOT NULL, idx INTEGER NOT NULL,"
    "  window_begin INTEGER NOT NULL, end_sample INTEGER NOT NULL, time_ns INTEGER NOT NULL,"
    "  reason TEXT NOT NULL, stats TEXT NOT NULL, job_id TEXT NOT NULL,"
    "  initial_weights TEXT NOT NULL, baseline TEXT NOT NULL, outcome TEXT NOT NULL,"
    "  model TEXT NOT NULL, metrics TEXT NOT NULL, gate TEXT NOT NULL,"
    "  fired_ms INTEGER NOT NULL, decided_ms INTEGER NOT NULL, PRIMARY KEY (pipeline, idx));"
    "CREATE INDEX IF NOT EXISTS pipeline_triggers_job ON pipeline_triggers (job_id);"
    "CREATE TABLE IF NOT EXISTS pipeline_features (pipeline TEXT PRIMARY KEY,"
    "  trigger_key TEXT NOT NULL, model TEXT NOT NULL, origin_seq INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pipeline_aliases (alias TEXT PRIMARY KEY,"
    "  pipeline TEXT NOT NULL, digest TEXT NOT NULL, trigger_idx INTEGER NOT NULL,"
    "  revision INTEGER NOT NULL, updated_ms INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pipeline_alias_log (alias TEXT NOT NULL,"
    "  revision INTEGER NOT NULL, pipeline TEXT NOT NULL, digest TEXT NOT NULL,"
    "  previous TEXT NOT NULL, trigger_idx INTEGER NOT NULL, actor TEXT NOT NULL,"
    "  reason TEXT NOT NULL, at_ms INTEGER NOT NULL, PRIMARY KEY (alias, revision));";

constexpr const char* kTriggerColumns =
    "pipeline, idx, window_begin, end_sample, time_ns, reason, stats, job_id, initial_weights,"
    " baseline, outcome, model, metrics, gate, fired_ms, decided_ms";

TriggerOutcome outcome_from(const std::string& s) {
  if (s == "deployed") return TriggerOutcome::kDeployed;
  if (s == "refused") return TriggerOutcome::kRefused;
  if (s == "failed") return TriggerOutcome::kFailed;
  return TriggerOutcome::kTraining;
}

TriggerRecord trigger_row(const Statement& st) {
  TriggerRecord r;
  r.pipeline = st.column_text(0);
  r.index = st.column_int(1);
  r.window_begin = st.column_int(2);
  r.end_sample = st.column_int(3);
  r.time_ns = st.column_int(4);
  r.reason = st.column_text(5);
  r.stats_json = st.column_text(6);
  r.job_id = st.column_text(7);
  r.initial_weights = st.column_text(8);
  r.baseline = st.column_text(9);
  r.outcome = outcome_from(st.column_text(10));
  r.model = st.column_text(11);
  r.metrics_json = st.column_text(12);
  r.gate = st.column_text(13);
  r.fired_ms = st.column_int(14);
  r.decided_ms = st.column_int(15);
  return r;
}

std::vector<TriggerRecord> trigger_rows(Statement& st) {
  std::vector<TriggerRecord> out;
  while (st.step())
    out.push_back(trigger_row(st));
  return out;
}

}  // namespace

const char* to_string(TriggerOutcome outcome) {
  switch (outcome) {
    case TriggerOutcome::kDeployed:
      return "deployed";
    case TriggerOutcome::kRefused:
      return "refused";
    case TriggerOutcome::kFailed:
      return "failed";
    default:
      return "training";
  }
}

struct PipelineStore::Impl {
  mutable std::mutex mu;
  mutable store::Connection db;  // guarded by mu
  std::function<std::int64_t()> clock;

  Impl(const std::string& path, std::function<std::int64_t()> c)
      : db(path, {"pipeline store", std::chrono::seconds(10), store::Durability::kFull}),
        clock(std::move(c)) {
    if (!clock) {
      clock = [] {
        using namespace std::chrono;
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
      };
    }
    db.exec(kSchema);
  }

  std::optional<PipelineCursor> read_cursor(const std::string& pipeline) const {
    Statement st = db.prepare(
        "SELECT trigger_key, origin_seq, next_seq, end_sample, triggers FROM pipeline_cursor "
        "WHERE pipeline=?");
    st.bind_all(pipeline);
    if (!st.step()) return std::nullopt;
    return PipelineCursor{st.column_text(0), st.column_int(1), st.column_int(2), st.column_int(3),
                          st.column_int(4)};
  }

  std::optional<AliasState> read_alias(const std::string& alias) const {
    Statement st = db.prepare(
        "SELECT alias, pipeline, digest, trigger_idx, revision, updated_ms FROM pipeline_aliases "
        "WHERE alias=?");
    st.bind_all(alias);
    if (!st.step()) return std::nullopt;
    return AliasState{st.column_text(0), st.column_text(1), st.column_text(2),
                      st.column_int(3),  st.column_int(4),  st.column_int(5)};
  }

  // Moves `alias` (inside the caller's transaction) and logs the move.
  AliasState move_alias(const std::string& alias, const std::string& pipeline,
                        const std::string& digest, std::int64_t trigger, const std::string& actor,
                        const std::string& reason) {
    const std::optional<AliasState> before = read_alias(alias);
    AliasState after{alias, pipeline, digest, trigger, before ? before->revision + 1 : 1, clock()};
    db.prepare(
          "INSERT INTO pipeline_aliases (alias, pipeline, digest, trigger_idx, revision, "
          "updated_ms) VALUES (?,?,?,?,?,?) ON CONFLICT(alias) DO UPDATE SET "
          "pipeline=excluded.pipeline, digest=excluded.digest, trigger_idx=excluded.trigger_idx, "
          "revision=excluded.revision, updated_ms=excluded.updated_ms")
        .bind_all(alias, pipeline, digest, trigger, after.revision, after.updated_ms)
        .run();
    db.prepare("INSERT INTO pipeline_alias_log VALUES (?,?,?,?,?,?,?,?,?)")
        .bind_all(alias, after.revision, pipeline, digest, before ? before->digest : "", trigger,
                  actor, reason, after.updated_ms)
        .run();
    return after;
  }

  void insert_trigger(const TriggerRecord& r) {
    db.prepare("INSERT INTO pipeline_triggers (" + std::string(kTriggerColumns) +
               ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        .bind_all(r.pipeline, r.index, r.window_begin, r.end_sample, r.time_ns, r.reason,
                  r.stats_json.empty() ? "{}" : r.stats_json, r.job_id, r.initial_weights,
                  r.baseline, "training", "", "{}", "", clock(), std::int64_t{0})
        .run();
  }
};

PipelineStore::PipelineStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PipelineStore::PipelineStore(PipelineStore&&) noexcept = default;
PipelineStore& PipelineStore::operator=(PipelineStore&&) noexcept = default;
PipelineStore::~PipelineStore() = default;

PipelineStore PipelineStore::open(const std::string& db_path, std::function<std::int64_t()> clock) {
  return PipelineStore(std::make_unique<Impl>(db_path, std::move(clock)));
}

PipelineCursor PipelineStore::start(const std::string& pipeline, const std::string& trigger_key,
                                    std::int64_t start_seq, std::int64_t start_sample,
                                    const std::optional<TriggerRecord>& initial) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  std::optional<PipelineCursor> c = impl_->read_cursor(pipeline);
  if (c && c->trigger_key == trigger_key) return *c;
  PipelineCursor fresh{trigger_key, start_seq, start_seq, start_sample, c ? c->triggers : 0};
  if (initial) {
    if (initial->pipeline != pipeline || initial->index != fresh.triggers) {
      throw PipelineStoreError("pipeline '" + pipeline + "': the initial firing's index " +
                               std::to_string(initial->index) + " is not " +
                               std::to_string(fresh.triggers));
    }
    impl_->insert_trigger(*initial);
    ++fresh.triggers;
  }
  impl_->db
      .prepare(
          "INSERT INTO pipeline_cursor VALUES (?,?,?,?,?,?) ON CONFLICT(pipeline) DO UPDATE SET "
          "trigger_key=excluded.trigger_key, origin_seq=excluded.origin_seq, "
          "next_seq=excluded.next_seq, end_sample=excluded.end_sample, "
          "triggers=excluded.triggers")
      .bind_all(pipeline, trigger_key, start_seq, start_seq, start_sample, fresh.triggers)
      .run();
  tx.commit();
  return fresh;
}

std::optional<PipelineCursor> PipelineStore::cursor(const std::string& pipeline) const {
  std::lock_guard lock(impl_->mu);
  return impl_->read_cursor(pipeline);
}

std::optional<FeatureModel> PipelineStore::feature_model(const std::string& pipeline) const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare(
      "SELECT trigger_key, model, origin_seq FROM pipeline_features WHERE pipeline=?");
  st.bind_all(pipeline);
  if (!st.step()) return std::nullopt;
  return FeatureModel{st.column_text(0), st.column_text(1), st.column_int(2)};
}

void PipelineStore::set_feature_model(const std::string& pipeline, const FeatureModel& model) {
  std::lock_guard lock(impl_->mu);
  impl_->db
      .prepare(
          "INSERT INTO pipeline_features VALUES (?,?,?,?) ON CONFLICT(pipeline) DO UPDATE SET "
          "trigger_key=excluded.trigger_key, model=excluded.model, origin_seq=excluded.origin_seq")
      .bind_all(pipeline, model.trigger_key, model.model, model.origin_seq)
      .run();
}

void PipelineStore::advance(const std::string& pipeline, std::int64_t seq, std::int64_t rows,
                            const std::vector<TriggerRecord>& firings) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  const std::optional<PipelineCursor> c = impl_->read_cursor(pipeline);
  if (!c) throw PipelineStoreError("pipeline '" + pipeline + "': its trigger has not started");
  if (c->next_seq != seq) {
    throw PipelineStoreError("pipeline '" + pipeline + "': the trigger is at segment " +
                             std::to_string(c->next_seq) + ", not " + std::to_string(seq));
  }
  std::int64_t next = c->triggers;
  for (const TriggerRecord& f : firings) {
    if (f.pipeline != pipeline || f.index != next) {
      throw PipelineStoreError("pipeline '" + pipeline + "': firing " + std::to_string(f.index) +
                               " does not follow firing " + std::to_string(next - 1));
    }
    impl_->insert_trigger(f);
    ++next;
  }
  impl_->db
      .prepare("UPDATE pipeline_cursor SET next_seq=?, end_sample=?, triggers=? WHERE pipeline=?")
      .bind_all(seq + 1, c->end_sample + rows, next, pipeline)
      .run();
  tx.commit();
}

std::vector<TriggerRecord> PipelineStore::triggers(const std::string& pipeline) const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare("SELECT " + std::string(kTriggerColumns) +
                                   " FROM pipeline_triggers WHERE pipeline=? ORDER BY idx");
  st.bind_all(pipeline);
  return trigger_rows(st);
}

std::optional<TriggerRecord> PipelineStore::trigger_of_job(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare("SELECT " + std::string(kTriggerColumns) +
                                   " FROM pipeline_triggers WHERE job_id=?");
  st.bind_all(job_id);
  if (!st.step()) return std::nullopt;
  return trigger_row(st);
}

std::vector<TriggerRecord> PipelineStore::training() const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare("SELECT " + std::string(kTriggerColumns) +
                                   " FROM pipeline_triggers WHERE outcome='training' ORDER BY "
                                   "pipeline, idx");
  return trigger_rows(st);
}

TriggerRecord PipelineStore::decide(const TrainingOutcome& outcome, const std::string& alias) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  std::optional<TriggerRecord> r;
  {
    Statement st = impl_->db.prepare("SELECT " + std::string(kTriggerColumns) +
                                     " FROM pipeline_triggers WHERE job_id=?");
    st.bind_all(outcome.job_id);
    if (st.step()) r = trigger_row(st);
  }
  if (!r) throw PipelineStoreError("job " + outcome.job_id + " is no pipeline's training");
  if (r->outcome != TriggerOutcome::kTraining) return *r;
  r->model = outcome.model;
  r->metrics_json = outcome.metrics_json.empty() ? "{}" : outcome.metrics_json;
  r->gate = outcome.gate;
  r->baseline = outcome.baseline;
  r->outcome = outcome.model.empty() ? TriggerOutcome::kFailed
               : outcome.deploy      ? TriggerOutcome::kDeployed
                                     : TriggerOutcome::kRefused;
  r->decided_ms = impl_->clock();
  impl_->db
      .prepare(
          "UPDATE pipeline_triggers SET outcome=?, model=?, metrics=?, gate=?, baseline=?, "
          "decided_ms=? WHERE pipeline=? AND idx=?")
      .bind_all(to_string(r->outcome), r->model, r->metrics_json, r->gate, r->baseline,
                r->decided_ms, r->pipeline, r->index)
      .run();
  if (r->outcome == TriggerOutcome::kDeployed)
    impl_->move_alias(alias, r->pipeline, r->model, r->index, "gate", r->gate);
  tx.commit();
  return *r;
}

std::optional<AliasState> PipelineStore::alias(const std::string& alias) const {
  std::lock_guard lock(impl_->mu);
  return impl_->read_alias(alias);
}

std::vector<AliasEvent> PipelineStore::alias_log(const std::string& alias) const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare(
      "SELECT alias, revision, pipeline, digest, previous, trigger_idx, actor, reason, at_ms "
      "FROM pipeline_alias_log WHERE alias=? ORDER BY revision");
  st.bind_all(alias);
  std::vector<AliasEvent> out;
  while (st.step()) {
    out.push_back({st.column_text(0), st.column_int(1), st.column_text(2), st.column_text(3),
                   st.column_text(4), st.column_int(5), st.column_text(6), st.column_text(7),
                   st.column_int(8)});
  }
  return out;
}

AliasState PipelineStore::deploy(const std::string& alias, const std::string& pipeline,
                                 const std::string& digest, const std::string& actor,
                                 const std::string& reason) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  std::int64_t trigger = -1;
  {
    Statement st = impl_->db.prepare(
        "SELECT idx FROM pipeline_triggers WHERE pipeline=? AND model=? ORDER BY idx DESC");
    st.bind_all(pipeline, digest);
    if (!st.step()) {
      throw PipelineStoreError("pipeline '" + pipeline + "': no training of it made model " +
                               digest);
    }
    trigger = st.column_int(0);
  }
  AliasState after = impl_->move_alias(alias, pipeline, digest, trigger, actor, reason);
  tx.commit();
  return after;
}

AliasState PipelineStore::rollback(const std::string& alias, const std::string& actor,
                                   const std::string& reason) {
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  const std::optional<AliasState> now = impl_->read_alias(alias);
  if (!now) throw PipelineStoreError("alias '" + alias + "' has never been deployed");
  std::string previous;
  {
    Statement st =
        impl_->db.prepare("SELECT previous FROM pipeline_alias_log WHERE alias=? AND revision=?");
    st.bind_all(alias, now->revision);
    if (st.step()) previous = st.column_text(0);
  }
  if (previous.empty()) {
    throw PipelineStoreError("alias '" + alias +
                             "' held no model before its current one: nothing to roll back to");
  }
  std::int64_t trigger = -1;
  {
    Statement st = impl_->db.prepare(
        "SELECT idx FROM pipeline_triggers WHERE pipeline=? AND model=? ORDER BY idx DESC");
    st.bind_all(now->pipeline, previous);
    if (st.step()) trigger = st.column_int(0);
  }
  AliasState after = impl_->move_alias(alias, now->pipeline, previous, trigger, actor, reason);
  tx.commit();
  return after;
}

}  // namespace tv::fleet::pipelines
