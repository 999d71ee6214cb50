// The engine of `trainvisor replay`: a manifest's pipelines run over a replay source at simulated
// time, on this machine, through the fleet's own code: a coordinator (its HTTP API on 127.0.0.1)
// and a host daemon in this process, the source ingested batch by batch over that API. After each
// batch the replay waits until every pipeline's trigger has read it and every training it started
// has been decided (deployed, refused or failed): ingest pauses while a triggered training runs,
// so what happens does not depend on the machine's speed.
//
// State (the coordinator's data, the host's work) lives in `state_dir`; a replay killed at any
// point goes on from there with `resume`: batches already stored are not sent again (each
// carries an Idempotency-Key, so one stored just before the kill is not stored twice), and an
// interrupted training is claimed again.
//
// Each pipeline of the manifest becomes one RunReport (report.hpp), named after it: the models it
// trained, scored on every later evaluation window of the stream, with the costs kept apart.
//
// Errors: ReplayError (pipelines::ReplayError) for what is wrong before anything runs (a manifest
// with no pipeline, a pipeline whose stream the source cannot feed, state that does or does not
// exist against `resume`), and for a pipeline that stops during the replay (its error, verbatim).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/pipelines/replay_source.hpp"
#include "trainvisor/fleet/replay/report.hpp"

namespace tv::fleet::replay {

struct Progress {
  std::int64_t samples = 0;  // ingested so far (of the replay's range)
  std::int64_t total = 0;    // the range's samples
  std::int64_t triggers = 0;
  std::string doing;  // "ingesting", "training drift.t3", "scoring models"
};

struct ExperimentOptions {
  std::string manifest;  // its [[pipelines]]
  std::filesystem::path state_dir;
  std::shared_ptr<const pipelines::ReplaySource> source;
  pipelines::SampleRange range;  // of the source
  std::int64_t batch_size = 500;
  std::int64_t max_triggers = 0;  // the replay ends after the batch that reaches it; 0: none
  std::int64_t window = 1000;     // the evaluation windows' length, in samples
  bool resume = false;
  std::vector<std::string> plugin_dirs;
  std::uint64_t seed = 0;                       // recorded in the report's environment
  std::map<std::string, std::string> versions;  // idem: libraries and their versions
  std::string blas;
  // The coordinator's embedder maker (CoordinatorOptions::make_embedder), for triggers that read
  // embeddings.
  decltype(CoordinatorOptions::make_embedder) make_embedder;
  // A model's scores on samples (the trainer's ModelScorer): given by the caller, so that this
  // library links no libtorch. When it is called, the bundle `digest` is at
  // models_dir(state_dir) / (digest + ".tvb").
  std::function<Scores(const std::string& digest, const pipelines::SampleBatchData&)> score;
  std::function<void(const Progress&)> on_progress;
  std::function<void(const std::string&)> log;  // the coordinator's and the host's lines
};

std::vector<RunReport> run_experiment(const ExperimentOptions& options);

// Where run_experiment puts the bundles it scores.
std::filesystem::path models_dir(const std::filesystem::path& state_dir);

}  // namespace tv::fleet::replay
