// The data_drift trigger with the host's real drift statistics: on Fashion-MNIST test images it
// stays quiet between two disjoint random windows and fires on images rotated by 30 degrees;
// its windows, decisions and refusals on small seeded streams.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <random>

#include "trainvisor/core/idx_reader.hpp"
#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

std::unique_ptr<plugin::Trigger> make_drift_trigger(
    const std::map<std::string, std::string>& params) {
  return make_trigger("data_drift", params);
}

std::string drift_creation_error(const std::map<std::string, std::string>& params) {
  return creation_error("data_drift", params);
}

// ---------------------------------------------------------------------------------------------
// Fashion-MNIST.

constexpr std::size_t kSide = 28, kPixels = kSide * kSide;

const std::vector<float>& fashion_test_images() {
  static const std::vector<float> pixels = [] {
    plugin::IdxArray idx;
    read_idx_file("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", idx);
    std::vector<float> out(idx.bytes.size());
    std::transform(idx.bytes.begin(), idx.bytes.end(), out.begin(),
                   [](std::uint8_t b) { return static_cast<float>(b) / 255.0f; });
    return out;
  }();
  return pixels;
}

// The image turned by `degrees` about its centre, bilinear, black outside.
std::vector<float> rotated(const float* image, double degrees) {
  const double a = degrees * std::numbers::pi / 180, c = std::cos(a), s = std::sin(a);
  const double mid = (kSide - 1) / 2.0;
  std::vector<float> out(kPixels, 0.0f);
  auto at = [&](long y, long x) -> double {
    return (y < 0 || x < 0 || y >= long(kSide) || x >= long(kSide)) ? 0.0 : image[y * kSide + x];
  };
  for (std::size_t y = 0; y < kSide; ++y) {
    for (std::size_t x = 0; x < kSide; ++x) {
      // The source of output pixel (y, x): the inverse rotation.
      const double sx = c * (x - mid) + s * (y - mid) + mid,
                   sy = -s * (x - mid) + c * (y - mid) + mid;
      const long x0 = long(std::floor(sx)), y0 = long(std::floor(sy));
      const double fx = sx - x0, fy = sy - y0;
      out[y * kSide + x] = float((1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x0 + 1)) +
                                 fy * ((1 - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)));
    }
  }
  return out;
}

// Two disjoint random windows of `w` test images, one stream: the reference first, then the
// current window (rotated when `degrees` is not 0), one sample per second.
Batch window_pair(std::uint64_t seed, std::size_t w, double degrees) {
  const std::vector<float>& images = fashion_test_images();
  std::vector<std::size_t> order(images.size() / kPixels);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  Batch b;
  b.rows = 2 * w;
  b.dims = kPixels;
  for (std::size_t r = 0; r < 2 * w; ++r) {
    const float* image = &images[order[r] * kPixels];
    if (r >= w && degrees != 0) {
      const auto turned = rotated(image, degrees);
      b.features.insert(b.features.end(), turned.begin(), turned.end());
    } else {
      b.features.insert(b.features.end(), image, image + kPixels);
    }
    b.time_ns.push_back(kStreamStart + static_cast<std::int64_t>(r) * kSecond);
  }
  return b;
}

// How many of 200 seeded window pairs make the trigger fire (p-value 0.05, MMD, 100
// permutations); each pair is exactly one test.
int firings_over_200_pairs(double degrees) {
  constexpr std::size_t kWindow = 250;
  int fired = 0;
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    auto trigger = make_drift_trigger({{"reference_size", std::to_string(kWindow)},
                                       {"current_size", std::to_string(kWindow)},
                                       {"evaluate_every", std::to_string(kWindow)},
                                       {"p_value", "0.05"},
                                       {"seed", std::to_string(seed)}});
    const plugin::TriggerDecision d = observe(*trigger, window_pair(seed, kWindow, degrees));
    EXPECT_EQ(d.evaluations.size(), 1u) << "seed " << seed;
    fired += d.fired();
  }
  return fired;
}

TEST(DataDriftFashionMnist, FiresInAtMost7PercentOfWindowPairsWithoutDrift) {
  const int fired = firings_over_200_pairs(0);
  std::printf("no drift: fired on %d of 200 window pairs\n", fired);
  EXPECT_LE(fired, 14);
}

TEST(DataDriftFashionMnist, FiresInAtLeast95PercentOfPairsRotatedBy30Degrees) {
  const int fired = firings_over_200_pairs(30);
  std::printf("rotated by 30 degrees: fired on %d of 200 window pairs\n", fired);
  EXPECT_GE(fired, 190);
}

// ---------------------------------------------------------------------------------------------
// Small seeded streams: `rows` samples of 4 features, N(mean, 1) with the mean stepping to
// `shifted_mean` from row `shift_at` on, one sample per second from `first_row`.

Batch gaussian_stream(std::size_t first_row, std::size_t rows, std::size_t shift_at,
                      double shifted_mean, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0, 1);
  Batch b;
  b.rows = rows;
  b.dims = 4;
  for (std::size_t r = first_row; r < first_row + rows; ++r) {
    for (std::size_t f = 0; f < 4; ++f)
      b.features.push_back(float(normal(rng) + (r >= shift_at ? shifted_mean : 0.0)));
    b.time_ns.push_back(kStreamStart + static_cast<std::int64_t>(r) * kSecond);
  }
  return b;
}

std::vector<std::size_t> rows_of(const plugin::TriggerDecision& d, bool fired_only) {
  std::vector<std::size_t> rows;
  for (const auto& e : d.evaluations)
    if (!fired_only || e.fired) rows.push_back(e.row);
  return rows;
}

double stat(const plugin::TriggerEvaluation& e, const std::string& name) {
  for (const auto& s : e.stats)
    if (s.name == name) return s.value;
  throw std::runtime_error("no stat " + name + " in: " + e.reason);
}

const std::map<std::string, std::string> kSmallWindows = {
    {"reference_size", "50"}, {"current_size", "50"}, {"evaluate_every", "50"}};

TEST(DataDrift, TumblingWindowsFireOnAShiftAndTheNewReferenceIsTheShiftedData) {
  auto trigger = make_drift_trigger(kSmallWindows);
  const auto d = observe(*trigger, gaussian_stream(0, 300, 200, 2.0, 1));
  EXPECT_EQ(rows_of(d, false), (std::vector<std::size_t>{99, 149, 199, 249, 299}));
  EXPECT_EQ(rows_of(d, true), (std::vector<std::size_t>{249}));
  const auto& fired = d.evaluations[3];
  EXPECT_LT(stat(fired, "p_value"), 0.05);
  EXPECT_GT(stat(fired, "mmd2"), 0.0);
  EXPECT_EQ(stat(fired, "reference_rows"), 50);
  EXPECT_NE(fired.reason.find("mmd p="), std::string::npos) << fired.reason;
  EXPECT_NE(fired.reason.find("(50 reference, 50 current samples)"), std::string::npos);
}

TEST(DataDrift, AFixedReferenceKeepsFiringOnShiftedData) {
  auto params = kSmallWindows;
  params["reference"] = "fixed";
  auto trigger = make_drift_trigger(params);
  const auto d = observe(*trigger, gaussian_stream(0, 300, 200, 2.0, 1));
  EXPECT_EQ(rows_of(d, true), (std::vector<std::size_t>{249, 299}));
}

TEST(DataDrift, OverlappingWindowsSlide) {
  auto params = kSmallWindows;
  params["overlap"] = "true";
  params["evaluate_every"] = "10";
  params["decision"] = "threshold";  // never fires: every test is counted
  params["threshold"] = "1e9";
  auto trigger = make_drift_trigger(params);
  const auto d = observe(*trigger, gaussian_stream(0, 200, 1000, 0.0, 2));
  // The first test once 50 current samples are in (row 99), then every 10 samples.
  EXPECT_EQ(rows_of(d, false).front(), 99u);
  EXPECT_EQ(rows_of(d, false).size(), 11u);
}

TEST(DataDrift, BatchBoundariesDoNotChangeTheEvaluations) {
  auto whole = make_drift_trigger(kSmallWindows), split = make_drift_trigger(kSmallWindows);
  const auto one = observe(*whole, gaussian_stream(0, 300, 200, 2.0, 3));
  std::vector<std::size_t> rows;
  std::size_t first = 0;
  const Batch full = gaussian_stream(0, 300, 200, 2.0, 3);  // the same stream, cut differently
  for (std::size_t size : {7u, 93u, 1u, 120u, 79u}) {
    Batch part;
    part.rows = size;
    part.dims = 4;
    part.features.assign(full.features.begin() + long(first * 4),
                         full.features.begin() + long((first + size) * 4));
    part.time_ns.assign(full.time_ns.begin() + long(first),
                        full.time_ns.begin() + long(first + size));
    for (std::size_t r : rows_of(observe(*split, part), false))
      rows.push_back(first + r);
    first += size;
  }
  EXPECT_EQ(rows, rows_of(one, false));
}

TEST(DataDrift, ThresholdAndKsDecisions) {
  auto params = kSmallWindows;
  params["decision"] = "threshold";
  params["threshold"] = "0";
  auto by_threshold = make_drift_trigger(params);
  const auto t = observe(*by_threshold, gaussian_stream(0, 100, 1000, 0.0, 4));
  ASSERT_EQ(t.evaluations.size(), 1u);
  EXPECT_EQ(t.evaluations[0].fired, stat(t.evaluations[0], "mmd2") > 0);
  EXPECT_EQ(stat(t.evaluations[0], "threshold"), 0.0);

  params = kSmallWindows;
  params["metric"] = "ks";
  params["correction"] = "fdr";
  auto ks = make_drift_trigger(params);
  const auto k = observe(*ks, gaussian_stream(0, 300, 200, 2.0, 5));
  EXPECT_EQ(rows_of(k, true), (std::vector<std::size_t>{249}));
  EXPECT_GT(stat(k.evaluations[3], "ks_statistic"), 0.5);
  EXPECT_EQ(stat(k.evaluations[3], "features"), 4);
}

TEST(DataDrift, ADynamicThresholdWarmsUpWithAStandInTriggerThenCalibrates) {
  auto params = kSmallWindows;
  params["decision"] = "dynamic_rolling_average";
  params["deviation"] = "0.3";  // MMD^2 of 50 vs 50 samples without drift stays within 0.3
  params["deviation_absolute"] = "true";
  params["warmup_evaluations"] = "4";
  params["warmup_every"] = "170";
  auto trigger = make_drift_trigger(params);
  const auto d = observe(*trigger, gaussian_stream(0, 600, 500, 3.0, 6));
  // Rows 99, 149, 199: warm-up tests 1-3; row 219, 170 samples after the reference was set: the
  // stand-in fires; row 269: warm-up test 4; from then on tests every 50 samples against the
  // calibrated threshold, and the shift at row 500 fires by the first window wholly after it.
  ASSERT_GE(d.evaluations.size(), 6u);
  for (int i : {0, 1, 2, 4})
    EXPECT_NE(d.evaluations[i].reason.find("warm-up test"), std::string::npos) << i;
  EXPECT_EQ(d.evaluations[3].row, 219u);
  EXPECT_TRUE(d.evaluations[3].fired);
  EXPECT_NE(d.evaluations[3].reason.find("warm-up: 170 samples"), std::string::npos);
  const auto fired = rows_of(d, true);
  ASSERT_EQ(fired.size(), 2u);
  // Tests at 519 (20 shifted samples of 50) and 569 (the first window all after the shift).
  EXPECT_GE(fired[1], 519u);
  EXPECT_LE(fired[1], 569u);
  EXPECT_NE(d.evaluations.back().reason.find("the mean + 0.3 of"), std::string::npos)
      << d.evaluations.back().reason;
}

// The quantile threshold of each calibrated test is the (1 - q) quantile (numpy's linear
// interpolation) of the distances of the tests before it, at most dynamic_window of them.
TEST(DataDrift, TheQuantileThresholdIsTheQuantileOfThePastDistances) {
  auto params = kSmallWindows;
  params["decision"] = "dynamic_quantile";
  params["quantile"] = "0.25";
  params["dynamic_window"] = "4";
  params["warmup_evaluations"] = "2";
  params["reference"] = "fixed";
  auto trigger = make_drift_trigger(params);
  const auto d = observe(*trigger, gaussian_stream(0, 800, 100000, 0.0, 13));
  std::vector<double> past;
  std::size_t checked = 0;
  for (const auto& e : d.evaluations) {
    if (past.size() >= 2) {
      std::vector<double> last(past.end() - long(std::min<std::size_t>(past.size(), 4)),
                               past.end());
      std::sort(last.begin(), last.end());
      const double pos = 0.75 * double(last.size() - 1);
      const auto lo = std::size_t(pos);
      const double expect =
          last[lo] + (last[std::min(lo + 1, last.size() - 1)] - last[lo]) * (pos - double(lo));
      EXPECT_NEAR(stat(e, "threshold"), expect, 1e-12) << e.reason;
      EXPECT_EQ(e.fired, stat(e, "mmd2") > expect);
      ++checked;
    }
    past.push_back(stat(e, "mmd2"));
  }
  EXPECT_GE(checked, 10u);
}

TEST(DataDrift, TimeWindows) {
  auto trigger = make_drift_trigger(
      {{"windowing", "time"}, {"reference_s", "40"}, {"current_s", "40"}, {"evaluate_every", "1"}});
  const auto d = observe(*trigger, gaussian_stream(0, 200, 1000, 0.0, 7));
  // Reference: seconds 0-39; current windows of 40 s, tumbling: tests at rows 80, 121, 162.
  EXPECT_EQ(rows_of(d, false), (std::vector<std::size_t>{80, 121, 162}));
  EXPECT_EQ(stat(d.evaluations[0], "reference_rows"), 40);
}

TEST(DataDrift, RefusedBatchesLeaveTheTriggerAsItWas) {
  auto refused = make_drift_trigger(kSmallWindows), twin = make_drift_trigger(kSmallWindows);
  Batch start = gaussian_stream(0, 80, 1000, 0, 8);
  observe(*refused, start);
  observe(*twin, start);
  Batch bad = gaussian_stream(80, 30, 1000, 0, 9);
  bad.features[5] = std::nanf("");
  EXPECT_EQ(refusal(*refused, bad), "features: row 1 feature 1 is nan (features must be finite)");
  Batch shape = gaussian_stream(80, 30, 1000, 0, 9);
  shape.features.pop_back();
  EXPECT_EQ(refusal(*refused, shape), "features: 119 values for 30 rows of 4 dims (expected 120)");
  shape = gaussian_stream(80, 30, 1000, 0, 9);
  shape.time_ns.pop_back();
  EXPECT_EQ(refusal(*refused, shape), "time_ns: 29 timestamps for 30 rows");
  shape = gaussian_stream(80, 30, 1000, 0, 9);
  shape.labels = {1, 2};
  EXPECT_NE(refusal(*refused, shape).find("labels: 2 labels for 30 rows"), std::string::npos);
  shape = gaussian_stream(70, 30, 1000, 0, 9);  // starts 10 s before the last sample seen
  EXPECT_NE(refusal(*refused, shape).find("(stream time never goes back)"), std::string::npos);
  Batch narrow = gaussian_stream(80, 30, 1000, 0, 9);
  narrow.dims = 2;
  narrow.rows = 60;
  narrow.time_ns.resize(60, narrow.time_ns.back());
  EXPECT_NE(refusal(*refused, narrow).find("dims: 2 features per sample"), std::string::npos);
  const Batch rest = gaussian_stream(80, 220, 150, 2.0, 10);
  const auto a = observe(*refused, rest), b = observe(*twin, rest);
  ASSERT_EQ(a.evaluations.size(), b.evaluations.size());
  for (std::size_t i = 0; i < a.evaluations.size(); ++i)
    EXPECT_EQ(a.evaluations[i].reason, b.evaluations[i].reason);
}

TEST(DataDrift, AReferenceWithNoSpreadIsReportedAndReplacedByTheNextWindow) {
  auto trigger = make_drift_trigger(kSmallWindows);
  Batch flat = gaussian_stream(0, 50, 1000, 0, 11);
  std::fill(flat.features.begin(), flat.features.end(), 0.5f);
  const auto d = observe(*trigger, flat);
  ASSERT_EQ(d.evaluations.size(), 1u);
  EXPECT_FALSE(d.evaluations[0].fired);
  EXPECT_NE(d.evaluations[0].reason.find("no reference yet: reference: all its rows are equal"),
            std::string::npos);
  const auto next = observe(*trigger, gaussian_stream(50, 100, 1000, 0, 12));
  EXPECT_EQ(rows_of(next, false), (std::vector<std::size_t>{99}));  // reference 50-99, test at 149
}

TEST(DataDrift, BadParametersAreRefusedNamingThem) {
  EXPECT_NE(drift_creation_error({{"permutations", "0"}}).find("permutations"), std::string::npos);
  EXPECT_NE(drift_creation_error({{"p_value", "1"}}).find("p_value: must be below 1"),
            std::string::npos);
  EXPECT_NE(drift_creation_error({{"metric", "wasserstein"}}).find("metric"), std::string::npos);
  EXPECT_NE(drift_creation_error({{"reference_size", "1"}}).find("reference_size"),
            std::string::npos);
}

}  // namespace
}  // namespace tv::triggers::test
