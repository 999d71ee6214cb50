// Streaming change detectors on one scalar stream (a loss, an error rate): ADWIN and Page-Hinkley.
//
// Each detector takes one observation per update() call and answers whether a change was
// detected at that observation. Options are validated at construction (std::invalid_argument
// naming the option and its allowed range). update() refuses a non-finite x with
// std::invalid_argument naming `x`, and then leaves the detector exactly as it was.
// A detector is a plain value with no shared state: one thread uses it at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace tv::drift {

// ADWIN2 (Bifet and Gavaldà, "Learning from Time-Changing Data with Adaptive Windowing",
// SDM 2007). The window W is kept as an exponential histogram: row i holds buckets of 2^i
// observations, at most `max_buckets` (M) per row, each bucket its sum and its sum of squared
// deviations. Every `clock` observations, once W holds `grace_period` of them, every split of W
// at a bucket boundary into an older W0 and a newer W1 (each of at least `min_window_length`
// observations) is tested:
//   |mean(W0) - mean(W1)| >= eps_cut,
//   eps_cut = sqrt(2/m * var(W) * ln(2/d')) + 2/(3m) * ln(2/d'),
//   m = 1 / (1/|W0| + 1/|W1|),  d' = delta / ln|W|,
// and while some split passes, the oldest bucket is dropped. Memory: O(M log |W|) buckets; time
// per update: O(1) amortised to insert and merge, O(M log |W|) on a clock tick.
struct AdwinOptions {
  double delta = 0.002;               // confidence of a cut, in (0, 1)
  std::size_t max_buckets = 5;        // M, most buckets a row keeps (then two merge), >= 1
  std::size_t clock = 32;             // observations between cut tests, >= 1
  std::size_t min_window_length = 5;  // least observations on each side of a cut, >= 1
  std::size_t grace_period = 10;      // least window width before any cut test
};

class Adwin {
 public:
  explicit Adwin(const AdwinOptions& options = {});

  // Adds x to the window; true when the window was cut (a change) at this observation.
  bool update(double x);
  // Back to an empty window; the detection count is kept.
  void reset();

  std::size_t width() const { return width_; }
  double mean() const { return width_ == 0 ? 0.0 : total_ / static_cast<double>(width_); }
  // Population variance of the observations in the window (0 for an empty window).
  double variance() const { return width_ == 0 ? 0.0 : m2_ / static_cast<double>(width_); }
  std::uint64_t detections() const { return detections_; }
  // Buckets in the exponential histogram: at most M per row, O(M log width()) in all.
  std::size_t bucket_count() const;
  const AdwinOptions& options() const { return options_; }

 private:
  struct Bucket {
    double total;  // sum of its observations
    double m2;     // sum of squared deviations from its own mean
  };

  void insert(double x);
  void compress();
  bool cut_found() const;
  void drop_oldest_bucket();

  AdwinOptions options_;
  // rows_[i] holds the buckets of 2^i observations, newest at the front; every bucket of row i
  // is newer than every bucket of row i + 1.
  std::vector<std::deque<Bucket>> rows_;
  std::size_t width_ = 0;
  double total_ = 0.0;
  double m2_ = 0.0;
  std::uint64_t ticks_ = 0;
  std::uint64_t detections_ = 0;
};

enum class PageHinkleyDirection { up, down, both };

// The Page-Hinkley test (Page 1954), in the cumulative-deviation form of Gama, Sebastião and
// Rodrigues ("On evaluating stream learning algorithms", Machine Learning 2013), with a
// forgetting factor alpha. With xbar_T the mean of the observations since the last reset:
//   up:   m_T = alpha * m_{T-1} + (x_T - xbar_T - delta),  M_T = min_{t<=T} m_t,  PH_T = m_T - M_T
//   down: n_T = alpha * n_{T-1} + (x_T - xbar_T + delta),  N_T = max_{t<=T} n_t,  PH_T = N_T - n_T
// A change is signalled when PH_T > lambda in a monitored direction and at least
// `min_instances` observations have been seen since the last reset; the test then resets.
// Memory and time per update: O(1).
struct PageHinkleyOptions {
  double delta = 0.005;            // magnitude of change tolerated, finite and >= 0
  double lambda = 50.0;            // alarm threshold on the cumulative deviation, finite and > 0
  double alpha = 0.9999;           // forgetting factor of the cumulative deviation, in (0, 1]
  std::size_t min_instances = 30;  // observations before an alarm may be raised, >= 1
  PageHinkleyDirection direction = PageHinkleyDirection::both;
};

class PageHinkley {
 public:
  explicit PageHinkley(const PageHinkleyOptions& options = {});

  // Adds x; true when a change is detected at this observation (the test has then reset).
  bool update(double x);
  // Forgets every observation; the detection count is kept.
  void reset();

  // PH_T of the last observation: the larger over the monitored directions (0 after a reset).
  double statistic() const;
  double increase_statistic() const { return sum_up_ - min_up_; }
  double decrease_statistic() const { return max_down_ - sum_down_; }
  // Mean of the observations since the last reset (0 when there are none).
  double mean() const { return mean_; }
  std::uint64_t count() const { return count_; }
  std::uint64_t detections() const { return detections_; }
  const PageHinkleyOptions& options() const { return options_; }

 private:
  PageHinkleyOptions options_;
  std::uint64_t count_ = 0;
  double mean_ = 0.0;
  double sum_up_ = 0.0;
  double min_up_ = 0.0;
  double sum_down_ = 0.0;
  double max_down_ = 0.0;
  std::uint64_t detections_ = 0;
};

}  // namespace tv::drift
