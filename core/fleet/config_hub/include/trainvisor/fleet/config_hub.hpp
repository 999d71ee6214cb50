// The coordinator's config hub: the single source of truth for every job's hyperparameters.
//
// Each job has a config tree (full key paths -> values), seeded from its manifest `hyper` table.
// Every write (human, policy, API) is validated against the trainer's knob schema, gets the
// job's next revision (a batch of keys is one revision) and lands in an append-only audit log
// with actor, reason, old and new value and time. A prefix can be frozen: writes from a policy
// under it are refused (and the refusal is audited), writes from a human are accepted. A refusal
// identical to the job's latest audit rows (same actor, paths, values and refusal, nothing
// accepted since) is not a new row: those rows' `count` goes up (a policy retrying under a freeze
// is one row with its count).
//
// Precedence: human > freeze > policy. The hub enforces the freeze; the hold a human's write puts
// on its key for a while (policies leave it alone) is enforced by the host's supervisor, which
// knows the trainer's steps (trainvisor/core/supervisor.hpp).
//
// Actors: "human:NAME", "policy:NAME", "api".
// Storage: SQLite (WAL, synchronous=FULL) through the store layer (store/connection.hpp), in the
// coordinator's one database (coordinator_store.hpp); every mutation is one transaction. A
// database failure after open() throws store::StoreError; open() reports one as ConfigHubError.
// Thread-safety: one internal mutex; safe to share between connection threads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

class ConfigHubError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ConfigWrite {
  std::string path;
  plugin::ParamValue value;
};

struct ConfigTree {
  std::uint64_t revision = 0;
  plugin::ConfigView values;
};

// Why a write was refused; the route that called chooses the HTTP status.
enum class ConfigRefusal {
  kNone,        // applied
  kUnknownJob,  // the job has no config tree
  kInvalid,     // a key or value the knob schema refuses (nothing recorded)
  kFrozen,      // a policy's write under a frozen prefix (recorded in the audit log)
  kSuperseded,  // a policy's write decided before a human's later write to one of its keys
                // (recorded in the audit log)
};

struct ConfigWriteResult {
  bool applied = false;
  std::uint64_t revision = 0;  // the new revision (applied) or the current one (refused)
  ConfigRefusal refused = ConfigRefusal::kNone;
  std::string refusal;  // why, when refused
};

// One entry of the audit log: the protocol's record, so the log has one definition.
using AuditEntry = api::AuditRecord;

// The accepted writes of one revision, in order: what a host applies to its block as one batch.
struct ConfigDelta {
  std::uint64_t revision = 0;
  std::string actor;
  std::vector<ConfigWrite> writes;
};

// One step of a job's config stream: a delta, or a prefix frozen or unfrozen, in the order the
// hub accepted them (a host agent re-checks policy deltas against the frozen prefixes it knows).
struct ConfigEvent {
  ConfigDelta delta;   // when prefix is empty
  std::string prefix;  // a freeze or unfreeze
  bool frozen = false;
};

// What a subscriber gets: either a snapshot (its revision was unknown or too old) or the frozen
// prefixes as of its revision followed by the events since. `cursor` continues the stream.
struct ConfigStream {
  bool snapshot = false;
  ConfigTree tree;                  // snapshot only
  std::vector<std::string> frozen;  // the prefixes frozen before `events`
  std::vector<ConfigEvent> events;
  std::uint64_t cursor = 0;
};

class ConfigHub {
 public:
  // Opens (creating) the hub's database. Throws ConfigHubError naming the path.
  static ConfigHub open(const std::string& path, std::function<std::int64_t()> clock_ms = {});
  ConfigHub(ConfigHub&&) noexcept;
  ~ConfigHub();

  // Creates a job's tree at revision 1 from its initial values (the manifest's `hyper`),
  // validated like any write. A job that already has a tree is left alone. Throws
  // ConfigHubError for an invalid value.
  void seed(const std::string& job_id, const plugin::ConfigView& initial);

  // Throws ConfigHubError for an unknown job.
  ConfigTree get(const std::string& job_id) const;

  // Applies `writes` as one revision, or refuses all of them (nothing changes but the audit
  // log, which records a refusal of a policy write, frozen or superseded, or counts it again).
  // `decided_from` is the revision a policy's decision was made from (0: not said): a human
  // write to one of its keys in a later revision refuses it, so a decision that crossed the
  // human's write on its way never undoes it.
  ConfigWriteResult write(const std::string& job_id, const std::vector<ConfigWrite>& writes,
                          const std::string& actor, const std::string& reason,
                          std::uint64_t decided_from = 0);

  // Freezing needs a human actor. Throws ConfigHubError for an unknown job or a bad prefix.
  void freeze(const std::string& job_id, const std::string& prefix, const std::string& actor);
  void unfreeze(const std::string& job_id, const std::string& prefix, const std::string& actor);
  std::vector<std::string> frozen(const std::string& job_id) const;

  // The log after `after_seq`, oldest first, at most `limit` entries.
  std::vector<AuditEntry> audit(const std::string& job_id, std::uint64_t after_seq,
                                std::size_t limit) const;

  // The latest accepted write of `path` (who set the key's current value, and why), or nullopt.
  std::optional<AuditEntry> last_write(const std::string& job_id, const std::string& path) const;

  // The accepted revisions after `revision`, in order.
  std::vector<ConfigDelta> deltas_since(const std::string& job_id, std::uint64_t revision) const;

  // Subscribing from `revision`: a snapshot when `revision` is 0, ahead of the hub (its data
  // was reset) or more than `max_backlog` revisions behind; the events since it otherwise.
  // Throws ConfigHubError for an unknown job.
  ConfigStream subscribe(const std::string& job_id, std::uint64_t revision,
                         std::uint64_t max_backlog = 1000) const;
  // The events after a stream's cursor (from subscribe or a previous call); moves the cursor.
  std::vector<ConfigEvent> events_after(const std::string& job_id, std::uint64_t& cursor) const;

  // A host agent refused revision `revision` (it could not apply it): recorded in the audit
  // log against each of the revision's writes, as refused, with the reason.
  void record_agent_refusal(const std::string& job_id, std::uint64_t revision,
                            const std::string& reason);

  // Increments on every accepted change of any job. Waits until it differs from `seen` or
  // until `timeout`; returns its value.
  std::uint64_t wait_for_change(std::uint64_t seen, std::chrono::milliseconds timeout) const;

 private:
  struct Impl;
  explicit ConfigHub(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// "human:ana" -> true; validates the actor grammar (throws ConfigHubError otherwise).
bool is_human(const std::string& actor);

}  // namespace tv::fleet
