#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iostream>
#include <limits>
#include <numbers>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/drift/streaming.hpp"

namespace {

using tv::drift::Adwin;
using tv::drift::AdwinOptions;
using tv::drift::PageHinkley;
using tv::drift::PageHinkleyDirection;
using tv::drift::PageHinkleyOptions;

// Draws from std::mt19937_64 (whose output the standard fixes), turned into numbers here rather
// than by <random>'s distributions (whose algorithms differ between standard libraries), so a
// seed gives the same stream everywhere.
class SeededStream {
 public:
  explicit SeededStream(std::uint64_t seed) : engine_(seed) {}

  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // An error indicator: 1 with probability p.
  double bernoulli(double p) { return uniform() < p ? 1.0 : 0.0; }
  // Box-Muller: one N(mean, sigma^2) draw from two uniforms.
  double normal(double mean, double sigma) {
    const double u1 = 1.0 - uniform();  // in (0, 1]: log stays finite
    const double u2 = uniform();
    return mean + sigma * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 engine_;
};

// The two step changes every detector is shown: an error rate (Bernoulli 0.1 -> 0.4) and a
// loss-like value (Gaussian, sigma 0.1, mean 0.5 -> 0.8: a step of three sigma).
struct StepStream {
  const char* name;
  std::function<double(SeededStream&)> before;
  std::function<double(SeededStream&)> after;
};

const StepStream kErrorRateStep{"error rate, Bernoulli 0.1 -> 0.4",
                                [](SeededStream& s) { return s.bernoulli(0.1); },
                                [](SeededStream& s) { return s.bernoulli(0.4); }};
const StepStream kLossStep{"loss, Gaussian sigma 0.1, mean 0.5 -> 0.8",
                           [](SeededStream& s) { return s.normal(0.5, 0.1); },
                           [](SeededStream& s) { return s.normal(0.8, 0.1); }};

constexpr int kPreChange = 2000;  // observations before the step
constexpr int kPostLimit = 5000;  // observations after it before a miss is declared
constexpr int kSeeds = 20;

struct DelaySummary {
  int early_alarms = 0;  // alarms before the step
  int missed = 0;        // seeds with no alarm within kPostLimit after it
  std::vector<int> delays;
};

// Feeds each seed's stream to a fresh detector; a delay of d means the alarm came at the d-th
// observation after the step (1 = the first changed one).
template <typename Detector, typename Options>
DelaySummary measure_delays(const Options& options, const StepStream& step) {
  DelaySummary summary;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    Detector detector(options);
    SeededStream stream(static_cast<std::uint64_t>(seed) * 7919u);
    for (int i = 0; i < kPreChange; ++i) {
      if (detector.update(step.before(stream))) ++summary.early_alarms;
    }
    int delay = 0;
    for (int i = 1; i <= kPostLimit && delay == 0; ++i) {
      if (detector.update(step.after(stream))) delay = i;
    }
    if (delay == 0) {
      ++summary.missed;
    } else {
      summary.delays.push_back(delay);
    }
  }
  return summary;
}

void expect_detected_within(const char* detector, const StepStream& step,
                            const DelaySummary& summary, int max_delay) {
  EXPECT_EQ(summary.early_alarms, 0) << detector << " on " << step.name;
  EXPECT_EQ(summary.missed, 0) << detector << " on " << step.name;
  ASSERT_FALSE(summary.delays.empty());
  const auto [lo, hi] = std::minmax_element(summary.delays.begin(), summary.delays.end());
  const double mean = std::accumulate(summary.delays.begin(), summary.delays.end(), 0.0) /
                      static_cast<double>(summary.delays.size());
  std::cout << "[ delays   ] " << detector << " on " << step.name << " over " << kSeeds
            << " seeds: min " << *lo << ", mean " << mean << ", max " << *hi << "\n";
  EXPECT_LE(*hi, max_delay) << detector << " on " << step.name;
}

// --- (a) a step change is detected within a stated delay -------------------------------------

// Each bound leaves a margin of a third or more over the largest delay measured over the 20
// seeds. ADWIN tests for a
// cut every 32 observations, and the step falls 16 before a tick, so its delays are 16 + 32k.
TEST(AdwinStep, DetectsEachStepWithinItsBound) {
  for (const auto& [step, bound] : {std::pair{&kErrorRateStep, 160}, std::pair{&kLossStep, 64}}) {
    expect_detected_within("ADWIN", *step, measure_delays<Adwin>(AdwinOptions{}, *step), bound);
  }
}

TEST(PageHinkleyStep, DetectsEachStepWithinItsBound) {
  for (const auto& [step, bound] : {std::pair{&kErrorRateStep, 300}, std::pair{&kLossStep, 250}}) {
    expect_detected_within("Page-Hinkley", *step,
                           measure_delays<PageHinkley>(PageHinkleyOptions{}, *step), bound);
  }
}

// After a cut ADWIN's window is a suffix of the stream, and its mean and variance are exactly
// that suffix's: the bucket merges and the dropping of old buckets keep the sums exact. Also with
// M = 1 and a test at every observation, where merges leave rows empty.
TEST(AdwinStep, WindowAfterCutIsTheRecentSuffix) {
  const AdwinOptions variants[] = {
      AdwinOptions{},
      AdwinOptions{.max_buckets = 1, .clock = 1, .min_window_length = 1, .grace_period = 0}};
  for (const auto& options : variants) {
    Adwin adwin(options);
    SeededStream stream(42);
    std::vector<double> seen;
    bool cut = false;
    for (int i = 0; i < kPreChange + kPostLimit && !cut; ++i) {
      seen.push_back(i < kPreChange ? kLossStep.before(stream) : kLossStep.after(stream));
      cut = adwin.update(seen.back());
    }
    ASSERT_TRUE(cut) << "M = " << options.max_buckets;
    EXPECT_EQ(adwin.detections(), 1u);
    ASSERT_LT(adwin.width(), seen.size());
    const std::vector<double> window(seen.end() - static_cast<std::ptrdiff_t>(adwin.width()),
                                     seen.end());
    const double n = static_cast<double>(window.size());
    const double mean = std::accumulate(window.begin(), window.end(), 0.0) / n;
    double m2 = 0.0;
    for (double x : window)
      m2 += (x - mean) * (x - mean);
    EXPECT_NEAR(adwin.mean(), mean, 1e-12) << "M = " << options.max_buckets;
    EXPECT_NEAR(adwin.variance(), m2 / n, 1e-12) << "M = " << options.max_buckets;
  }
}

// --- (b) no alarm on 100,000 stationary observations -----------------------------------------

constexpr int kStationary = 100000;

// Feeds kStationary draws to the detector; the number of alarms raised.
template <typename Detector, typename Draw>
int stationary_alarms(Detector& detector, std::uint64_t seed, Draw draw) {
  SeededStream stream(seed);
  int alarms = 0;
  for (int i = 0; i < kStationary; ++i)
    alarms += detector.update(draw(stream)) ? 1 : 0;
  return alarms;
}

double error_rate(SeededStream& s) {
  return s.bernoulli(0.1);
}
double loss(SeededStream& s) {
  return s.normal(0.5, 0.1);
}

// ADWIN's bound is stated for observations in [0, 1]: an error-rate stream, Bernoulli(0.1).
// Its window then keeps growing, and the exponential histogram keeps it in O(M log W) buckets.
// (Measured over 100 other seeds: 1 alarm in all, on 10 million observations.)
TEST(AdwinStationary, NoAlarmOnErrorRateStream) {
  for (std::uint64_t seed : {11u, 12u, 13u}) {
    Adwin adwin;
    EXPECT_EQ(stationary_alarms(adwin, seed, error_rate), 0) << "seed " << seed;
    EXPECT_EQ(adwin.width(), static_cast<std::size_t>(kStationary));
    EXPECT_NEAR(adwin.mean(), 0.1, 0.005);
    const double rows = std::floor(std::log2(kStationary / 5.0 + 1.0)) + 1.0;
    EXPECT_LE(static_cast<double>(adwin.bucket_count()), 5.0 * rows);
  }
}

// The same for a loss-like stream, Gaussian mean 0.5, sigma 0.1 (no alarm over 100 other seeds).
TEST(AdwinStationary, NoAlarmOnLossStream) {
  for (std::uint64_t seed : {21u, 22u, 23u}) {
    Adwin adwin;
    EXPECT_EQ(stationary_alarms(adwin, seed, loss), 0) << "seed " << seed;
    EXPECT_NEAR(adwin.variance(), 0.01, 0.0005);
  }
}

// Page-Hinkley's lambda = 50 is a threshold on the cumulative deviation sum(x - mean - delta):
// on a stationary stream that sum is a random walk with drift -delta per step, and the chance
// that it climbs lambda above its minimum is about exp(-2 delta lambda / sigma^2) per excursion.
// For a loss with sigma 0.1 that is exp(-50): no alarm. (An error rate, sigma^2 = 0.09, gives
// exp(-5.6) per excursion: over 100,000 observations the published defaults alarm, about 2.6
// times on average over 100 seeds.)
TEST(PageHinkleyStationary, NoAlarmOnLossStream) {
  for (std::uint64_t seed : {31u, 32u, 33u}) {
    PageHinkley ph;
    EXPECT_EQ(stationary_alarms(ph, seed, loss), 0) << "seed " << seed;
    EXPECT_EQ(ph.count(), static_cast<std::uint64_t>(kStationary));
    EXPECT_NEAR(ph.mean(), 0.5, 0.002);
    EXPECT_LT(ph.statistic(), 50.0);
  }
}

// --- (c) bad options and non-finite observations are refused ---------------------------------

template <typename Action>
std::string refusal(Action&& action) {
  try {
    action();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no std::invalid_argument";
  return {};
}

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

TEST(AdwinOptionsCheck, RefusesEachBadOptionByName) {
  for (double delta : {0.0, 1.0, -0.5, 2.0, kNaN}) {
    const std::string message = refusal([&] { Adwin(AdwinOptions{.delta = delta}); });
    EXPECT_NE(message.find("'delta'"), std::string::npos) << message;
    EXPECT_NE(message.find("(0, 1)"), std::string::npos) << message;
  }
  EXPECT_NE(
      refusal([] { Adwin(AdwinOptions{.max_buckets = 0}); }).find("'max_buckets' must be >= 1"),
      std::string::npos);
  EXPECT_NE(refusal([] { Adwin(AdwinOptions{.clock = 0}); }).find("'clock' must be >= 1"),
            std::string::npos);
  EXPECT_NE(refusal([] {
              Adwin(AdwinOptions{.min_window_length = 0});
            }).find("'min_window_length' must be >= 1"),
            std::string::npos);
  EXPECT_NO_THROW(Adwin(AdwinOptions{.delta = 0.5, .max_buckets = 1, .clock = 1}));
}

TEST(PageHinkleyOptionsCheck, RefusesEachBadOptionByName) {
  struct Case {
    PageHinkleyOptions options;
    const char* expected;
  };
  const Case cases[] = {
      {{.delta = -0.1}, "'delta' must be finite and >= 0"},
      {{.delta = kNaN}, "'delta' must be finite and >= 0"},
      {{.lambda = 0.0}, "'lambda' must be finite and > 0"},
      {{.lambda = -5.0}, "'lambda' must be finite and > 0"},
      {{.lambda = kInf}, "'lambda' must be finite and > 0"},
      {{.alpha = 0.0}, "'alpha' must be in (0, 1]"},
      {{.alpha = 1.5}, "'alpha' must be in (0, 1]"},
      {{.alpha = kNaN}, "'alpha' must be in (0, 1]"},
      {{.min_instances = 0}, "'min_instances' must be >= 1"},
      {{.direction = static_cast<PageHinkleyDirection>(7)}, "'direction' must be up, down or both"},
  };
  for (const auto& c : cases) {
    const std::string message = refusal([&] { PageHinkley ph(c.options); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
  EXPECT_NO_THROW(PageHinkley(PageHinkleyOptions{.delta = 0.0, .alpha = 1.0}));
}

// A refused observation changes nothing: the detector then goes on exactly like a twin that
// never saw it.
TEST(AdwinInput, NonFiniteObservationRefusedStateKept) {
  Adwin adwin;
  Adwin twin;
  SeededStream stream(5);
  for (int i = 0; i < 100; ++i) {
    const double x = stream.bernoulli(0.3);
    adwin.update(x);
    twin.update(x);
  }
  for (double bad : {kNaN, kInf, -kInf}) {
    const std::string message = refusal([&] { adwin.update(bad); });
    EXPECT_NE(message.find("x must be a finite number"), std::string::npos) << message;
  }
  EXPECT_EQ(adwin.width(), twin.width());
  EXPECT_EQ(adwin.mean(), twin.mean());
  EXPECT_EQ(adwin.variance(), twin.variance());
  EXPECT_EQ(adwin.bucket_count(), twin.bucket_count());
  for (int i = 0; i < 3000; ++i) {
    const double x = stream.bernoulli(i < 1000 ? 0.3 : 0.8);
    ASSERT_EQ(adwin.update(x), twin.update(x)) << "observation " << i;
  }
  EXPECT_GE(adwin.detections(), 1u);
  EXPECT_EQ(adwin.detections(), twin.detections());
  EXPECT_EQ(adwin.width(), twin.width());
}

TEST(PageHinkleyInput, NonFiniteObservationRefusedStateKept) {
  PageHinkley ph;
  for (int i = 0; i < 10; ++i)
    ph.update(0.25 * i);
  const double statistic = ph.statistic();
  const double mean = ph.mean();
  for (double bad : {kNaN, kInf, -kInf}) {
    const std::string message = refusal([&] { ph.update(bad); });
    EXPECT_NE(message.find("x must be a finite number"), std::string::npos) << message;
  }
  EXPECT_EQ(ph.count(), 10u);
  EXPECT_EQ(ph.statistic(), statistic);
  EXPECT_EQ(ph.mean(), mean);
}

// --- (d) reset, and Page-Hinkley by hand -----------------------------------------------------

TEST(AdwinReset, EmptiesTheWindowAndStartsAfresh) {
  Adwin adwin;
  SeededStream stream(77);
  for (int i = 0; i < 4000; ++i)
    adwin.update(stream.bernoulli(i < 2000 ? 0.1 : 0.6));
  const auto detections = adwin.detections();
  ASSERT_GE(detections, 1u);
  adwin.reset();
  EXPECT_EQ(adwin.width(), 0u);
  EXPECT_EQ(adwin.mean(), 0.0);
  EXPECT_EQ(adwin.variance(), 0.0);
  EXPECT_EQ(adwin.bucket_count(), 0u);
  EXPECT_EQ(adwin.detections(), detections);

  Adwin fresh;
  SeededStream again(78);
  for (int i = 0; i < 3000; ++i) {
    const double x = again.bernoulli(i < 1500 ? 0.2 : 0.7);
    ASSERT_EQ(adwin.update(x), fresh.update(x)) << "observation " << i;
  }
  EXPECT_EQ(adwin.width(), fresh.width());
  EXPECT_EQ(adwin.mean(), fresh.mean());
}

// delta 0.5, lambda 3, alpha 1, min_instances 1, upward. With xbar_T the running mean and
// m_T = m_{T-1} + x_T - xbar_T - 0.5:
//   x=0: xbar 0,   m = -0.5,              min -0.5, PH 0
//   x=0: xbar 0,   m = -1,                min -1,   PH 0
//   x=4: xbar 4/3, m = -1 + 8/3 - 0.5 = 7/6,        PH 13/6
//   x=4: xbar 2,   m = 7/6 + 2 - 0.5 = 8/3,         PH 11/3 > 3: alarm, and the test resets.
TEST(PageHinkleyByHand, UpwardSequence) {
  PageHinkley ph(PageHinkleyOptions{.delta = 0.5,
                                    .lambda = 3.0,
                                    .alpha = 1.0,
                                    .min_instances = 1,
                                    .direction = PageHinkleyDirection::up});
  const double xs[] = {0.0, 0.0, 4.0};
  const double statistic[] = {0.0, 0.0, 13.0 / 6.0};
  const double mean[] = {0.0, 0.0, 4.0 / 3.0};
  for (int t = 0; t < 3; ++t) {
    EXPECT_FALSE(ph.update(xs[t])) << "t = " << t + 1;
    EXPECT_NEAR(ph.statistic(), statistic[t], 1e-12) << "t = " << t + 1;
    EXPECT_NEAR(ph.mean(), mean[t], 1e-12) << "t = " << t + 1;
  }
  EXPECT_TRUE(ph.update(4.0));
  EXPECT_EQ(ph.detections(), 1u);
  EXPECT_EQ(ph.count(), 0u);
  EXPECT_EQ(ph.statistic(), 0.0);
  EXPECT_EQ(ph.mean(), 0.0);
}

// The mirror image, downward: n_T = n_{T-1} + x_T - xbar_T + 0.5, PH_T = max n - n_T.
//   x=4: n = 0.5, max 0.5, PH 0;  x=4: n = 1, PH 0;  x=0: xbar 8/3, n = 1 - 8/3 + 0.5 = -7/6,
//   PH 13/6;  x=0: xbar 2, n = -7/6 - 2 + 0.5 = -8/3, PH 11/3 > 3: alarm.
// An upward-only test never alarms on it.
TEST(PageHinkleyByHand, DownwardSequenceAndDirection) {
  PageHinkleyOptions options{.delta = 0.5, .lambda = 3.0, .alpha = 1.0, .min_instances = 1};
  options.direction = PageHinkleyDirection::down;
  PageHinkley down(options);
  options.direction = PageHinkleyDirection::up;
  PageHinkley up(options);
  options.direction = PageHinkleyDirection::both;
  PageHinkley both(options);
  const double xs[] = {4.0, 4.0, 0.0};
  const double statistic[] = {0.0, 0.0, 13.0 / 6.0};
  for (int t = 0; t < 3; ++t) {
    EXPECT_FALSE(down.update(xs[t]));
    EXPECT_FALSE(both.update(xs[t]));
    EXPECT_FALSE(up.update(xs[t]));
    EXPECT_NEAR(down.statistic(), statistic[t], 1e-12) << "t = " << t + 1;
    EXPECT_NEAR(both.statistic(), statistic[t], 1e-12) << "t = " << t + 1;
  }
  EXPECT_TRUE(down.update(0.0));
  EXPECT_TRUE(both.update(0.0));
  EXPECT_FALSE(up.update(0.0));
  EXPECT_NEAR(up.increase_statistic(), 0.0, 1e-12);  // m_T only falls on this sequence
}

// alpha 0.5 halves the past sum at each step: m = -0.5; m = -0.25 - 0.5 = -0.75;
// m = -0.375 + 8/3 - 0.5 = 43/24, min -0.75, PH = 43/24 + 3/4 = 61/24.
TEST(PageHinkleyByHand, ForgettingFactor) {
  PageHinkley ph(PageHinkleyOptions{.delta = 0.5,
                                    .lambda = 3.0,
                                    .alpha = 0.5,
                                    .min_instances = 1,
                                    .direction = PageHinkleyDirection::up});
  ph.update(0.0);
  ph.update(0.0);
  EXPECT_FALSE(ph.update(4.0));
  EXPECT_NEAR(ph.statistic(), 61.0 / 24.0, 1e-12);
}

// The up sequence again with min_instances 5: PH 11/3 at t = 4 is held back; at t = 5 (x = 4,
// xbar 2.4, m = 8/3 + 1.6 - 0.5 = 113/30, PH = 143/30) the alarm comes.
TEST(PageHinkleyByHand, MinInstancesHoldsTheAlarm) {
  PageHinkley ph(PageHinkleyOptions{.delta = 0.5,
                                    .lambda = 3.0,
                                    .alpha = 1.0,
                                    .min_instances = 5,
                                    .direction = PageHinkleyDirection::up});
  for (double x : {0.0, 0.0, 4.0, 4.0})
    EXPECT_FALSE(ph.update(x));
  EXPECT_NEAR(ph.statistic(), 11.0 / 3.0, 1e-12);
  EXPECT_TRUE(ph.update(4.0));
}

TEST(PageHinkleyReset, ForgetsEverythingButTheCount) {
  PageHinkley ph(PageHinkleyOptions{.delta = 0.5, .lambda = 3.0, .alpha = 1.0, .min_instances = 1});
  for (double x : {0.0, 0.0, 4.0, 4.0})
    ph.update(x);
  ph.update(1.0);
  ph.update(3.0);
  ASSERT_NE(ph.statistic(), 0.0);
  ph.reset();
  EXPECT_EQ(ph.count(), 0u);
  EXPECT_EQ(ph.mean(), 0.0);
  EXPECT_EQ(ph.statistic(), 0.0);
  EXPECT_EQ(ph.detections(), 1u);
  // After reset the hand-computed sequence gives the same values as on a fresh test.
  ph.update(0.0);
  ph.update(0.0);
  ph.update(4.0);
  EXPECT_NEAR(ph.statistic(), 13.0 / 6.0, 1e-12);
}

}  // namespace
