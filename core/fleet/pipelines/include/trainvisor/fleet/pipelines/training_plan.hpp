// A firing's training, planned: which stream samples it trains and evaluates on (the strategy's
// window), which segments hold them, the weights it starts from, and the fleet job that runs it.
// The deployed model it is judged against is the one deployed when it starts (the host fetches
// it then), not when it was planned: trainings queued behind each other are each compared with
// their predecessor's outcome. Pure: the trigger runner gathers the inputs, this
// decides; the same inputs give the same job id, so re-enqueuing a firing after a crash is a
// no-op.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/pipeline_spec.hpp"
#include "trainvisor/fleet/pipelines/pipeline_store.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"

namespace tv::fleet::pipelines {

struct Firing {
  std::int64_t index = 0;       // the pipeline's firing count before this one
  std::int64_t end_sample = 0;  // the training data ends before this stream index
  std::int64_t time_ns = 0;
  std::string reason;
  std::string stats_json;
};

struct PlanInputs {
  const PipelineSpec* spec = nullptr;
  Firing firing;
  std::int64_t previous_end = 0;   // the last firing's end_sample (0: none); finetune's start
  std::int64_t origin_sample = 0;  // where the trigger began reading (finetune's first start)
  // The pipeline's segments (at least those up to end_sample), in stream order.
  const std::vector<SegmentInfo>* segments = nullptr;
  std::string initial_weights;  // resolved by the caller from the strategy and initial model
};

struct PlannedTraining {
  JobSpec job;
  TriggerRecord record;
};

// The job's name: "PIPELINE.tN".
std::string training_job_name(const std::string& pipeline, std::int64_t index);

// Throws std::invalid_argument when the segments do not cover the window.
PlannedTraining plan_training(const PlanInputs& in);

}  // namespace tv::fleet::pipelines
