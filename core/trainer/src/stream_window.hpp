// A pipeline training's data (StreamData in trainvisor/trainer/trainer.hpp), read from its
// segment files and cut into the training split and the evaluation data; the scores of a model
// on those data and the evaluation.json that reports them. No libtorch: the dataset that wraps
// these rows in tensors is stream_dataset.cpp's, the evaluation itself training_loop.cpp's.
//
// Private to tv_trainer. Pure functions of their arguments and the files; any thread. Every
// refusal is a BadInput naming the flag, the file where there is one, and the reason.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {

// Samples in stream order: features row-major (rows x the product of the sample shape).
struct SampleRows {
  std::vector<float> features;
  std::vector<std::int64_t> labels;
  std::int64_t rows() const { return static_cast<std::int64_t>(labels.size()); }
};

struct StreamWindow {
  std::vector<std::int64_t> sample_shape;
  std::int64_t num_classes = 0;
  SampleRows train;       // the window's samples before its holdout split
  SampleRows evaluation;  // the holdout split, then the evaluation set's rows
  std::int64_t holdout_samples = 0;
  std::int64_t set_samples = 0;
};

// Checks `data`, reads its segments and its evaluation set, and splits the window. Only the
// window's rows are kept, one file at a time. An empty training split is refused when
// data.epochs > 0.
StreamWindow read_stream_window(const StreamData& data);

// The window as the loop's data set: inputs (n, *sample_shape) float32, targets int64; the
// validation split is the evaluation data. Defined in stream_dataset.cpp, the one file here that
// builds tensors.
std::unique_ptr<plugin::Dataset> make_stream_dataset(const StreamWindow& window);

// "(1, 28, 28)", for messages.
std::string shape_text(const std::vector<std::int64_t>& shape);

struct Scores {
  double accuracy = 0;
  double macro_f1 = 0;  // the unweighted mean of the per-class F1 over the classes that occur
  double loss = 0;      // the mean cross-entropy
};

// Scores from a confusion matrix (confusion[truth * classes + predicted], at least one sample)
// and the mean cross-entropy. A class with no true and no predicted sample is left out of the
// macro-F1's mean.
Scores score(const std::vector<std::int64_t>& confusion, std::int64_t classes, double loss);

struct EvaluationReport {
  std::int64_t window_begin = 0;
  std::int64_t window_end = 0;
  std::int64_t train_samples = 0;
  std::int64_t holdout_samples = 0;
  std::int64_t set_samples = 0;
  std::int64_t epochs = 0;  // epochs trained to the end
  Scores trained;
  std::optional<Scores> deployed;  // the baseline's; nullopt without one
  std::string deployed_model;      // the baseline bundle's sha256; "" without one
  // What this attempt spent (a resumed one counts from its resumption): training (data loading
  // included) up to the final evaluation, then the evaluation of both models and the bundle's
  // writing. Measurements, not results: a report keeps them apart from the scores.
  double train_cpu_s = 0, train_wall_s = 0, eval_cpu_s = 0, eval_wall_s = 0;
};

// Writes folder.evaluation() through a staging file renamed over it:
//   {"window": [B, E], "train_samples": T, "eval_samples": H + S, "holdout_samples": H,
//    "set_samples": S, "epochs": N, "new": {"accuracy", "macro_f1", "loss"}, "deployed": {...}
//    or null, "deployed_model": the baseline bundle's sha256 or null, "cost": {"train_cpu_s",
//    "train_wall_s", "eval_cpu_s", "eval_wall_s"}}
// Throws std::runtime_error when it cannot be written.
void write_evaluation(const JobFolder& folder, const EvaluationReport& report);

}  // namespace tv::trainer
