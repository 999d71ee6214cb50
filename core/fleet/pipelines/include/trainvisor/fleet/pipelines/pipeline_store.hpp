// What the coordinator remembers of each pipeline, in its database (coordinator.sqlite, its own
// connection, synchronous=FULL): how far its trigger has read the stream (the cursor), every
// firing with the training it started and that training's outcome, and the deployment aliases
// with their audit log.
//
// Crash safety: the firings a trigger made on one segment and the cursor's move past that
// segment are one transaction, so after a crash a segment's firings are either all recorded (and
// the segment is not read again) or none are (and it is read again): a firing is neither lost nor
// doubled. A firing's job id is derived from what it trains, so enqueuing it again after a crash
// is a no-op. A training's outcome and the alias move it earns are one transaction too, and an
// outcome is recorded once: a second report of the same job changes nothing.
//
// Thread-safety: one mutex around the connection; any thread may call. Errors: database failures
// throw store::StoreError; a refused call (a cursor not where the caller says, an unknown alias
// or digest) throws PipelineStoreError naming the pipeline and the reason, and writes nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace tv::fleet::pipelines {

class PipelineStoreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct PipelineCursor {
  std::string trigger_key;      // the trigger configuration whose state the cursor belongs to
  std::int64_t origin_seq = 0;  // the segment that trigger began reading at
  std::int64_t next_seq = 0;    // the first segment the trigger has not seen
  std::int64_t end_sample = 0;  // samples the trigger has seen
  std::int64_t triggers = 0;    // firings recorded so far (the next firing's index)
};

// Which model's embeddings a trigger reading embeddings sees (PipelineSpec::trigger_features),
// and the segment its state begins at: the one after the model last changed.
struct FeatureModel {
  std::string trigger_key;      // the trigger configuration it belongs to (PipelineCursor's)
  std::string model;            // a bundle's digest; empty: the initial model drawn from its seed
  std::int64_t origin_seq = 0;  // the first segment that trigger saw with this model
};

// What became of a firing's training.
enum class TriggerOutcome {
  kTraining,  // its job is queued or running
  kDeployed,  // trained, evaluated, and the gate moved the alias to it
  kRefused,   // trained and evaluated, and the gate kept the deployed model
  kFailed,    // its job failed or was cancelled
};
const char* to_string(TriggerOutcome outcome);

struct TriggerRecord {
  std::string pipeline;
  std::int64_t index = 0;         // 0, 1, 2 ... per pipeline
  std::int64_t window_begin = 0;  // the training data: stream samples [window_begin, end_sample)
  std::int64_t end_sample = 0;
  std::int64_t time_ns = 0;  // the firing sample's stream time
  std::string reason;        // the trigger's words
  std::string stats_json;    // the trigger's statistics, {"p_value": 0.003, ...}
  std::string job_id;
  std::string initial_weights;  // the bundle it starts from; "" random
  std::string baseline;         // the deployed model it was compared with, once decided; "" none
  TriggerOutcome outcome = TriggerOutcome::kTraining;
  std::string model;         // its bundle, once trained
  std::string metrics_json;  // {"new": {...}, "deployed": {...}} once evaluated
  std::string gate;          // the gate's words
  std::int64_t fired_ms = 0;
  std::int64_t decided_ms = 0;  // 0 while training
};

struct AliasState {
  std::string alias, pipeline, digest;
  std::int64_t trigger = -1;  // the firing whose model it is; -1 for an operator's other choice
  std::int64_t revision = 0;  // moves so far
  std::int64_t updated_ms = 0;
};

struct AliasEvent {
  std::string alias;
  std::int64_t revision = 0;
  std::string pipeline, digest, previous;
  std::int64_t trigger = -1;
  std::string actor, reason;  // "gate" or "human:NAME"
  std::int64_t at_ms = 0;
};

// A training's outcome as the coordinator reports it.
struct TrainingOutcome {
  std::string job_id;
  std::string model;         // the bundle's digest; "" when the job failed
  std::string metrics_json;  // "{}" when none
  std::string baseline;      // the deployed model it was compared with; "" none
  bool deploy = false;       // the gate passed
  std::string gate;          // why (or the failure)
};

class PipelineStore {
 public:
  // Opens DB_PATH (creating the tables); `clock`: Unix ms, the system clock when empty.
  static PipelineStore open(const std::string& db_path, std::function<std::int64_t()> clock = {});
  PipelineStore(PipelineStore&&) noexcept;
  PipelineStore& operator=(PipelineStore&&) noexcept;
  ~PipelineStore();

  // The cursor of `pipeline` for a trigger configured as `trigger_key`. A pipeline never seen
  // starts at (start_seq, start_sample); one seen with another trigger_key (the manifest changed
  // its trigger) starts there too, its firings and their numbering kept. `initial` (the initial
  // pass's training, index = the cursor's firing count) is recorded with a new start, in the
  // same transaction; it is ignored when the cursor is kept.
  PipelineCursor start(const std::string& pipeline, const std::string& trigger_key,
                       std::int64_t start_seq, std::int64_t start_sample,
                       const std::optional<TriggerRecord>& initial = std::nullopt);
  std::optional<PipelineCursor> cursor(const std::string& pipeline) const;

  // Records `firings` (indexes from the cursor's `triggers` on) made while the trigger read
  // segment `seq` of `rows` samples, and moves the cursor past it. PipelineStoreError when the
  // cursor is not at `seq` or the indexes do not follow on.
  void advance(const std::string& pipeline, std::int64_t seq, std::int64_t rows,
               const std::vector<TriggerRecord>& firings);

  std::optional<FeatureModel> feature_model(const std::string& pipeline) const;
  void set_feature_model(const std::string& pipeline, const FeatureModel& model);

  std::vector<TriggerRecord> triggers(const std::string& pipeline) const;
  std::optional<TriggerRecord> trigger_of_job(const std::string& job_id) const;
  // Firings still training (their jobs are re-enqueued at start: a no-op when they exist).
  std::vector<TriggerRecord> training() const;

  // Records a training's outcome and, when it deploys, moves `alias` to its model as actor
  // "gate", in one transaction. A job already decided is left as it is. Returns the record.
  TriggerRecord decide(const TrainingOutcome& outcome, const std::string& alias);

  std::optional<AliasState> alias(const std::string& alias) const;
  std::vector<AliasEvent> alias_log(const std::string& alias) const;
  // An operator's move: `digest` must be a model one of `pipeline`'s trainings made.
  AliasState deploy(const std::string& alias, const std::string& pipeline,
                    const std::string& digest, const std::string& actor, const std::string& reason);
  // Moves the alias back to the model it held before its last move.
  AliasState rollback(const std::string& alias, const std::string& actor,
                      const std::string& reason);

 private:
  struct Impl;
  explicit PipelineStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet::pipelines
