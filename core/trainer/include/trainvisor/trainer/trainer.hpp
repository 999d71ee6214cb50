// The trainer process's work: load a model plugin, attach to the job's config block, and run the
// training loop the framework owns (optimizer, loss, gradient clipping, evaluation, checkpoints),
// reading the live knobs (trainer_knobs.hpp) as one snapshot at every step boundary and pushing
// telemetry every step. Without a block it trains on fixed knobs and pushes nothing; with a
// recorded config history (--replay-config, recorded_run.hpp) its knobs follow that history
// instead of a block, which reproduces a supervised run's bundle byte for byte. With a stream
// (TrainerOptions::stream) it trains on a window of a pipeline's stream instead of the model's
// own data, from given weights or the model's init, and at the end scores the new model and the
// deployed one (a baseline bundle) on the same evaluation data, in evaluation.json.
//
// libtorch stays behind this header (two translation units compile it: the loop, and
// checkpoints and bundles; the live config does without). A TrainingSession is
// single-threaded; SIGTERM (see install_sigterm_handler) makes it checkpoint and stop at the
// next step boundary.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/core/trainer_exit_code.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::trainer {

// Input the trainer cannot use; maps to TrainerExitCode::kBadInput.
class BadInput : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One revision of a run's config history, as its bundle records it: the knobs the run applied
// from `step` on (the step count when it applied them).
struct RecordedRevision {
  std::int64_t revision = 0;
  std::int64_t step = 0;
  std::map<std::string, plugin::ParamValue> knobs;  // every knob of the schema
};

// A pipeline training's data: a window of its stream, read from segment files (the .npy triples
// of trainvisor/fleet/pipelines/sample_batch.hpp). Every file's rows follow the previous file's in
// the stream. The evaluation data are the window's holdout split plus the evaluation set; the
// new model and the baseline are scored on exactly those samples.
struct StreamData {
  std::vector<std::string> segment_files;         // in stream order
  std::int64_t first_sample = 0;                  // stream index of the first file's row 0
  std::int64_t window_begin = 0, window_end = 0;  // the samples trained and evaluated on
  std::vector<std::int64_t> sample_shape;         // every file's must match
  std::int64_t num_classes = 0;                   // labels must be below it
  double holdout = 0.1;         // the window's last share: the evaluation split, not trained on
  std::string eval_set_file;    // optional: an extra evaluation batch (the same format)
  std::string initial_weights;  // optional: a bundle to start from (else the model's init)
  std::string baseline;         // optional: a bundle evaluated on the same data as the new model
  // The max_epochs knob (a block's value wins, as over --max-epochs); 0: no training, the
  // starting weights are evaluated and bundled.
  std::int64_t epochs = 1;
};

struct TrainerOptions {
  std::string job_id;  // the block is trainvisor.<job_id>; empty: fixed knobs, no telemetry
  std::string model;
  plugin::Params model_params;                      // as given; checked against the model's schema
  std::vector<std::string> plugin_dirs;             // searched before the default directories
  std::map<std::string, plugin::ParamValue> knobs;  // fixed knobs, or the base a block overrides
  std::string out_dir;                              // checkpoint/ and bundle.tvb
  std::uint64_t seed = 0;
  std::int64_t max_steps = 0;  // cap; 0: none
  bool resume = false;         // continue from out_dir/checkpoint
  // On resume, the checkpoint's knobs, the optimizer's name included, win over the live ones.
  bool resume_saved_config = false;
  plugin::DataOptions data;
  // Not empty: the knobs follow this history, revision by revision from the step each applied
  // from, and no block is read (job_id empty, no resume). read_recorded_run checks it.
  std::vector<RecordedRevision> replay;
  int threads = 1;  // 1 keeps runs bit-for-bit reproducible
  // Checkpoint and stop (TrainerExitCode::kInterrupted) once the block's heartbeat, which its
  // config agent writes, is older than this: the host daemon is gone and another host may now hold
  // the job. 0: never.
  std::chrono::milliseconds orphan_after{0};
  // The lease this trainer runs for (its host's claim): the attempt and the digest of the lease
  // token as hex. The trainer checkpoints and stops (kInterrupted) as soon as its block carries
  // another lease: another host took the job over. Attempt 0 and no digest: no check.
  std::uint64_t lease_attempt = 0;
  std::string lease_digest;
  bool log = true;  // progress lines on stderr
  // Set: train on this window instead of the model plugin's load_data (`data` is then unused),
  // with max_epochs = stream->epochs, and write JobFolder::evaluation() at the end.
  std::optional<StreamData> stream;
};

class TrainingSession {
 public:
  // Loads the plugin, its data and model (and with a stream, the starting weights and the
  // baseline), attaches to the block. Throws BadInput, naming the file for a bad segment or
  // bundle.
  static std::unique_ptr<TrainingSession> open(const TrainerOptions& options);
  virtual ~TrainingSession() = default;

  // Runs to completion; returns the exit code. Writes the bundle (and with a stream, the
  // evaluation) on completion or early stop, and a checkpoint on SIGTERM
  // (trainvisor/core/job_folder.hpp names them).
  virtual TrainerExitCode run() = 0;

  // One optimisation step on the next batch (epochs wrap), with the knob refresh and telemetry
  // of a real run: what the step benchmark measures.
  virtual void step() = 0;
  virtual std::int64_t steps_done() const = 0;
};

// Makes SIGTERM (and SIGINT, SIGHUP) request a checkpoint-and-stop at the next step boundary.
void install_sigterm_handler();

// Which BLAS libtorch runs on, e.g. "OpenBLAS 0.3.21 ... (/usr/lib/.../libopenblas.so.0)".
std::string blas_description();

}  // namespace tv::trainer
