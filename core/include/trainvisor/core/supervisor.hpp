// The supervisor: runs a job's policy plugins on its telemetry and hands their proposed writes to
// a config sink. It lives in the host, never in the trainer: the trainer only ever sees the
// values the sink writes into its block.
//
// It enforces "the human wins" (plugin.hpp: human > freeze > policy): after a human writes a key
// (the sink knows each key's last writer), a policy's write to that key is not sent for the
// policy's HumanGrace, and the policy is told so through Observation::holds and outcome().
//
// Threading: a Supervisor and its sink belong to one thread (the host's loop for that job).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/plugin.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv {

struct WriteOutcome {
  bool applied = false;
  std::uint64_t revision = 0;  // the revision the writes became (when applied)
  std::string reason;          // why they were refused (when not)
  // kApplied, kQueued (not applied yet, but accepted), kFrozen or kInvalid.
  plugin::WriteFate fate = plugin::WriteFate::kInvalid;
};

// The last accepted write of one key, as the sink saw it: who, at which revision, what value.
struct KeyWriter {
  std::string actor;  // "human:ana", "policy:plateau", "api", "snapshot" (a resync)
  std::uint64_t revision = 0;
  plugin::ParamValue value;
};
using KeyWriters = std::map<std::string, KeyWriter>;

// How long a human's write to a key holds every policy of a job off that key: through the
// first `evals` evaluations the trainer runs with the human's value, and at most `steps`
// training steps, counted from the first telemetry record of the human's revision (or newer).
// Set per policy with the framework keys human_grace_evals and human_grace_steps beside its
// name; the plugin never sees them.
struct HumanGrace {
  std::int64_t evals = 2;
  std::int64_t steps = 5000;
};
inline constexpr char kHumanGraceEvalsKey[] = "human_grace_evals";
inline constexpr char kHumanGraceStepsKey[] = "human_grace_steps";
// The two keys' specs (types, defaults, ranges), to validate them beside a plugin's own params.
std::vector<plugin::ParamSpec> human_grace_params();
// Removes the two keys from `params` (validated against human_grace_params()) and returns the
// grace they give (the defaults for a missing key).
HumanGrace take_human_grace(plugin::Params& params);

// Where config writes go: the local block now, the coordinator's config hub later.
class ConfigSink {
 public:
  virtual ~ConfigSink() = default;
  // Applies `writes` from `actor` ("policy:plateau", "human:ana") as one revision, or refuses all
  // of them with a reason; a refusal changes nothing.
  virtual WriteOutcome apply(const std::vector<plugin::ProposedWrite>& writes,
                             const std::string& actor) = 0;
  virtual const plugin::ConfigView& config() const = 0;
  virtual std::uint64_t revision() const = 0;
  // The last writer of each key written since the sink started (a key the job was seeded with
  // and no one wrote since has none).
  virtual const KeyWriters& writers() const = 0;
};

// The config agent of one job on one host: the single writer of the job's block. Every accepted
// batch is one block generation that also carries the new trainvisor/revision. Writes are checked
// against the trainer's knob schema (unknown key, type, range) before anything is written.
class BlockConfigSink final : public ConfigSink {
 public:
  // Creates (or takes over) the block of `job_id` with `initial` (completed with the knob
  // defaults) as revision 1. Throws std::invalid_argument for an invalid initial config and
  // shm::ShmError for block failures.
  BlockConfigSink(const std::string& job_id, const plugin::ConfigView& initial,
                  const shm::WriterOptions& options = {});
  // After a restart of the writer: takes over the job's block as it is (its values and revision;
  // a write its dead writer left half done is repaired) when one of options.lease exists, else
  // creates it from `initial` as revision 1 (a block of another lease is replaced: see
  // shm::WriterOptions::lease). Throws like the constructor.
  static std::unique_ptr<BlockConfigSink> adopt_or_create(const std::string& job_id,
                                                          const plugin::ConfigView& initial,
                                                          const shm::WriterOptions& options = {});

  WriteOutcome apply(const std::vector<plugin::ProposedWrite>& writes,
                     const std::string& actor) override;
  // Applies `writes` (possibly none) from `actor` (the hub's delta's) and sets the block's
  // revision to `revision`, the hub's, as one generation; refuses all of them with a reason like
  // apply(). A "snapshot" (a resync) leaves a key's writer as it was when its value is unchanged.
  WriteOutcome apply_at(const std::vector<plugin::ProposedWrite>& writes, const std::string& actor,
                        std::uint64_t revision);
  bool adopted() const { return adopted_; }
  const plugin::ConfigView& config() const override { return config_; }
  std::uint64_t revision() const override { return revision_; }
  const KeyWriters& writers() const override { return writers_; }

  const std::string& block_name() const { return writer_.name(); }
  void heartbeat() { writer_.heartbeat(); }
  // Why the block is broken (truncated, see shm::ConfigBlockReader::damage), or nullopt. Safe
  // from any thread.
  std::optional<std::string> damage() const { return writer_.damage(); }
  const shm::RepairReport& repair_report() const { return writer_.repair_report(); }
  // Removes the block's name while it names this sink's block (readers that have it mapped keep
  // it; a block another holder of the job put under the name stays).
  void remove_block();

 private:
  BlockConfigSink(const std::string& job_id, plugin::ConfigView config, std::uint64_t revision,
                  const shm::WriterOptions& options);

  plugin::ConfigView config_;
  KeyWriters writers_;
  std::uint64_t revision_ = 1;
  shm::ConfigBlockWriter writer_;
  bool adopted_ = false;
};

struct SupervisorEvent {
  std::string actor;  // "policy:NAME"
  std::uint64_t step = 0;
  std::vector<plugin::ProposedWrite> writes;
  bool stop = false;
  std::string stop_reason;
  // Of the writes, when there were any: applied when any was; the reason names every refusal
  // (a write held for a human's: "held by human:ana's write of revision 7 (0.08) ...").
  WriteOutcome outcome;
  std::vector<plugin::WriteResult> results;  // one per write, as the policy was told
  std::string note;                          // the decision's note (plugin::Decision::note)
};

class Supervisor {
 public:
  // `reader` must be attached read-write: the supervisor consumes the telemetry ring.
  Supervisor(shm::ConfigBlockReader reader, ConfigSink& sink);

  void add_policy(std::string name, std::unique_ptr<plugin::Policy> policy, HumanGrace grace = {});

  // Takes the telemetry that arrived, runs every policy on it, and hands their writes to the
  // sink. Returns what the policies did (nothing when no telemetry arrived).
  std::vector<SupervisorEvent> poll();

  // The recent telemetry: the newest points, at least kHistoryKeep of them once there are more
  // (older ones are dropped so that a long job's memory stays bounded). Point i of history() is
  // the (dropped() + i)th point received.
  const std::vector<plugin::TelemetryPoint>& history() const { return history_; }
  std::uint64_t dropped() const { return dropped_; }
  std::uint64_t missed() const { return missed_; }
  static constexpr std::size_t kHistoryKeep = 20000;

 private:
  struct Entry {
    std::string name;
    std::unique_ptr<plugin::Policy> policy;
    HumanGrace grace;
    bool stopped = false;
  };
  // How far the trainer has run with a human's write: counted on the records as they arrive,
  // so that neither the history's trimming nor its length bounds a grace.
  struct HumanWriteProgress {
    std::uint64_t revision = 0;
    std::optional<std::uint64_t> since_step;  // the first record with the revision or newer
    std::int64_t evals = 0;                   // evaluation records since then
  };
  // Counts the records from `first_new` on against every human write the sink knows.
  void track_human_writes(std::size_t first_new);
  // The keys humans hold now under `grace`.
  std::vector<plugin::HumanHold> holds(const HumanGrace& grace) const;
  // Sends the writes of `ev` no hold refuses, fills ev.results and ev.outcome.
  void settle(SupervisorEvent& ev, bool dry_run, const std::vector<plugin::HumanHold>& holds);
  // Runs one policy on the new telemetry; false when it had nothing to report.
  bool run(Entry& e, std::size_t first_new, SupervisorEvent& ev);
  shm::ConfigBlockReader reader_;
  shm::TelemetryReader telemetry_;
  ConfigSink& sink_;
  std::vector<Entry> policies_;
  std::map<std::string, HumanWriteProgress> human_writes_;  // by key path
  std::vector<plugin::TelemetryPoint> history_;
  std::vector<shm::TelemetryRecord> buffer_;
  std::uint64_t missed_ = 0;
  std::uint64_t dropped_ = 0;
};

// Config values between the plugin API's form and the block's.
shm::Value to_block_value(const plugin::ParamValue& v);
plugin::ParamValue from_block_value(const shm::Value& v);

}  // namespace tv
