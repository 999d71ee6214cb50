// Prometheus metrics: counters, gauges and histograms in labelled families, and a Registry that
// renders them in the text exposition format 0.0.4 (what GET /metrics serves, kContentType).
//
// Names follow Prometheus' conventions, checked at registration (std::invalid_argument naming the
// metric and the rule): [a-zA-Z_:][a-zA-Z0-9_:]*, a counter's name ends in "_total"; label names
// are [a-zA-Z_][a-zA-Z0-9_]* and never start with "__"; a histogram's labels never include "le".
// A family's series for a set of label values is created on first use and lives until removed
// (per-job series are removed when the job ends); a family without labels has its one series from
// the start, so it renders 0 before anything happened.
//
// Cost: a series lookup takes a shared lock and allocates nothing once the series exists; the
// returned reference stays valid until the series is removed, so a hot path looks it up once and
// keeps it. Counter::inc is one relaxed atomic add; Histogram::observe two (its bucket and its
// sum). Relaxed order is enough: a scrape is a snapshot of independent values, never a fence.
//
// Thread-safety: every operation is safe from any thread, except that a series must not be used
// after (or while) it is removed: the one who removes it is its owner.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tv::fleet::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { value_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

class Gauge {
 public:
  void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
  void add(double d) noexcept { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const noexcept { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// One more on a gauge for as long as it lives (a connection, a session).
class GaugeHold {
 public:
  explicit GaugeHold(Gauge& g) noexcept : g_(g) { g_.add(1); }
  ~GaugeHold() { g_.add(-1); }
  GaugeHold(const GaugeHold&) = delete;
  GaugeHold& operator=(const GaugeHold&) = delete;

 private:
  Gauge& g_;
};

// Fixed buckets by upper bound (sorted, finite; +Inf is implicit). Each observation lands in one
// bucket; the cumulative counts are summed at render time, so observe() touches one bucket only.
class Histogram {
 public:
  explicit Histogram(std::span<const double> bounds);
  void observe(double v) noexcept;
  // The cumulative count of each bound, then of +Inf (the total count); and the sum.
  std::vector<std::uint64_t> cumulative() const;
  double sum() const noexcept { return sum_.load(std::memory_order_relaxed); }
  std::span<const double> bounds() const noexcept { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1 (the +Inf one)
  std::atomic<double> sum_{0};
};

// Bucket bounds in seconds for request durations: 1 ms to 10 s.
inline constexpr double kLatencyBuckets[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                             0.25,  0.5,    1,     2.5,  5,     10};

enum class Kind { kCounter, kGauge, kHistogram };

// What every family shares: its name, help, label names and rendering.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, std::vector<std::string> label_names, Kind kind);
  virtual ~FamilyBase() = default;
  const std::string& name() const noexcept { return name_; }
  // Appends "# HELP", "# TYPE" and every series' samples to `out`.
  void render(std::string& out) const;

 protected:
  // Orders series by their label values and finds them by views, without building a key.
  struct ValuesLess {
    using is_transparent = void;
    bool operator()(const std::vector<std::string>& a, const std::vector<std::string>& b) const;
    bool operator()(const std::vector<std::string>& a, std::span<const std::string_view> b) const;
    bool operator()(std::span<const std::string_view> a, const std::vector<std::string>& b) const;
  };
  // Throws std::invalid_argument when `values` does not match the label names.
  void check_arity(std::span<const std::string_view> values) const;
  virtual void render_series(std::string& out) const = 0;
  // `{a="x",b="y"` (no closing brace, so a histogram can add le) or "" without labels.
  std::string label_text(const std::vector<std::string>& values) const;

  mutable std::shared_mutex mu_;

 private:
  std::string name_;
  std::string help_;
  std::vector<std::string> label_names_;
  Kind kind_;
};

// A metric family of T (Counter, Gauge or Histogram), one series per set of label values.
template <class T>
class Family : public FamilyBase {
 public:
  Family(std::string name, std::string help, std::vector<std::string> label_names, Kind kind,
         std::function<std::unique_ptr<T>()> make);
  // The series for `values` (one per label name, in order), created on first use. Throws
  // std::invalid_argument when the number of values is wrong.
  T& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  T& with(std::span<const std::string_view> values);
  // The series of a family without labels.
  T& get() { return with({}); }
  // Removes the series for `values`, if any; a reference to it must not be used afterwards.
  void remove(std::initializer_list<std::string_view> values);

 private:
  void render_series(std::string& out) const override;
  std::function<std::unique_ptr<T>()> make_;
  std::map<std::vector<std::string>, std::unique_ptr<T>, ValuesLess> series_;
};

// Every family of a process (or of one server), rendered in name order.
class Registry {
 public:
  // Registers a family; throws std::invalid_argument for a bad or duplicate name, a bad label
  // name, or (histograms) unsorted or non-finite bounds.
  Family<Counter>& counter(std::string name, std::string help,
                           std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(std::string name, std::string help,
                       std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(std::string name, std::string help,
                               std::vector<std::string> label_names,
                               std::span<const double> bounds);
  // Runs before every render: where a value is read at scrape time (jobs by status) rather than
  // counted as it changes. A callback's exception propagates out of render().
  void on_scrape(std::function<void()> collect);
  // The text exposition format: every family, "# HELP" and "# TYPE" once each, sorted by name.
  std::string render() const;

 private:
  template <class T>
  Family<T>& add(std::unique_ptr<Family<T>> family);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<FamilyBase>, std::less<>> families_;
  std::vector<std::function<void()>> collectors_;
};

// A label value or help text escaped for the format: backslash, newline and (labels only) the
// double quote get a backslash.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// A sample value: integers without a fraction, +Inf, -Inf, NaN, else the shortest exact form.
std::string format_value(double v);

}  // namespace tv::fleet::metrics
