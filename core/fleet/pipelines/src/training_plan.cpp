#include "trainvisor/fleet/pipelines/training_plan.hpp"

#include <algorithm>
#include <stdexcept>

#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::pipelines {

std::string training_job_name(const std::string& pipeline, std::int64_t index) {
  return pipeline + ".t" + std::to_string(index);
}

namespace {

// [begin, end) of the stream that the strategy trains on.
std::int64_t window_begin(const PlanInputs& in) {
  const std::int64_t end = in.firing.end_sample;
  switch (in.spec->strategy.kind) {
    case StrategyKind::kFinetune:
      return std::clamp(std::max(in.previous_end, in.origin_sample), std::int64_t{0}, end);
    case StrategyKind::kWindow:
      return std::max<std::int64_t>(0, end - in.spec->strategy.window_samples);
    default:
      return 0;
  }
}

}  // namespace

PlannedTraining plan_training(const PlanInputs& in) {
  const PipelineSpec& spec = *in.spec;
  const std::int64_t begin = window_begin(in), end = in.firing.end_sample;
  PipelineTraining t;
  t.pipeline = spec.name;
  t.trigger = in.firing.index;
  t.window_begin = begin;
  t.window_end = end;
  t.sample_shape = spec.stream.sample_shape;
  t.num_classes = spec.stream.num_classes;
  t.epochs = spec.strategy.epochs;
  t.initial_weights = in.initial_weights;
  t.holdout = spec.evaluation.holdout;
  t.eval_set = spec.evaluation.set_digest;
  bool first = true;
  std::int64_t covered = begin;
  for (const SegmentInfo& s : *in.segments) {
    if (s.first_sample + s.rows <= begin || s.first_sample >= end) continue;
    if (first) {
      t.segments_first_sample = s.first_sample;
      first = false;
    }
    if (s.first_sample > covered) break;
    covered = s.first_sample + s.rows;
    t.segments.push_back(s.digest);
  }
  if (begin < end && covered < end) {
    throw std::invalid_argument("pipeline '" + spec.name + "': the stored segments cover its " +
                                "window [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") only up to " + std::to_string(covered));
  }

  PlannedTraining out;
  out.job = spec.training;
  out.job.name = training_job_name(spec.name, in.firing.index);
  out.job.hyper[plugin::knob::kMaxEpochs] = std::max<std::int64_t>(1, spec.strategy.epochs);
  out.job.pipeline = std::move(t);
  out.job.canonical = canonical_spec(out.job);
  out.job.id = sha256_hex(out.job.canonical);

  TriggerRecord& r = out.record;
  r.pipeline = spec.name;
  r.index = in.firing.index;
  r.window_begin = begin;
  r.end_sample = end;
  r.time_ns = in.firing.time_ns;
  r.reason = in.firing.reason;
  r.stats_json = in.firing.stats_json;
  r.job_id = out.job.id;
  r.initial_weights = in.initial_weights;
  return out;
}

}  // namespace tv::fleet::pipelines
