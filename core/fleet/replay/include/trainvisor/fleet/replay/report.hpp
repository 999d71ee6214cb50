// The report of `trainvisor replay`: what one run (a configuration of a manifest's pipelines over a
// recorded stream, at simulated time) did, and the files it is written to. The replay engine
// fills a RunReport per run and calls the writers once the run, or every compared run, is over.
// The stream is cut into fixed evaluation windows; every model is scored on every window after
// the end of its training data, giving a [model][window] matrix.
//
// Files, split by whether a second run on equal inputs gives the same bytes:
//   reproducible: report.json, triggers.csv;
//   measured:     costs.json, costs.csv (CPU and wall seconds, and what is derived from them);
//   plot:         accuracy.svg (one run or several), comparison.{json,csv} for several runs.
// JSON: keys sorted, two-space indent, doubles in nlohmann's round-trip form, NaN and infinities
// as null, "format_version": 1 at the top. CSV: RFC 4180 (a header row, CRLF line ends, a field
// quoted when it holds a comma, a quote, CR or LF, quotes doubled), doubles in std::to_chars'
// shortest round-trip form ("0.6", "nan", "inf"), an absent value as an empty field.
//
// Errors: ReportError (a std::runtime_error) for a malformed report (naming what is inconsistent)
// and for a file that cannot be written (naming the path and the reason). Every file is written
// to a temp file beside it and renamed into place: a reader sees the old file or the new, whole.
// Thread-safety: every function reads only its arguments; writers of distinct paths may run at
// once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "trainvisor/fleet/pipelines/replay_source.hpp"

namespace tv::fleet::replay {

class ReportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Scores {
  double accuracy = 0;  // 0..1
  double macro_f1 = 0;  // 0..1
  double loss = 0;      // may be NaN or infinite for a diverged model: null in JSON
  bool operator==(const Scores&) const = default;
};

// Samples [begin, end) of the stream, and the stream time they span: time_end_ns is where the
// next window starts (for the last one, the time just past its last sample).
struct Window {
  std::int64_t begin = 0;
  std::int64_t end = 0;
  std::int64_t time_begin_ns = 0;
  std::int64_t time_end_ns = 0;
  bool operator==(const Window&) const = default;
};

// One firing of a pipeline's trigger.
struct TriggerRow {
  std::string run;  // the configuration's name
  std::string pipeline;
  std::int64_t index = 0;   // the firing's number within its pipeline
  std::int64_t sample = 0;  // the firing's sample: trained on data before it
  std::int64_t time_ns = 0;
  std::string reason;
  nlohmann::json stats;  // the trigger's own statistics, as it reported them
  std::int64_t train_samples = 0;
  std::string model;                  // bundle sha256, "" if the training failed
  std::optional<Scores> next_window;  // the new model on the window that follows its firing
  bool deployed = false;
  bool operator==(const TriggerRow&) const = default;
};

// Measured, so not reproducible: kept out of report.json and triggers.csv.
struct TriggerCosts {
  double train_cpu_s = 0;
  double eval_cpu_s = 0;
  double drift_cpu_s = 0;
  double train_wall_s = 0;
  double eval_wall_s = 0;
  double drift_wall_s = 0;
  bool operator==(const TriggerCosts&) const = default;
};

struct ModelRow {
  std::string digest;
  std::int64_t trigger = 0;        // position in RunReport::triggers of the firing that trained it
  std::int64_t trained_until = 0;  // sample: trained on data before it
  std::optional<std::int64_t> deployed_from;  // the sample it became the deployed model at, if ever
  bool operator==(const ModelRow&) const = default;
};

struct Environment {
  std::uint64_t seed = 0;
  std::string manifest_sha256;
  std::string data_digest;
  std::string source;                           // the source's one-line description
  std::map<std::string, std::string> versions;  // library -> version: torch, boost, sqlite, ...
  std::string blas;
  int threads = 0;
  bool operator==(const Environment&) const = default;
};

struct RunReport {
  std::string run;
  Environment env;
  std::vector<Window> windows;  // in stream order, not overlapping
  std::vector<TriggerRow> triggers;
  std::vector<ModelRow> models;
  // [model][window]: empty for a window the model was trained on or that came before it.
  std::vector<std::vector<std::optional<Scores>>> matrix;
  std::vector<pipelines::ChangePoint> change_points;
  std::vector<TriggerCosts> costs;  // one per trigger, in the same order
  bool operator==(const RunReport&) const = default;
};

// Throws ReportError naming the first inconsistency: matrix dimensions against models and
// windows, costs against triggers, a trigger of another run, a model without a digest or whose
// trigger is out of range or trained another digest, windows empty, reversed or out of order, an
// accuracy or F1 outside 0..1 (NaN included), a cost negative or not finite.
// Every function below validates its report(s) first.
void validate(const RunReport& report);

// The accuracy of the model deployed at each window's start: the model with the greatest
// deployed_from <= window.begin (the later in `models` on a tie). A window has no value before
// any deployment, or when that model has no score on it (a gap, left out of the mean).
// The mean weighs each window by its time span (time_end_ns - time_begin_ns); a window of empty
// span weighs nothing, unless every window with a value has an empty span: then each weighs the
// same. No mean when no window has a value.
struct Composite {
  std::vector<std::optional<double>> accuracy;     // per window
  std::vector<std::optional<std::int64_t>> model;  // per window: position in models
  std::optional<double> mean;
};
Composite composite(const RunReport& report);

struct Totals {
  std::int64_t triggers = 0;
  std::int64_t deployed = 0;            // triggers whose model was deployed
  double cpu_s = 0;                     // train + eval + drift CPU seconds over every trigger
  std::optional<double> mean_accuracy;  // Composite::mean
  // mean_accuracy / (cpu_s / 3600); none without a mean accuracy or when cpu_s is 0 (a run that
  // spent nothing has no meaningful ratio): null in JSON, an empty field in CSV.
  std::optional<double> accuracy_per_cpu_hour;
};
Totals totals(const RunReport& report);

// Columns: run, pipeline, index, sample, time_ns, reason, stats (compact JSON), train_samples,
// model, deployed (true|false), next_accuracy, next_macro_f1, next_loss (empty without scores).
void write_triggers_csv(const std::filesystem::path& path, const RunReport& report);
// Everything reproducible: environment, windows, triggers, models, the matrix (null where empty),
// the composite per window and its mean, change points, and totals without costs.
void write_report_json(const std::filesystem::path& path, const RunReport& report);
// The per-trigger costs, their sums, and cpu_s and accuracy_per_cpu_hour of totals().
void write_costs_json(const std::filesystem::path& path, const RunReport& report);
// Columns: run, pipeline, index, sample, then the six fields of TriggerCosts.
void write_costs_csv(const std::filesystem::path& path, const RunReport& report);

// A standalone SVG (no script, no external font or stylesheet). Top panel: composite accuracy
// (y, 0..1) against the sample index of the stream (x); per run one polyline through its windows'
// midpoints (a gap is bridged), one circle per trigger at its sample and the new model's
// next-window accuracy (on the x axis without one), filled if deployed, hollow if not; the first
// run's change points inside the plotted samples as dashed vertical lines titled with their
// text. With two runs or more, a second panel: total CPU seconds (x) against mean composite
// accuracy (y), one labelled point per run that has a mean. Runs after the tenth reuse colours.
// Refuses an empty list.
void write_accuracy_svg(const std::filesystem::path& path, const std::vector<RunReport>& runs);

// `trainvisor replay --compare`: comparison.json and comparison.csv (one row per run, in the
// given order: run, triggers, deployed, mean_accuracy, cpu_s, accuracy_per_cpu_hour) and
// accuracy.svg with every run, in `dir`, which must exist. Refuses an empty list and two runs
// of one name.
void write_comparison(const std::filesystem::path& dir, const std::vector<RunReport>& runs);

// One run's files in `dir`, which must exist: report.json, triggers.csv, costs.json, costs.csv
// and accuracy.svg. Each file is atomic; the set is not (a failure may leave some written).
void write_run_report(const std::filesystem::path& dir, const RunReport& report);

}  // namespace tv::fleet::replay
