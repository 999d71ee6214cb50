// Runs each pipeline's trigger over its stream on one thread of its own, off the HTTP threads:
// ingest stores a segment and calls notify(); the runner reads the segments its cursor has not
// seen, in order, hands them to the trigger plugin, and for every firing plans a training
// (training_plan.hpp), records the firings with the cursor's move in one transaction
// (pipeline_store.hpp), and enqueues the jobs (RunnerHooks::enqueue, idempotent by job id).
//
// Restart: the trigger's state is not stored; it is rebuilt by reading again, without acting on
// the firings, the segments from where the trigger began up to the cursor (triggers are
// deterministic), so the next firing after a crash is the one that would have come. Trainings
// recorded but missing from the queue (a crash between the two commits) are enqueued again.
//
// A trigger that reads embeddings (PipelineSpec::trigger_features) sees each segment as the
// model in effect embeds it: the model deployed under the pipeline's alias, else its initial
// model. When that model changes, the trigger is made afresh at the next segment (embeddings of
// two models are not comparable) and the segment is recorded (PipelineStore::set_feature_model),
// so that a restart rebuilds the state from there, or starts afresh if the model changed while
// the coordinator was down.
//
// A pipeline that fails its preflight, whose trigger cannot be made, or whose trigger refuses a
// segment, stops with its error in status() (a manifest reload starts it again); the others go
// on. Thread-safety: every public call may come from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/pipeline_spec.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv {
class HostTriggerServices;
}

namespace tv::fleet::pipelines {

class SegmentStore;
class PipelineStore;
class Embedder;

// What the runner needs of the rest of the coordinator.
struct RunnerHooks {
  // Puts the jobs in the queue and seeds their config trees (idempotent by job id).
  std::function<void(const std::vector<JobSpec>&)> enqueue;
  // Whether the queue holds a job.
  std::function<bool(const std::string& job_id)> has_job;
  // Why the pipeline cannot run at all (a missing initial model or evaluation set, no known
  // host able to run its trainings), checked when its trigger starts; nothing when it can.
  std::function<std::optional<std::string>(const PipelineSpec&)> preflight;
  // One line per event worth an operator's eye.
  std::function<void(const std::string&)> log;
};

struct PipelineStatus {
  std::string name;
  std::string state;  // "running" or "stopped"
  std::string error;  // why it stopped
  std::int64_t next_seq = 0, end_sample = 0, triggers = 0;
  // A trigger reading embeddings: whose ("" for the initial model drawn from its seed), and the
  // segment that trigger began at.
  std::optional<std::string> features_model;
  std::int64_t features_since_seq = 0;
  // CPU seconds the runner's thread spent in the trigger (embedding included) since the
  // manifest load that named the pipeline: what its drift tests cost.
  double trigger_cpu_s = 0;
  double trigger_wall_s = 0;
};

class TriggerRunner {
 public:
  // The stores outlive the runner; the hooks may be called until it is destroyed.
  TriggerRunner(SegmentStore& segments, PipelineStore& store, RunnerHooks hooks);
  ~TriggerRunner();  // stops the thread after the step in progress
  TriggerRunner(const TriggerRunner&) = delete;
  TriggerRunner& operator=(const TriggerRunner&) = delete;

  // The pipelines to run (a manifest load). A pipeline whose trigger or stream changed starts
  // its trigger again; one no longer listed stops; every listed one is read again. Triggers are
  // made through `services` (the plugins loaded for this manifest), which the runner keeps
  // alive as long as a trigger made through it; `embedder` embeds the samples of the ones that
  // read embeddings (without one, such a pipeline stops with an error saying so).
  void set_pipelines(std::vector<PipelineSpec> pipelines,
                     std::shared_ptr<const HostTriggerServices> services,
                     std::shared_ptr<Embedder> embedder = nullptr);
  std::optional<PipelineSpec> pipeline(const std::string& name) const;
  std::vector<std::string> names() const;

  // `pipeline` has new segments. `batch`, when given, is the one just stored as segment
  // `digest`: the runner reads it from memory rather than reading its file back (kept until it
  // is read, or beyond kHeldBytes of such batches).
  void notify(const std::string& pipeline, std::shared_ptr<const SampleBatchData> batch = nullptr,
              const std::string& digest = "");
  static constexpr std::size_t kHeldBytes = std::size_t{64} << 20;
  // Returns once every running pipeline has read every segment stored before the call.
  void drain();

  std::vector<PipelineStatus> status() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet::pipelines
