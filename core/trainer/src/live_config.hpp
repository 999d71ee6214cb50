// The trainer's live config: the knobs it runs with, read from the job's block as one snapshot
// per step boundary and checked against the knob schema (a value out of range is refused and the
// last good one stays), or taken from a recorded config history (--replay-config) revision by
// revision at the step each applied from; the config history (each revision and the step it applied
// from) that checkpoints and bundles record, and the config agent's heartbeat. No libtorch here:
// putting the knobs into the optimizer and the model is the loop's (training_loop.cpp).
//
// Private to tv_trainer. Single-threaded, like the session that owns it. Input the trainer cannot
// use (bad knobs, no block, an unreadable saved config) throws BadInput.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/plugin.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {

// A knob's or a model parameter's value as JSON.
nlohmann::json value_json(const plugin::ParamValue& v);

// The knob values the trainer runs with. Index order is knobs::schema() order.
struct Knobs {
  std::vector<plugin::ParamValue> values;

  double f(std::string_view key) const { return std::get<double>(values[index(key)]); }
  std::int64_t i(std::string_view key) const { return std::get<std::int64_t>(values[index(key)]); }
  bool b(std::string_view key) const { return std::get<bool>(values[index(key)]); }
  const std::string& s(std::string_view key) const {
    return std::get<std::string>(values[index(key)]);
  }
  nlohmann::json to_json() const;
  static std::size_t index(std::string_view key);

  // The knobs given on the command line with the schema's defaults for the others.
  static Knobs resolve(const std::map<std::string, plugin::ParamValue>& given);
};

// The lease of --lease-attempt and --lease-digest; nullopt when neither is given. Throws
// BadInput for a digest that is not 64 hex digits.
std::optional<shm::BlockLease> lease_of(const TrainerOptions& options);

class LiveConfig {
 public:
  // Attaches to the block of `job_id`; an empty id keeps `base` fixed (no block, no telemetry).
  // With a `lease`, the block must carry it (block_lost()).
  LiveConfig(Knobs base, const std::string& job_id,
             std::optional<shm::BlockLease> lease = std::nullopt);
  // --replay-config: the knobs follow `history` (checked by read_recorded_run: every knob valid,
  // in step order), with no block and no telemetry. Starts on its first revision.
  explicit LiveConfig(const std::vector<RecordedRevision>& history);
  LiveConfig(const LiveConfig&) = delete;
  LiveConfig& operator=(const LiveConfig&) = delete;

  // A step boundary, with `step` steps done: takes the block's values when its generation moved,
  // or in a replay the next recorded revision once its step is reached (one per call, as the
  // original run took at most one per boundary). `changed` says whether an applied knob changed;
  // `refused`, when not empty, why a value was kept out.
  struct Refresh {
    bool changed = false;
    std::string refused;
  };
  Refresh refresh(std::int64_t step);
  // In a replay, the step of the first recorded revision not applied yet; nullopt otherwise.
  std::optional<std::int64_t> unreached_replay_step() const {
    if (next_scheduled_ >= schedule_.size()) return std::nullopt;
    return schedule_[next_scheduled_].step;
  }

  const Knobs& applied() const { return applied_; }
  // The block reads' attempt counts (shm::HandleStats); nullopt without a block.
  std::optional<shm::HandleStats> read_stats() const {
    if (!snapshot_) return std::nullopt;
    return snapshot_->stats();
  }
  // --resume-saved-config: the knobs a checkpoint was written with (in `checkpoint_state`, its
  // state.json) replace the live ones.
  void restore(const nlohmann::json& checkpoint_state);

  // The config history: appends the applied revision from `step` (or updates the last entry's
  // knobs when the revision is the same).
  void record_revision(std::int64_t step);
  const nlohmann::json& history() const { return history_; }
  void restore_history(nlohmann::json history) { history_ = std::move(history); }

  // The block's telemetry ring; nullopt without a block.
  std::optional<shm::TelemetryWriter> telemetry_writer() const;
  // True once the block's heartbeat, which its config agent writes, is older than `limit`: the
  // host daemon is gone. Reads the block about once a second (not a per-step cost); a writer
  // that never beats, or a limit of 0, is never silent.
  bool agent_silent(std::chrono::milliseconds limit);
  // Why the trainer must stop using its block, or nullopt: the block belongs to another lease
  // ("the block trainvisor.X belongs to attempt 3, not mine (2)": another host took the job
  // over), or it was truncated. The lease costs one acquire load while it is unchanged; the
  // block's size is checked about once a second, a fault at once.
  std::optional<std::string> block_lost();

 private:
  Knobs applied_;
  std::optional<shm::ConfigBlockReader> reader_;
  std::optional<shm::Snapshot> snapshot_;
  std::uint64_t seen_generation_ = ~std::uint64_t{0};
  std::chrono::steady_clock::time_point next_heartbeat_check_{};
  std::optional<shm::BlockLease> lease_;
  std::uint64_t own_lease_version_ = ~std::uint64_t{0};  // lease_version() when it was ours
  std::chrono::steady_clock::time_point next_size_check_{};
  nlohmann::json history_ = nlohmann::json::array();
  // --replay-config: the recorded revisions and the next one to apply.
  struct ScheduledKnobs {
    std::int64_t step = 0;
    Knobs knobs;
  };
  std::vector<ScheduledKnobs> schedule_;
  std::size_t next_scheduled_ = 0;
};

}  // namespace tv::trainer
