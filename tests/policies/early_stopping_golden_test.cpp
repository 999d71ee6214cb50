// early_stopping against Keras: tests/golden/early_stopping.json holds, for each case, the epoch
// at which keras.callbacks.EarlyStopping stops (written by tests/golden/make_early_stopping.py,
// which restates Keras' rules with the lines they come from). The plugin, fed the same values one
// epoch at a time or in batches, must stop at exactly that epoch, with the same best and wait.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy_harness.hpp"

namespace tv::policies::test {
namespace {

using plugin::Decision;
using plugin::TelemetryPoint;

const nlohmann::json& golden_cases() {
  static const nlohmann::json cases = [] {
    const std::string path = std::string(TV_GOLDEN_DIR) + "/early_stopping.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in).at("cases");
  }();
  return cases;
}

// JSON has no NaN or infinity; the file writes them as strings.
double number(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  const std::string text = value.get<std::string>();
  if (text == "nan") return kNaN;
  if (text == "inf") return kInf;
  if (text == "-inf") return -kInf;
  throw std::invalid_argument("not a number: " + text);
}

// The plugin's own number format in reasons ("%.6g"), to find the expected values in them.
std::string reason_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

PolicyRun run_for(const nlohmann::json& golden) {
  const nlohmann::json& p = golden.at("params");
  const bool use_baseline = !p.at("baseline").is_null();
  return PolicyRun(TV_POLICY_EARLY_STOPPING,
                   {{"monitor", golden.at("monitor").get<std::string>()},
                    {"mode", p.at("mode").get<std::string>()},
                    {"patience", p.at("patience").get<std::int64_t>()},
                    {"min_delta", p.at("min_delta").get<double>()},
                    {"use_baseline", use_baseline},
                    {"baseline", use_baseline ? p.at("baseline").get<double>() : 0.0},
                    {"start_from_epoch", p.at("start_from_epoch").get<std::int64_t>()}});
}

// The record of one Keras epoch: an evaluation for val_loss and val_accuracy (the other field
// holding garbage), a training record for loss.
TelemetryPoint epoch_record(const nlohmann::json& golden, std::uint64_t step, double value) {
  const std::string monitor = golden.at("monitor").get<std::string>();
  if (monitor == "val_loss") return eval_point(step, value, -1e9);
  if (monitor == "val_accuracy") return eval_point(step, 1e9, value);
  return train_point(step, value);
}

class EarlyStoppingGolden : public ::testing::TestWithParam<int> {
 protected:
  const nlohmann::json& golden() const { return golden_cases().at(GetParam()); }
  std::vector<double> values() const {
    std::vector<double> out;
    for (const nlohmann::json& v : golden().at("values"))
      out.push_back(number(v));
    return out;
  }
  // -1 where Keras never stops.
  int keras_stop() const {
    const nlohmann::json& stop = golden().at("stopped_epoch");
    return stop.is_null() ? -1 : stop.get<int>();
  }

  // The stop carries the early-stop write and a reason naming the epoch's value, Keras' best and
  // its wait at that epoch.
  void expect_keras_stop(const Decision& decision) const {
    ASSERT_TRUE(decision.stop);
    ASSERT_EQ(decision.writes.size(), 1u);
    EXPECT_EQ(decision.writes[0].path, kEarlyStopKey);
    EXPECT_EQ(std::get<bool>(decision.writes[0].value), true);
    const std::string noun = golden().at("monitor") == "loss" ? " records" : " evaluations";
    const std::string expected_start =
        golden().at("monitor").get<std::string>() + " " + reason_number(values().at(keras_stop())) +
        " has not improved on best " + reason_number(number(golden().at("best_at_stop")));
    EXPECT_EQ(decision.stop_reason.rfind(expected_start, 0), 0u) << decision.stop_reason;
    const std::string expected_wait =
        " for " + std::to_string(golden().at("wait_at_stop").get<int>()) + noun + " (patience " +
        std::to_string(golden().at("params").at("patience").get<int>()) + ")";
    EXPECT_NE(decision.stop_reason.find(expected_wait), std::string::npos)
        << decision.stop_reason << " lacks" << expected_wait;
  }
};

TEST(EarlyStoppingGoldenFile, HoldsEveryCase) {
  EXPECT_EQ(golden_cases().size(), 48u);
}

TEST_P(EarlyStoppingGolden, StopsAtKerasEpochOneEpochPerCall) {
  SCOPED_TRACE(golden().dump());
  PolicyRun run = run_for(golden());
  const std::vector<double> v = values();
  int stopped_at = -1;
  for (std::size_t i = 0; i < v.size(); ++i) {
    SCOPED_TRACE("epoch " + std::to_string(i));
    const Decision decision = run.feed(epoch_record(golden(), i, v[i]));
    if (stopped_at < 0 && decision.stop) {
      stopped_at = static_cast<int>(i);
      if (stopped_at == keras_stop()) expect_keras_stop(decision);
    } else {
      EXPECT_FALSE(decision.stop);
      EXPECT_TRUE(decision.writes.empty());
    }
  }
  EXPECT_EQ(stopped_at, keras_stop());
}

// Batches of three epochs; for the validation metrics, training records in between, which are
// no epochs of Keras.
TEST_P(EarlyStoppingGolden, StopsAtKerasEpochWhenRecordsArriveInBatches) {
  SCOPED_TRACE(golden().dump());
  PolicyRun run = run_for(golden());
  const std::vector<double> v = values();
  const bool interleave = golden().at("monitor") != "loss";
  constexpr int kEpochsPerBatch = 3;
  const int expected_batch = keras_stop() < 0 ? -1 : keras_stop() / kEpochsPerBatch;
  int stopped_in_batch = -1;
  for (std::size_t first = 0; first < v.size(); first += kEpochsPerBatch) {
    std::vector<TelemetryPoint> batch;
    for (std::size_t i = first; i < std::min<std::size_t>(first + kEpochsPerBatch, v.size()); ++i) {
      if (interleave) batch.push_back(train_point(10 * i, 1.0));
      batch.push_back(epoch_record(golden(), 10 * i + 5, v[i]));
      if (interleave) batch.push_back(train_point(10 * i + 6, 1e9));
    }
    const Decision decision = run.feed(batch);
    const int batch_index = static_cast<int>(first) / kEpochsPerBatch;
    if (stopped_in_batch < 0 && decision.stop) {
      stopped_in_batch = batch_index;
      if (batch_index == expected_batch) expect_keras_stop(decision);
    } else {
      EXPECT_FALSE(decision.stop) << "batch " << batch_index;
    }
  }
  EXPECT_EQ(stopped_in_batch, expected_batch);
}

INSTANTIATE_TEST_SUITE_P(Keras, EarlyStoppingGolden,
                         ::testing::Range(0, static_cast<int>(golden_cases().size())),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return golden_cases().at(info.param).at("name").get<std::string>();
                         });

}  // namespace
}  // namespace tv::policies::test
