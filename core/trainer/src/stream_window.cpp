#include "stream_window.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>

#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::trainer {
namespace {

namespace fs = std::filesystem;
using fleet::pipelines::BatchError;
using fleet::pipelines::BatchLimits;
using fleet::pipelines::SampleBatchData;
using nlohmann::json;

std::string window_text(const StreamData& d) {
  return "--window " + std::to_string(d.window_begin) + ":" + std::to_string(d.window_end);
}

void check_options(const StreamData& d) {
  if (d.segment_files.empty()) throw BadInput("--segment: no segment file given");
  if (d.first_sample < 0) {
    throw BadInput("--stream-first-sample " + std::to_string(d.first_sample) +
                   ": a stream index is not negative");
  }
  if (d.window_begin < 0 || d.window_end <= d.window_begin) {
    throw BadInput(window_text(d) + ": not a window (0 <= B < E)");
  }
  if (d.sample_shape.empty() || d.sample_shape.size() > 4 ||
      std::any_of(d.sample_shape.begin(), d.sample_shape.end(),
                  [](std::int64_t n) { return n <= 0; })) {
    throw BadInput("--sample-shape " + shape_text(d.sample_shape) +
                   ": a sample has 1 to 4 dimensions, each at least 1");
  }
  if (d.num_classes < 2) {
    throw BadInput("--classes " + std::to_string(d.num_classes) +
                   ": a classifier needs at least 2 classes");
  }
  if (!(d.holdout >= 0 && d.holdout <= 1)) {
    throw BadInput("--holdout " + std::to_string(d.holdout) + ": a share from 0 to 1");
  }
  if (d.epochs < 0) {
    throw BadInput("--stream-epochs " + std::to_string(d.epochs) + ": not a number of epochs");
  }
}

// The decoded file; `flag` names where it came from in messages.
SampleBatchData read_batch(const std::string& file, const std::string& flag) {
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(file, ec);
  if (ec) throw BadInput(flag + " " + file + ": cannot read it: " + ec.message());
  std::ifstream in(file, std::ios::binary);
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    throw BadInput(flag + " " + file + ": cannot read it: read failed");
  }
  // The file was accepted under the coordinator's limits already; here only its size bounds it.
  BatchLimits limits;
  limits.max_bytes = std::max<std::size_t>(size, 1);
  limits.max_rows = std::max<std::size_t>(size, 1);
  limits.max_dims = std::max<std::size_t>(size / sizeof(float), 1);
  try {
    return fleet::pipelines::decode_batch(bytes, limits);
  } catch (const BatchError& e) {
    throw BadInput(flag + " " + file + ": corrupt: " + e.what());
  }
}

void check_batch(const SampleBatchData& b, const StreamData& d, const std::string& file,
                 const std::string& flag) {
  if (b.sample_shape != d.sample_shape) {
    throw BadInput(flag + " " + file + ": its sample shape " + shape_text(b.sample_shape) +
                   " differs from --sample-shape " + shape_text(d.sample_shape));
  }
  for (std::size_t r = 0; r < b.rows; ++r) {
    if (b.labels[r] >= d.num_classes) {
      throw BadInput(flag + " " + file + ": row " + std::to_string(r) + " has label " +
                     std::to_string(b.labels[r]) + ", not below --classes " +
                     std::to_string(d.num_classes));
    }
  }
}

// Appends rows [begin, end) of `b` to `out`.
void append_rows(const SampleBatchData& b, std::size_t begin, std::size_t end, SampleRows& out) {
  const std::size_t dims = b.dims();
  out.features.insert(out.features.end(), b.features.begin() + begin * dims,
                      b.features.begin() + end * dims);
  out.labels.insert(out.labels.end(), b.labels.begin() + begin, b.labels.begin() + end);
}

// The window's rows, in stream order, from the segments (each checked whole).
SampleRows read_window_rows(const StreamData& d) {
  SampleRows rows;
  std::int64_t next = d.first_sample;  // the stream index of the next file's row 0
  for (const std::string& file : d.segment_files) {
    const SampleBatchData b = read_batch(file, "--segment");
    check_batch(b, d, file, "--segment");
    const std::int64_t end = next + static_cast<std::int64_t>(b.rows);
    const std::int64_t from = std::max(d.window_begin, next);
    const std::int64_t to = std::min(d.window_end, end);
    if (from < to) {
      append_rows(b, static_cast<std::size_t>(from - next), static_cast<std::size_t>(to - next),
                  rows);
    }
    next = end;
  }
  if (d.window_begin < d.first_sample || d.window_end > next) {
    throw BadInput(window_text(d) + ": the segments cover stream samples [" +
                   std::to_string(d.first_sample) + ", " + std::to_string(next) + ") only");
  }
  return rows;
}

// The rows [begin, end) of `all`.
SampleRows slice(const SampleRows& all, std::int64_t begin, std::int64_t end, std::size_t dims) {
  SampleRows out;
  out.features.assign(all.features.begin() + begin * static_cast<std::int64_t>(dims),
                      all.features.begin() + end * static_cast<std::int64_t>(dims));
  out.labels.assign(all.labels.begin() + begin, all.labels.begin() + end);
  return out;
}

json scores_json(const Scores& s) {
  return {{"accuracy", s.accuracy}, {"macro_f1", s.macro_f1}, {"loss", s.loss}};
}

}  // namespace

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "(";
  for (std::size_t i = 0; i < shape.size(); ++i)
    out += (i > 0 ? ", " : "") + std::to_string(shape[i]);
  return out + ")";
}

StreamWindow read_stream_window(const StreamData& d) {
  check_options(d);
  StreamWindow w;
  w.sample_shape = d.sample_shape;
  w.num_classes = d.num_classes;
  std::size_t dims = 1;
  for (const std::int64_t n : d.sample_shape)
    dims *= static_cast<std::size_t>(n);
  const SampleRows rows = read_window_rows(d);
  const std::int64_t n = rows.rows();
  // Rounded, not truncated, so that 0.3 of 10 samples is 3 despite 0.3 * 10 < 3 in binary.
  std::int64_t held = std::llround(static_cast<double>(n) * d.holdout);
  if (d.holdout > 0) held = std::clamp<std::int64_t>(held, 1, n);
  if (d.epochs > 0 && held == n) {
    throw BadInput(window_text(d) + ": the training split is empty: --holdout " +
                   std::to_string(d.holdout) + " holds out all " + std::to_string(n) +
                   " samples of the window (--stream-epochs " + std::to_string(d.epochs) + ")");
  }
  w.train = slice(rows, 0, n - held, dims);
  w.evaluation = slice(rows, n - held, n, dims);
  w.holdout_samples = held;
  if (!d.eval_set_file.empty()) {
    const SampleBatchData set = read_batch(d.eval_set_file, "--eval-set");
    check_batch(set, d, d.eval_set_file, "--eval-set");
    append_rows(set, 0, set.rows, w.evaluation);
    w.set_samples = static_cast<std::int64_t>(set.rows);
  }
  if (w.evaluation.rows() == 0) {
    throw BadInput("no evaluation data: --holdout is 0 and there is no --eval-set");
  }
  return w;
}

Scores score(const std::vector<std::int64_t>& confusion, std::int64_t classes, double loss) {
  std::int64_t total = 0, correct = 0;
  double f1_sum = 0;
  std::int64_t counted = 0;
  for (std::int64_t c = 0; c < classes; ++c) {
    std::int64_t truth = 0, predicted = 0;
    for (std::int64_t k = 0; k < classes; ++k) {
      truth += confusion[static_cast<std::size_t>(c * classes + k)];
      predicted += confusion[static_cast<std::size_t>(k * classes + c)];
    }
    const std::int64_t hits = confusion[static_cast<std::size_t>(c * classes + c)];
    total += truth;
    correct += hits;
    if (truth + predicted == 0) continue;
    // F1 = 2 TP / (2 TP + FP + FN), and FP + FN + 2 TP = truth + predicted.
    f1_sum += 2.0 * static_cast<double>(hits) / static_cast<double>(truth + predicted);
    ++counted;
  }
  if (total == 0) throw std::invalid_argument("scores of no samples");
  return {static_cast<double>(correct) / static_cast<double>(total),
          f1_sum / static_cast<double>(counted), loss};
}

void write_evaluation(const JobFolder& folder, const EvaluationReport& r) {
  const json j = {
      {"window", {r.window_begin, r.window_end}},
      {"train_samples", r.train_samples},
      {"eval_samples", r.holdout_samples + r.set_samples},
      {"holdout_samples", r.holdout_samples},
      {"set_samples", r.set_samples},
      {"epochs", r.epochs},
      {"new", scores_json(r.trained)},
      {"deployed", r.deployed ? scores_json(*r.deployed) : json(nullptr)},
      {"deployed_model", r.deployed_model.empty() ? json(nullptr) : json(r.deployed_model)},
      {"cost",
       {{"train_cpu_s", r.train_cpu_s},
        {"train_wall_s", r.train_wall_s},
        {"eval_cpu_s", r.eval_cpu_s},
        {"eval_wall_s", r.eval_wall_s}}}};
  const fs::path path = folder.evaluation();
  const fs::path tmp = JobFolder::staging(path);
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << j.dump(2) << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
}

}  // namespace tv::trainer
