// The `data_drift` trigger: fires when the stream's recent samples differ from a reference window
// by a two-sample test that the host computes (MMD or per-feature KS, TriggerServices::drift()).
//
// Windows, by amount (`reference_size`, `current_size` samples) or by stream time (`reference_s`,
// `current_s`). The reference is the stream's first window; then, with reference = last_training,
// the window up to each firing (the data the training it starts sees last), or with
// reference = fixed, the first window for good. The current window is the newest window's worth of
// the data since the last firing. Every `evaluate_every` samples, once the current window is full,
// the test runs; without `overlap` an evaluation that does not fire starts the next current window
// afresh (tumbling windows), with it the windows slide.
// Decision: p < `p_value`; distance > `threshold`; or a dynamic threshold calibrated on the last
// `dynamic_window` distances: above their (1 - `quantile`) quantile, or above their mean by
// `deviation` (relative to the mean, or absolute). A dynamic threshold first needs
// `warmup_evaluations` distances; meanwhile a data-count trigger stands in, firing every
// `warmup_every` samples (0: none). Raw p-values over-trigger on large windows; a threshold
// calibrated on past distances does not.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/batch_check.hpp"
#include "common/plugin_params.hpp"
#include "common/stream_time.hpp"
#include "common/trigger_plugin_for.hpp"
#include "sample_buffer.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers {
namespace {

using plugin_params::choice_param;
using plugin_params::flag_param;
using plugin_params::integer_param;
using plugin_params::number_param;

constexpr std::int64_t kNsPerS = 1'000'000'000;
constexpr std::int64_t kMaxWindow = 1'000'000;

std::int64_t to_ns(double seconds) {
  return static_cast<std::int64_t>(std::llround(seconds * 1e9));
}

// The (1 - q) quantile of `values` with linear interpolation between order statistics (numpy's
// default), the dynamic threshold's cut.
double upper_quantile(std::deque<double> values, double q) {
  std::sort(values.begin(), values.end());
  const double position = (1.0 - q) * static_cast<double>(values.size() - 1);
  const auto low = static_cast<std::size_t>(std::floor(position));
  const std::size_t high = std::min(low + 1, values.size() - 1);
  return values[low] + (values[high] - values[low]) * (position - static_cast<double>(low));
}

class DataDriftTrigger final : public plugin::Trigger {
 public:
  struct Settings {
    std::string metric, windowing, reference, decision, correction;
    std::int64_t reference_size = 0, current_size = 0, evaluate_every = 0, permutations = 0;
    std::int64_t seed = 0, dynamic_window = 0, warmup_evaluations = 0, warmup_every = 0;
    double reference_s = 0, current_s = 0, p_value = 0, threshold = 0, quantile = 0;
    double deviation = 0;
    bool overlap = false, deviation_absolute = false;
  };

  static plugin::Descriptor descriptor();
  static Settings read_settings(plugin_params::ParamReader& in);
  static std::unique_ptr<plugin::Trigger> make(const Settings& settings,
                                               const plugin::TriggerServices& services,
                                               std::string&) {
    return std::unique_ptr<plugin::Trigger>(new DataDriftTrigger(settings, services.drift()));
  }

  bool observe(const plugin::SampleBatch& batch, plugin::TriggerDecision& decision,
               std::string& error) override {
    std::optional<std::string> problem = cursor_.check(batch);
    if (!problem) problem = non_finite_feature(batch);
    if (problem) {
      error = *problem;
      return false;
    }
    for (std::size_t row = 0; row < batch.rows; ++row)
      observe_row(batch, row, decision);
    cursor_.commit(batch);
    return true;
  }

 private:
  DataDriftTrigger(const Settings& s, const plugin::DriftStatistics& drift)
      : s_(s),
        drift_(drift),
        by_time_(s.windowing == "time"),
        dynamic_(s.decision.rfind("dynamic_", 0) == 0) {
    options_.metric = s.metric;
    options_.permutations = s.permutations;
    options_.seed = static_cast<std::uint64_t>(s.seed);
    options_.correction = s.correction;
  }

  void observe_row(const plugin::SampleBatch& b, std::size_t row, plugin::TriggerDecision& d);
  void build_initial_reference(const float* values, std::size_t dims, std::int64_t t,
                               std::size_t row, plugin::TriggerDecision& d);
  bool current_full(std::int64_t t) const;
  plugin::TriggerEvaluation evaluate(std::size_t row, std::int64_t t);
  // Fills the verdict of a test: whether it fires, the threshold it met, the reason.
  void decide(const plugin::DriftTestResult& r, plugin::TriggerEvaluation& e);
  void fire(std::size_t row, std::int64_t t, plugin::TriggerDecision& d);
  // Prepares `rows` rows as the reference; a reason when the host cannot use them.
  std::optional<std::string> set_reference(const std::vector<float>& values, std::size_t rows,
                                           std::size_t dims);
  bool warming_up() const { return dynamic_ && tests_ < s_.warmup_evaluations; }
  std::string windows_text(std::size_t current_rows) const {
    return std::to_string(reference_->rows()) + " reference, " + std::to_string(current_rows) +
           " current samples";
  }

  const Settings s_;
  const plugin::DriftStatistics& drift_;
  const bool by_time_, dynamic_;
  plugin::DriftTestOptions options_;
  StreamCursor cursor_{true};
  std::unique_ptr<plugin::DriftReference> reference_;
  SampleBuffer initial_;  // the first reference while it fills
  SampleBuffer recent_;   // the newest samples, enough for a reference at the next firing
  SampleBuffer current_;  // since the last firing (or cleared evaluation), one window's worth
  std::int64_t current_start_ns_ = 0;
  std::int64_t since_evaluation_ = 0, since_firing_ = 0, tests_ = 0;
  std::deque<double> past_;  // the last distances, for a dynamic threshold
};

plugin::Descriptor DataDriftTrigger::descriptor() {
  return trigger_descriptor(
      "data_drift", "fires when recent samples drift from a reference window (MMD or KS test)",
      {choice_param("metric", "mmd", {"mmd", "ks"},
                    "two-sample test: mmd (RBF kernel, permutation p-value) or ks (per feature, "
                    "corrected over the features)"),
       choice_param("windowing", "amount", {"amount", "time"},
                    "windows by sample count (reference_size, current_size) or by stream time "
                    "(reference_s, current_s)"),
       integer_param("reference_size", 1000, 2, kMaxWindow, "reference window, in samples"),
       integer_param("current_size", 1000, 2, kMaxWindow, "current window, in samples"),
       number_param("reference_s", 3600, 1e-3, 1e9, "reference window, in seconds of stream time"),
       number_param("current_s", 3600, 1e-3, 1e9, "current window, in seconds of stream time"),
       choice_param("reference", "last_training", {"last_training", "fixed"},
                    "last_training: the window up to each firing; fixed: the stream's first"),
       flag_param("overlap", false,
                  "windows slide (true) or an evaluation that does not fire starts the next "
                  "current window afresh (false)"),
       integer_param("evaluate_every", 1000, 1, 1'000'000'000, "samples between two tests"),
       choice_param("decision", "p_value",
                    {"p_value", "threshold", "dynamic_quantile", "dynamic_rolling_average"},
                    "fire on p < p_value, on distance > threshold, or on a threshold calibrated "
                    "on past distances"),
       number_param("p_value", 0.05, 1e-9, 1, "decision p_value: the test's level"),
       number_param("threshold", 0.05, 0, 1e9, "decision threshold: the distance that fires"),
       integer_param("dynamic_window", 10, 1, 100000, "past distances a dynamic threshold uses"),
       number_param("quantile", 0.05, 1e-6, 1,
                    "dynamic_quantile: fires above the (1 - quantile) quantile of past distances"),
       number_param("deviation", 0.05, 0, 1e9,
                    "dynamic_rolling_average: fires when the distance exceeds the mean of past "
                    "distances by this much"),
       flag_param("deviation_absolute", false,
                  "deviation is absolute (true) or relative to the mean (false)"),
       integer_param("warmup_evaluations", 5, 0, 100000,
                     "tests whose distances calibrate a dynamic threshold before it decides"),
       integer_param("warmup_every", 0, 0, 1'000'000'000,
                     "while warming up, fire every this many samples (0: never)"),
       integer_param("permutations", 100, 1, 100000, "mmd: permutations of the test"),
       integer_param("seed", 0, 0, std::int64_t{1} << 53, "mmd: the permutations' seed"),
       choice_param("correction", "bonferroni", {"bonferroni", "fdr"},
                    "ks: correction over the features")});
}

DataDriftTrigger::Settings DataDriftTrigger::read_settings(plugin_params::ParamReader& in) {
  Settings s;
  s.metric = in.text("metric");
  s.windowing = in.text("windowing");
  s.reference = in.text("reference");
  s.decision = in.text("decision");
  s.correction = in.text("correction");
  s.reference_size = in.integer("reference_size");
  s.current_size = in.integer("current_size");
  s.evaluate_every = in.integer("evaluate_every");
  s.permutations = in.integer("permutations");
  s.seed = in.integer("seed");
  s.dynamic_window = in.integer("dynamic_window");
  s.warmup_evaluations = in.integer("warmup_evaluations");
  s.warmup_every = in.integer("warmup_every");
  s.reference_s = in.number("reference_s");
  s.current_s = in.number("current_s");
  s.p_value = in.number("p_value");
  s.threshold = in.number("threshold");
  s.quantile = in.number("quantile");
  s.deviation = in.number("deviation");
  s.overlap = in.flag("overlap");
  s.deviation_absolute = in.flag("deviation_absolute");
  if (s.p_value >= 1) in.refuse("p_value: must be below 1 (a level of 1 fires on every test)");
  return s;
}

void DataDriftTrigger::observe_row(const plugin::SampleBatch& b, std::size_t row,
                                   plugin::TriggerDecision& d) {
  const float* values = b.features.data() + row * b.dims;
  const std::int64_t t = b.time_ns[row];
  recent_.push(values, b.dims, t);
  if (by_time_)
    recent_.keep_since(t - to_ns(std::max(s_.reference_s, s_.current_s)));
  else
    recent_.keep_last(static_cast<std::size_t>(std::max(s_.reference_size, s_.current_size)));
  if (!reference_) return build_initial_reference(values, b.dims, t, row, d);

  if (current_.empty()) current_start_ns_ = t;
  current_.push(values, b.dims, t);
  if (by_time_)
    current_.keep_since(t - to_ns(s_.current_s));
  else
    current_.keep_last(static_cast<std::size_t>(s_.current_size));
  ++since_evaluation_;
  ++since_firing_;
  if (warming_up() && s_.warmup_every > 0 && since_firing_ >= s_.warmup_every) {
    d.evaluations.push_back(
        {row,
         t,
         true,
         "warm-up: " + std::to_string(since_firing_) +
             " samples since the last firing (the drift threshold calibrates on " +
             std::to_string(tests_) + " of " + std::to_string(s_.warmup_evaluations) +
             " tests so far)",
         {{"samples_since_firing", static_cast<double>(since_firing_)},
          {"warmup_tests", static_cast<double>(tests_)}}});
    return fire(row, t, d);
  }
  if (since_evaluation_ < s_.evaluate_every || !current_full(t)) return;
  d.evaluations.push_back(evaluate(row, t));
  since_evaluation_ = 0;
  if (d.evaluations.back().fired) return fire(row, t, d);
  if (!s_.overlap) current_.clear();
}

void DataDriftTrigger::build_initial_reference(const float* values, std::size_t dims,
                                               std::int64_t t, std::size_t row,
                                               plugin::TriggerDecision& d) {
  const bool complete =
      by_time_ ? !initial_.empty() && t - initial_.oldest_ns() >= to_ns(s_.reference_s) : false;
  if (!complete) {
    initial_.push(values, dims, t);
    if (!by_time_) initial_.keep_last(static_cast<std::size_t>(s_.reference_size));
    if (by_time_ || initial_.rows() < static_cast<std::size_t>(s_.reference_size)) return;
  }
  const auto why = set_reference(initial_.last(initial_.rows()), initial_.rows(), dims);
  initial_.clear();
  if (why) {  // a fresh window is collected for the next try, so a bad stream costs one per window
    d.evaluations.push_back({row, t, false, "no reference yet: " + *why, {}});
    if (complete) initial_.push(values, dims, t);
    return;
  }
  if (complete) {  // this sample starts the current window
    current_start_ns_ = t;
    current_.push(values, dims, t);
    since_evaluation_ = since_firing_ = 1;
  }
}

bool DataDriftTrigger::current_full(std::int64_t t) const {
  if (by_time_) return t - current_start_ns_ >= to_ns(s_.current_s) && current_.rows() >= 2;
  return current_.rows() >= static_cast<std::size_t>(s_.current_size);
}

plugin::TriggerEvaluation DataDriftTrigger::evaluate(std::size_t row, std::int64_t t) {
  const std::vector<float> values = current_.last(current_.rows());
  const plugin::FeatureWindow window{values, current_.rows(), current_.dims()};
  plugin::TriggerEvaluation e{row, t, false, "", {}};
  plugin::DriftTestResult result;
  std::string error;
  if (!drift_.test(*reference_, window, options_, result, error)) {
    e.reason = "no test: " + error;
    return e;
  }
  decide(result, e);
  e.stats.insert(e.stats.begin(), {{s_.metric == "mmd" ? "mmd2" : "ks_statistic", result.distance},
                                   {"p_value", result.p_value}});
  e.stats.insert(e.stats.end(), result.stats.begin(), result.stats.end());
  e.reason = s_.metric + " " + e.reason + " (" + windows_text(window.rows) + ")";
  ++tests_;
  past_.push_back(result.distance);
  while (past_.size() > static_cast<std::size_t>(s_.dynamic_window))
    past_.pop_front();
  return e;
}

void DataDriftTrigger::decide(const plugin::DriftTestResult& r, plugin::TriggerEvaluation& e) {
  const std::string distance = "distance " + number_text(r.distance);
  if (s_.decision == "p_value") {
    e.fired = r.p_value < s_.p_value;
    e.reason = "p=" + number_text(r.p_value) + (e.fired ? " < " : " >= ") +
               number_text(s_.p_value) + (e.fired ? ": drift" : ": no drift");
    return;
  }
  if (s_.decision == "threshold") {
    e.fired = r.distance > s_.threshold;
    e.stats.push_back({"threshold", s_.threshold});
    e.reason = distance + (e.fired ? " > " : " <= ") + "threshold " + number_text(s_.threshold);
    return;
  }
  if (tests_ < s_.warmup_evaluations || past_.empty()) {
    e.reason = distance + " recorded: warm-up test " + std::to_string(tests_ + 1) + " of " +
               std::to_string(std::max<std::int64_t>(s_.warmup_evaluations, 1));
    return;
  }
  double cut = 0;
  std::string rule;
  if (s_.decision == "dynamic_quantile") {
    cut = upper_quantile(past_, s_.quantile);
    // Rounded for the text only: 100 * (1 - 0.1) is 90.00000000000001 in binary.
    rule =
        "the " + number_text(std::round(1e6 * 100 * (1 - s_.quantile)) / 1e6) + "th percentile of ";
  } else {
    double mean = 0;
    for (double v : past_)
      mean += v;
    mean /= static_cast<double>(past_.size());
    cut = s_.deviation_absolute ? mean + s_.deviation : mean + std::abs(mean) * s_.deviation;
    rule = "the mean + " +
           (s_.deviation_absolute ? number_text(s_.deviation)
                                  : number_text(100 * s_.deviation) + "%") +
           " of ";
  }
  e.fired = r.distance > cut;
  e.stats.push_back({"threshold", cut});
  e.reason = distance + (e.fired ? " > " : " <= ") + number_text(cut) + ", " + rule +
             std::to_string(past_.size()) + " past distances";
}

void DataDriftTrigger::fire(std::size_t row, std::int64_t t, plugin::TriggerDecision& d) {
  current_.clear();
  since_evaluation_ = since_firing_ = 0;
  if (s_.reference != "last_training") return;
  const std::size_t rows = by_time_ ? recent_.rows_since(t - to_ns(s_.reference_s))
                                    : std::min<std::size_t>(recent_.rows(), s_.reference_size);
  if (auto why = set_reference(recent_.last(rows), rows, recent_.dims())) {
    d.evaluations.push_back({row, t, false, "the reference stays the previous one: " + *why, {}});
  }
}

std::optional<std::string> DataDriftTrigger::set_reference(const std::vector<float>& values,
                                                           std::size_t rows, std::size_t dims) {
  std::string error;
  auto prepared = drift_.prepare(plugin::FeatureWindow{values, rows, dims}, options_, error);
  if (!prepared) return error;
  reference_ = std::move(prepared);
  return std::nullopt;
}

}  // namespace
}  // namespace tv::triggers

TRAINVISOR_PLUGIN(tv::triggers::TriggerPluginFor<tv::triggers::DataDriftTrigger>)
