#include "trainvisor/fleet/config_hub.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>

#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet {
namespace {

using nlohmann::json;
using plugin::ParamValue;
using store::Statement;
using store::Transaction;

std::int64_t i64(std::uint64_t v) {
  return static_cast<std::int64_t>(v);
}

std::uint64_t u64(std::int64_t v) {
  return static_cast<std::uint64_t>(v);
}

std::string encode(const ParamValue& v) {
  return param_value_json(v).dump();
}

ParamValue decode(const std::string& text) {
  return param_value_from_json(json::parse(text), "stored value");
}

// The actor grammar is the protocol's (api/actor.hpp); throws ConfigHubError for anything else.
api::Actor parsed_actor(const std::string& actor) {
  const auto a = api::Actor::parse(actor);
  if (!a) throw ConfigHubError("actor '" + actor + "' must be human:NAME, policy:NAME or api");
  return *a;
}

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS config_jobs (job_id TEXT PRIMARY KEY, revision INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS config_values (job_id TEXT NOT NULL, path TEXT NOT NULL,"
    "  value TEXT NOT NULL, PRIMARY KEY (job_id, path));"
    "CREATE TABLE IF NOT EXISTS config_frozen (job_id TEXT NOT NULL, prefix TEXT NOT NULL,"
    "  PRIMARY KEY (job_id, prefix));"
    "CREATE TABLE IF NOT EXISTS config_audit (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL,"
    "  revision INTEGER NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, path TEXT NOT NULL,"
    "  old_value TEXT, new_value TEXT NOT NULL, time_ms INTEGER NOT NULL,"
    "  accepted INTEGER NOT NULL, refusal TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'write',"
    "  count INTEGER NOT NULL DEFAULT 1);"
    "CREATE INDEX IF NOT EXISTS config_audit_job ON config_audit (job_id, seq);";

// A database made before refusals were coalesced lacks the count column: every row counts once.
void add_count_column(store::Connection& db) {
  Statement st = db.prepare("SELECT 1 FROM pragma_table_info('config_audit') WHERE name='count'");
  if (st.step()) return;
  db.exec("ALTER TABLE config_audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1");
}

}  // namespace

bool is_human(const std::string& actor) {
  return parsed_actor(actor).is_human();
}

struct ConfigHub::Impl {
  mutable std::mutex mu;
  mutable std::condition_variable changed;
  std::uint64_t changes = 0;  // guarded by mu

  void note_change() {
    ++changes;
    changed.notify_all();
  }
  // FULL: a write the hub acknowledged, and its audit entry, survive a power cut.
  mutable store::Connection db;  // guarded by mu
  std::function<std::int64_t()> clock;

  Impl(const std::string& path, std::function<std::int64_t()> c)
      : db(path, {"config hub", std::chrono::seconds(10), store::Durability::kFull}),
        clock(std::move(c)) {
    db.exec(kSchema);
    add_count_column(db);
    if (!clock) {
      clock = [] {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch())
            .count();
      };
    }
  }

  std::optional<std::uint64_t> revision(const std::string& job) const {
    Statement st = db.prepare("SELECT revision FROM config_jobs WHERE job_id=?");
    st.bind_all(job);
    if (!st.step()) return std::nullopt;
    return u64(st.column_int(0));
  }

  std::vector<std::string> frozen(const std::string& job) const {
    std::vector<std::string> out;
    Statement st = db.prepare("SELECT prefix FROM config_frozen WHERE job_id=? ORDER BY prefix");
    st.bind_all(job);
    while (st.step())
      out.push_back(st.column_text(0));
    return out;
  }

  std::optional<ParamValue> value(const std::string& job, const std::string& path) const {
    Statement st = db.prepare("SELECT value FROM config_values WHERE job_id=? AND path=?");
    st.bind_all(job, path);
    if (!st.step()) return std::nullopt;
    return decode(st.column_text(0));
  }

  void read_values(const std::string& job, plugin::ConfigView& values) const {
    Statement st = db.prepare("SELECT path, value FROM config_values WHERE job_id=?");
    st.bind_all(job);
    while (st.step())
      values[st.column_text(0)] = decode(st.column_text(1));
  }

  void audit(const std::string& job, std::uint64_t rev, const std::string& actor,
             const std::string& reason, const ConfigWrite& w, const std::optional<ParamValue>& old,
             bool accepted, const std::string& refusal, const std::string& kind = "write") {
    Statement st = db.prepare(
        "INSERT INTO config_audit (job_id, revision, actor, reason, path, old_value, new_value, "
        "time_ms, accepted, refusal, kind) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    st.bind_all(job, i64(rev), actor, reason, w.path, nullptr, encode(w.value), clock(), accepted,
                refusal, kind);
    if (old) st.bind_text(6, encode(*old));
    st.run();
  }

  // Records a refused batch of a policy. When the job's latest audit rows are the same refusal
  // (same actor, paths, values and refusal, nothing accepted since), they count one more time,
  // with this one's time and reason: a frozen folder's repeated refusals are one row each.
  void audit_refusal(const std::string& job, std::uint64_t rev, const std::string& actor,
                     const std::string& reason, const std::vector<ConfigWrite>& writes,
                     const std::string& refusal) {
    std::vector<std::int64_t> same;
    Statement st = db.prepare(
        "SELECT seq, actor, path, new_value, accepted, refusal, kind, revision FROM config_audit "
        "WHERE job_id=? ORDER BY seq DESC LIMIT ?");
    st.bind_all(job, i64(writes.size()));
    for (std::size_t i = writes.size(); st.step() && i-- > 0;) {
      const ConfigWrite& w = writes[i];  // rows come newest first, the batch's last write first
      const bool equal = st.column_text(1) == actor && st.column_text(2) == w.path &&
                         decode(st.column_text(3)) == w.value && st.column_int(4) == 0 &&
                         st.column_text(5) == refusal && st.column_text(6) == "write" &&
                         u64(st.column_int(7)) == rev;
      if (equal) same.push_back(st.column_int(0));
    }
    if (same.size() == writes.size()) {
      const std::int64_t now = clock();
      for (const std::int64_t seq : same) {
        db.prepare("UPDATE config_audit SET count=count+1, time_ms=?, reason=? WHERE seq=?")
            .bind_all(now, reason, seq)
            .run();
      }
      return;
    }
    for (const ConfigWrite& w : writes)
      audit(job, rev, actor, reason, w, value(job, w.path), false, refusal);
  }

  static constexpr const char* kAuditColumns =
      "seq, revision, actor, reason, path, old_value, new_value, time_ms, accepted, refusal, kind, "
      "count";

  // One row selected with kAuditColumns, in that order.
  static AuditEntry audit_row(Statement& st) {
    AuditEntry e;
    e.seq = u64(st.column_int(0));
    e.revision = u64(st.column_int(1));
    e.actor = st.column_text(2);
    e.reason = st.column_text(3);
    e.path = st.column_text(4);
    if (!st.is_null(5)) e.old_value = decode(st.column_text(5));
    e.new_value = decode(st.column_text(6));
    e.time_ms = st.column_int(7);
    e.accepted = st.column_int(8) != 0;
    e.refusal = st.column_text(9);
    e.kind = st.column_text(10);
    e.count = u64(st.column_int(11));
    return e;
  }

  std::optional<AuditEntry> last_write(const std::string& job, const std::string& path) const {
    Statement st = db.prepare(std::string("SELECT ") + kAuditColumns +
                              " FROM config_audit WHERE job_id=? AND path=? AND accepted=1 AND "
                              "kind='write' ORDER BY seq DESC LIMIT 1");
    st.bind_all(job, path);
    if (!st.step()) return std::nullopt;
    return audit_row(st);
  }

  // Why a policy's writes, decided from revision `decided_from`, would undo a human's later write
  // to one of their keys; nullopt when none would.
  std::optional<std::string> superseded(const std::string& job, const std::string& actor,
                                        const std::vector<ConfigWrite>& writes,
                                        std::uint64_t decided_from) const {
    if (decided_from == 0 || !parsed_actor(actor).is_policy()) return std::nullopt;
    for (const ConfigWrite& w : writes) {
      const auto last = last_write(job, w.path);
      if (last && last->revision > decided_from && parsed_actor(last->actor).is_human()) {
        return w.path + " was written by " + last->actor + " in revision " +
               std::to_string(last->revision) + ", after revision " + std::to_string(decided_from) +
               " that " + actor + " decided from: the human's value stands";
      }
    }
    return std::nullopt;
  }

  // The accepted writes and freezes after `cursor`, oldest first; moves the cursor.
  std::vector<ConfigEvent> events_after(const std::string& job, std::uint64_t& cursor) const {
    std::vector<ConfigEvent> out;
    Statement st = db.prepare(
        "SELECT seq, kind, revision, actor, path, new_value FROM config_audit WHERE job_id=? AND "
        "seq>? AND accepted=1 ORDER BY seq");
    st.bind_all(job, i64(cursor));
    while (st.step()) {
      cursor = u64(st.column_int(0));
      const std::string kind = st.column_text(1);
      const auto rev = u64(st.column_int(2));
      if (kind != "write") {
        out.push_back({{}, st.column_text(4), kind == "freeze"});
        continue;
      }
      if (out.empty() || !out.back().prefix.empty() || out.back().delta.revision != rev)
        out.push_back({{rev, st.column_text(3), {}}, "", false});
      out.back().delta.writes.push_back({st.column_text(4), decode(st.column_text(5))});
    }
    return out;
  }
};

ConfigHub::ConfigHub(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigHub::ConfigHub(ConfigHub&&) noexcept = default;
ConfigHub::~ConfigHub() = default;

ConfigHub ConfigHub::open(const std::string& path, std::function<std::int64_t()> clock_ms) {
  try {
    return ConfigHub(std::make_unique<Impl>(path, std::move(clock_ms)));
  } catch (const ConfigHubError&) {
    throw;
  } catch (const std::runtime_error& e) {
    throw ConfigHubError(e.what());
  }
}

void ConfigHub::seed(const std::string& job_id, const plugin::ConfigView& initial) {
  std::lock_guard lock(impl_->mu);
  if (impl_->revision(job_id)) return;
  for (const auto& [path, v] : initial) {
    if (const auto why = knobs::check(path, v)) {
      throw ConfigHubError("job " + job_id + ": " + *why);
    }
  }
  Transaction tx(impl_->db);
  impl_->db.prepare("INSERT INTO config_jobs (job_id, revision) VALUES (?, 1)")
      .bind_all(job_id)
      .run();
  for (const auto& [path, v] : initial) {
    impl_->db.prepare("INSERT INTO config_values (job_id, path, value) VALUES (?,?,?)")
        .bind_all(job_id, path, encode(v))
        .run();
    impl_->audit(job_id, 1, "api", "seeded from the manifest", {path, v}, std::nullopt, true, "");
  }
  tx.commit();
  impl_->note_change();
}

ConfigTree ConfigHub::get(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  const auto rev = impl_->revision(job_id);
  if (!rev) throw ConfigHubError("job " + job_id + ": no config tree");
  ConfigTree t;
  t.revision = *rev;
  impl_->read_values(job_id, t.values);
  return t;
}

ConfigWriteResult ConfigHub::write(const std::string& job_id,
                                   const std::vector<ConfigWrite>& writes, const std::string& actor,
                                   const std::string& reason, std::uint64_t decided_from) {
  std::lock_guard lock(impl_->mu);
  ConfigWriteResult out;
  const auto rev = impl_->revision(job_id);
  if (!rev) {
    out.refused = ConfigRefusal::kUnknownJob;
    out.refusal = "job " + job_id + ": no config tree";
    return out;
  }
  out.revision = *rev;
  try {
    parsed_actor(actor);
  } catch (const ConfigHubError& e) {
    out.refused = ConfigRefusal::kInvalid;
    out.refusal = e.what();
    return out;
  }
  if (writes.empty()) {
    out.refused = ConfigRefusal::kInvalid;
    out.refusal = "no writes";
    return out;
  }
  std::vector<ConfigWrite> normalised;
  for (const ConfigWrite& w : writes) {
    ParamValue v = w.value;
    if (const auto* spec = knobs::find(w.path); spec && spec->type == plugin::ParamType::kFloat64) {
      if (const auto* i = std::get_if<std::int64_t>(&v)) v = static_cast<double>(*i);
    }
    std::string why = w.path == knobs::kRevision
                          ? std::string(knobs::kRevision) + " is the hub's own"
                          : knobs::check(w.path, v).value_or("");
    if (!why.empty()) {
      out.refused = ConfigRefusal::kInvalid;
      out.refusal = why;
      return out;  // invalid: refused whole, nothing recorded
    }
    normalised.push_back({w.path, v});
  }
  // Human > freeze > policy: a freeze holds policies only (api::frozen_refusal), and a human's
  // write stands against a policy decision made before it. Both refusals are audited.
  const std::vector<std::string> frozen = impl_->frozen(job_id);
  std::optional<std::string> why;
  for (const ConfigWrite& w : normalised) {
    if (!why) why = api::frozen_refusal(actor, w.path, frozen);
  }
  out.refused = ConfigRefusal::kFrozen;
  if (!why) {
    why = impl_->superseded(job_id, actor, normalised, decided_from);
    out.refused = ConfigRefusal::kSuperseded;
  }
  if (why) {
    out.refusal = *why;
    Transaction tx(impl_->db);
    impl_->audit_refusal(job_id, *rev, actor, reason, normalised, out.refusal);
    tx.commit();
    return out;
  }
  out.refused = ConfigRefusal::kNone;
  const std::uint64_t next = *rev + 1;
  Transaction tx(impl_->db);
  for (const ConfigWrite& w : normalised) {
    const auto old = impl_->value(job_id, w.path);
    impl_->db
        .prepare(
            "INSERT INTO config_values (job_id, path, value) VALUES (?,?,?) "
            "ON CONFLICT (job_id, path) DO UPDATE SET value=excluded.value")
        .bind_all(job_id, w.path, encode(w.value))
        .run();
    impl_->audit(job_id, next, actor, reason, w, old, true, "");
  }
  impl_->db.prepare("UPDATE config_jobs SET revision=? WHERE job_id=?")
      .bind_all(i64(next), job_id)
      .run();
  tx.commit();
  out.applied = true;
  out.revision = next;
  impl_->note_change();
  return out;
}

namespace {

// A freeze holds the knobs under `prefix`: one that is not a whole-component prefix of a trainer
// knob ("training/optimzer") would hold nothing and look like protection. Throws ConfigHubError
// naming the prefix and the closest valid one.
void check_freeze_prefix(const std::string& prefix) {
  std::vector<std::string> valid;
  for (const plugin::ParamSpec& p : knobs::schema()) {
    for (std::size_t slash = p.key.find('/'); slash != std::string::npos;
         slash = p.key.find('/', slash + 1))
      valid.push_back(p.key.substr(0, slash));
    valid.push_back(p.key);
  }
  if (std::find(valid.begin(), valid.end(), prefix) != valid.end()) return;
  // Suggest among prefixes as deep as the given one: "training" would match any misspelt child.
  const auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::vector<std::string> same_depth;
  for (const std::string& v : valid) {
    if (depth(v) == depth(prefix) &&
        std::find(same_depth.begin(), same_depth.end(), v) == same_depth.end())
      same_depth.push_back(v);
  }
  const std::string close = did_you_mean(prefix, same_depth);
  throw ConfigHubError(
      "invalid prefix '" + prefix + "': no trainer knob is under it" +
      (close.empty() ? " (e.g. training/optimizer)" : " (did you mean '" + close + "'?)"));
}

}  // namespace

void ConfigHub::freeze(const std::string& job_id, const std::string& prefix,
                       const std::string& actor) {
  if (!is_human(actor))
    throw ConfigHubError(actor + " may not freeze: only humans freeze and unfreeze");
  check_freeze_prefix(prefix);
  std::lock_guard lock(impl_->mu);
  const auto rev = impl_->revision(job_id);
  if (!rev) throw ConfigHubError("job " + job_id + ": no config tree");
  const auto f = impl_->frozen(job_id);
  if (std::find(f.begin(), f.end(), prefix) != f.end()) return;
  Transaction tx(impl_->db);
  impl_->db.prepare("INSERT INTO config_frozen (job_id, prefix) VALUES (?,?)")
      .bind_all(job_id, prefix)
      .run();
  impl_->audit(job_id, *rev, actor, "freeze", {prefix, std::string("frozen")}, std::nullopt, true,
               "", "freeze");
  tx.commit();
  impl_->note_change();
}

void ConfigHub::unfreeze(const std::string& job_id, const std::string& prefix,
                         const std::string& actor) {
  if (!is_human(actor))
    throw ConfigHubError(actor + " may not unfreeze: only humans freeze and unfreeze");
  std::lock_guard lock(impl_->mu);
  const auto rev = impl_->revision(job_id);
  if (!rev) throw ConfigHubError("job " + job_id + ": no config tree");
  const auto f = impl_->frozen(job_id);
  if (std::find(f.begin(), f.end(), prefix) == f.end()) {
    check_freeze_prefix(prefix);  // a typo is an error, not "nothing to unfreeze"
    return;
  }
  Transaction tx(impl_->db);
  impl_->db.prepare("DELETE FROM config_frozen WHERE job_id=? AND prefix=?")
      .bind_all(job_id, prefix)
      .run();
  impl_->audit(job_id, *rev, actor, "unfreeze", {prefix, std::string("unfrozen")}, std::nullopt,
               true, "", "unfreeze");
  tx.commit();
  impl_->note_change();
}

std::vector<std::string> ConfigHub::frozen(const std::string& job_id) const {
  std::lock_guard lock(impl_->mu);
  return impl_->frozen(job_id);
}

std::vector<AuditEntry> ConfigHub::audit(const std::string& job_id, std::uint64_t after_seq,
                                         std::size_t limit) const {
  std::lock_guard lock(impl_->mu);
  std::vector<AuditEntry> out;
  Statement st =
      impl_->db.prepare(std::string("SELECT ") + Impl::kAuditColumns +
                        " FROM config_audit WHERE job_id=? AND seq>? ORDER BY seq LIMIT ?");
  st.bind_all(job_id, i64(after_seq), i64(limit));
  while (st.step())
    out.push_back(Impl::audit_row(st));
  return out;
}

std::optional<AuditEntry> ConfigHub::last_write(const std::string& job_id,
                                                const std::string& path) const {
  std::lock_guard lock(impl_->mu);
  return impl_->last_write(job_id, path);
}

std::vector<ConfigDelta> ConfigHub::deltas_since(const std::string& job_id,
                                                 std::uint64_t revision) const {
  std::lock_guard lock(impl_->mu);
  std::vector<ConfigDelta> out;
  Statement st = impl_->db.prepare(
      "SELECT revision, path, new_value, actor FROM config_audit WHERE job_id=? AND accepted=1 "
      "AND kind='write' AND revision>? ORDER BY seq");
  st.bind_all(job_id, i64(revision));
  while (st.step()) {
    const auto rev = u64(st.column_int(0));
    if (out.empty() || out.back().revision != rev) out.push_back({rev, st.column_text(3), {}});
    out.back().writes.push_back({st.column_text(1), decode(st.column_text(2))});
  }
  return out;
}

ConfigStream ConfigHub::subscribe(const std::string& job_id, std::uint64_t revision,
                                  std::uint64_t max_backlog) const {
  std::lock_guard lock(impl_->mu);
  const auto current = impl_->revision(job_id);
  if (!current) throw ConfigHubError("job " + job_id + ": no config tree");
  ConfigStream out;
  {
    Statement st =
        impl_->db.prepare("SELECT COALESCE(MAX(seq), 0) FROM config_audit WHERE job_id=?");
    st.bind_all(job_id);
    if (st.step()) out.cursor = u64(st.column_int(0));
  }
  if (revision == 0 || revision > *current || *current - revision > max_backlog) {
    out.snapshot = true;
    out.tree.revision = *current;
    impl_->read_values(job_id, out.tree.values);
    out.frozen = impl_->frozen(job_id);
    return out;
  }
  // The stream resumes just before the first accepted write of a later revision; the frozen
  // prefixes are replayed up to there, so a policy write accepted before a freeze is not taken
  // for one made after it.
  std::uint64_t start = out.cursor;
  {
    Statement st = impl_->db.prepare(
        "SELECT MIN(seq) FROM config_audit WHERE job_id=? AND kind='write' AND accepted=1 AND "
        "revision>?");
    st.bind_all(job_id, i64(revision));
    if (st.step() && !st.is_null(0)) start = u64(st.column_int(0)) - 1;
  }
  {
    Statement st = impl_->db.prepare(
        "SELECT kind, path FROM config_audit WHERE job_id=? AND seq<=? AND accepted=1 AND "
        "kind!='write' ORDER BY seq");
    st.bind_all(job_id, i64(start));
    while (st.step()) {
      const std::string kind = st.column_text(0);
      const std::string prefix = st.column_text(1);
      const auto it = std::find(out.frozen.begin(), out.frozen.end(), prefix);
      if (kind == "freeze" && it == out.frozen.end()) out.frozen.push_back(prefix);
      if (kind == "unfreeze" && it != out.frozen.end()) out.frozen.erase(it);
    }
  }
  out.cursor = start;
  out.events = impl_->events_after(job_id, out.cursor);
  return out;
}

std::vector<ConfigEvent> ConfigHub::events_after(const std::string& job_id,
                                                 std::uint64_t& cursor) const {
  std::lock_guard lock(impl_->mu);
  return impl_->events_after(job_id, cursor);
}

void ConfigHub::record_agent_refusal(const std::string& job_id, std::uint64_t revision,
                                     const std::string& reason) {
  const auto deltas = deltas_since(job_id, revision - 1);
  if (deltas.empty() || deltas.front().revision != revision)
    throw ConfigHubError("job " + job_id + ": no revision " + std::to_string(revision));
  std::lock_guard lock(impl_->mu);
  Transaction tx(impl_->db);
  for (const ConfigWrite& w : deltas.front().writes)
    impl_->audit(job_id, revision, deltas.front().actor,
                 "applying revision " + std::to_string(revision), w, std::nullopt, false, reason);
  tx.commit();
}

std::uint64_t ConfigHub::wait_for_change(std::uint64_t seen,
                                         std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->mu);
  impl_->changed.wait_for(lock, timeout, [&] { return impl_->changes != seen; });
  return impl_->changes;
}

}  // namespace tv::fleet
