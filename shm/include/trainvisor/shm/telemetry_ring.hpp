// The telemetry ring of a block: the trainer pushes one record per step (and one after each
// evaluation), the host's agent polls them.
//
// The writer never waits: when the reader lags by more than the ring's capacity, the oldest
// records are overwritten and the reader's next poll reports how many it missed. Exactly one
// TelemetryWriter and one TelemetryReader per block (the trainer and the agent); the reader
// keeps its cursor in the block, so a restarted agent resumes where the previous one stopped.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <span>

#include "trainvisor/shm/layout.hpp"

namespace tv::shm {

class Mapping;

// Bits of TelemetryRecord::flags. The public plugin header carries the same bits for
// plugin::TelemetryPoint (shm depends on nothing of ours); core/src/telemetry_point.cpp, which
// converts one record into the other, static_asserts that the two sets agree.
enum TelemetryFlag : std::uint32_t {
  kTelemetryEval = 1u << 0,           // val_loss / val_accuracy hold an evaluation
  kTelemetryNonFiniteLoss = 1u << 1,  // the step's update was skipped
  kTelemetryConfigRefused = 1u << 2,  // a config value was out of range; the last good one stays
  kTelemetryCheckpoint = 1u << 3,     // a checkpoint was written at this step
  kTelemetryEpochEnd = 1u << 4,
  kTelemetryFinished = 1u << 5,  // the trainer's last record
};
// Every bit above; a new bit goes into this mask too.
inline constexpr std::uint32_t kTelemetryAllFlags = kTelemetryEval | kTelemetryNonFiniteLoss |
                                                    kTelemetryConfigRefused | kTelemetryCheckpoint |
                                                    kTelemetryEpochEnd | kTelemetryFinished;

// A metric the record does not carry (no evaluation at this step, no rate measured) is NaN, as in
// every other shape of the record (plugin::TelemetryPoint, the JSON's null, the stored NULL).

struct TelemetryRecord {
  std::uint64_t step = 0;
  std::uint32_t epoch = 0;
  std::uint32_t flags = 0;
  std::int64_t wall_time_ns = 0;  // Unix time
  double loss = NAN;
  double grad_norm = NAN;
  double learning_rate = NAN;         // the rate applied at this step
  std::uint64_t config_revision = 0;  // the config revision applied at this step
  double val_loss = NAN;
  double val_accuracy = NAN;
  double samples_per_sec = NAN;
};

struct PollResult {
  std::size_t count = 0;     // records written to the output
  std::uint64_t missed = 0;  // records overwritten before this poll could read them
};

// Where the ring stands, for inspection.
struct RingState {
  std::uint32_t capacity = 0;
  std::uint64_t head = 0;            // records ever pushed
  std::uint64_t reader_next = 0;     // next record the reader will take
  std::uint64_t reader_dropped = 0;  // records the reader missed, in total
};

class TelemetryWriter {
 public:
  // Never blocks, never fails: a record is a handful of relaxed stores and two release stores.
  void push(const TelemetryRecord& record) noexcept;
  std::uint64_t pushed() const noexcept { return next_; }

 private:
  friend class ConfigBlockReader;
  explicit TelemetryWriter(std::shared_ptr<Mapping> mapping);

  std::shared_ptr<Mapping> mapping_;
  RingHeader* ring_ = nullptr;
  TelemetrySlot* slots_ = nullptr;
  std::uint64_t mask_ = 0;
  std::uint64_t next_ = 0;
};

class TelemetryReader {
 public:
  // Copies up to out.size() records in push order and advances the cursor past them.
  PollResult poll(std::span<TelemetryRecord> out) noexcept;
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  friend class ConfigBlockReader;
  explicit TelemetryReader(std::shared_ptr<Mapping> mapping);

  std::shared_ptr<Mapping> mapping_;
  RingHeader* ring_ = nullptr;
  const TelemetrySlot* slots_ = nullptr;
  std::uint64_t capacity_ = 0;
  std::uint64_t next_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace tv::shm
