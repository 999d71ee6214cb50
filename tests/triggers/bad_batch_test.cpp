// Every trigger refuses a batch it cannot use with a message naming the field, and a refused
// batch leaves it as it was: after the refusals, the stream goes on exactly as if the bad
// batches had never been offered.
#include <gtest/gtest.h>

#include <limits>
#include <ostream>

#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

struct Config {
  std::string plugin;
  std::map<std::string, std::string> params;
};

void PrintTo(const Config& config, std::ostream* out) {
  *out << config.plugin;
}

// Each fires on the third sample, or at 10 s of stream time.
const Config kTime = {"time", {{"every_s", "10"}}};
const Config kDataCount = {"data_count", {{"every", "3"}}};
const Config kEnsemble = {"ensemble",
                          {{"members", "data_count(every=3); time(every_s=10)"}, {"mode", "any"}}};

class BadBatch : public testing::TestWithParam<Config> {
 protected:
  // Two good samples at 0 s and 5 s; the third, at 10 s, fires every config.
  void SetUp() override {
    trigger_ = make_trigger(GetParam().plugin, GetParam().params);
    EXPECT_TRUE(fired_rows(observe(*trigger_, batch_at({kStreamStart, kStreamStart + 5 * kSecond})))
                    .empty());
  }
  // The state is as before the refusals: the 10 s sample fires at once.
  void TearDown() override {
    EXPECT_EQ(fired_rows(observe(*trigger_, batch_at({kStreamStart + 10 * kSecond}))),
              (std::vector<std::size_t>{0}));
  }
  std::string refused(const Batch& batch) { return refusal(*trigger_, batch); }

  std::unique_ptr<plugin::Trigger> trigger_;
};

// Times from 6 s on, so that a batch accepted by mistake crosses the 10 s boundary or the third
// sample, and the check in TearDown fails.
Batch later(std::size_t rows, std::size_t dims = 2) {
  return evenly_spaced(rows, kStreamStart + 6 * kSecond, kSecond, dims);
}

TEST_P(BadBatch, FeaturesThatAreNotRowsTimesDims) {
  Batch b = later(5);
  b.features.pop_back();
  EXPECT_EQ(refused(b), "features: 9 values for 5 rows of 2 dims (expected 10)");
  b = later(5);
  b.dims = 3;
  EXPECT_EQ(refused(b), "features: 10 values for 5 rows of 3 dims (expected 15)");
}

TEST_P(BadBatch, NotOneTimestampPerRow) {
  Batch b = later(5);
  b.time_ns.pop_back();
  EXPECT_EQ(refused(b), "time_ns: 4 timestamps for 5 rows");
}

TEST_P(BadBatch, LabelsNeitherAbsentNorOnePerRow) {
  Batch b = later(5);
  b.labels = {1, 0};
  EXPECT_EQ(refused(b), "labels: 2 labels for 5 rows (expected none or 5)");
}

TEST_P(BadBatch, TimeGoingBackWithinTheBatch) {
  Batch b = later(5);
  std::swap(b.time_ns[2], b.time_ns[3]);
  EXPECT_EQ(refused(b), "time_ns: row 3 at " + std::to_string(kStreamStart + 8 * kSecond) +
                            " ns is before row 2 at " + std::to_string(kStreamStart + 9 * kSecond) +
                            " ns (stream time never goes back)");
}

TEST_P(BadBatch, TimeGoingBackAcrossBatches) {
  EXPECT_EQ(refused(evenly_spaced(5, kStreamStart + 4 * kSecond, kSecond)),
            "time_ns: row 0 at " + std::to_string(kStreamStart + 4 * kSecond) +
                " ns is before the previous batch's last sample at " +
                std::to_string(kStreamStart + 5 * kSecond) + " ns (stream time never goes back)");
}

// The triggers that compute with the features, or may have members that do. Counting and timing
// ignore them (FeaturesAreNoneOfItsBusiness in their tests).
class BadFeatures : public BadBatch {};

TEST_P(BadFeatures, DimsChangingBetweenBatches) {
  EXPECT_EQ(refused(later(5, 3)), "dims: 3 features per sample, earlier batches had 2");
}

TEST_P(BadFeatures, NonFiniteFeatures) {
  Batch b = later(5);
  b.features[3] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(refused(b), "features: row 1 feature 1 is inf (features must be finite)");
}

std::string config_name(const testing::TestParamInfo<Config>& info) {
  return info.param.plugin;
}

INSTANTIATE_TEST_SUITE_P(Triggers, BadBatch, testing::Values(kTime, kDataCount, kEnsemble),
                         config_name);
INSTANTIATE_TEST_SUITE_P(Triggers, BadFeatures, testing::Values(kEnsemble), config_name);

}  // namespace
}  // namespace tv::triggers::test
