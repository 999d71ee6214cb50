// Tests of the four supervisor policies, loaded from their real plugin libraries: the plugin
// contract every one of them keeps, plateau against PyTorch's golden learning rates, and
// hand-computed sequences for grad_explosion, divergence and early_stopping.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "policy_harness.hpp"

namespace tv::policies::test {
namespace {

using plugin::Decision;
using ValueType = plugin::ParamType;
using plugin::TelemetryPoint;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

void expect_no_action(const Decision& decision) {
  EXPECT_TRUE(decision.writes.empty());
  EXPECT_FALSE(decision.stop);
  EXPECT_EQ(decision.stop_reason, "");
}

// A decision that only sets the learning rate.
void expect_learning_rate_write(const Decision& decision, double value, const std::string& reason) {
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_EQ(decision.writes[0].path, kLearningRateKey);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), value);
  EXPECT_EQ(decision.writes[0].reason, reason);
  EXPECT_FALSE(decision.stop);
  EXPECT_EQ(decision.stop_reason, "");
}

// --------------------------------------------------------------------------------------------
// The plugin contract, for each of the four.

struct PolicyLibrary {
  const char* name;
  const char* path;
};

const PolicyLibrary kPolicyLibraries[] = {
    {"plateau", TV_POLICY_PLATEAU},
    {"grad_explosion", TV_POLICY_GRAD_EXPLOSION},
    {"divergence", TV_POLICY_DIVERGENCE},
    {"early_stopping", TV_POLICY_EARLY_STOPPING},
};

class EveryPolicyPlugin : public ::testing::TestWithParam<PolicyLibrary> {};

TEST_P(EveryPolicyPlugin, DescribesItselfAsAVersionedPolicyOfItsName) {
  const plugin::Descriptor descriptor = load_policy_plugin(GetParam().path).describe();
  EXPECT_EQ(descriptor.kind, plugin::Kind::kPolicy);
  EXPECT_EQ(descriptor.name, GetParam().name);
  EXPECT_EQ(descriptor.version, "1.0.0");
  EXPECT_FALSE(descriptor.summary.empty());
}

TEST_P(EveryPolicyPlugin, DeclaresEveryParamWithHelpRangesAndAValidDefault) {
  const plugin::Descriptor descriptor = load_policy_plugin(GetParam().path).describe();
  bool has_dry_run = false;
  for (const plugin::ParamSpec& spec : descriptor.params) {
    SCOPED_TRACE(spec.key);
    EXPECT_FALSE(spec.help.empty());
    if (spec.key == "dry_run") {
      has_dry_run = true;
      ASSERT_EQ(spec.type, ValueType::kBool);
      EXPECT_FALSE(std::get<bool>(spec.default_value));
    }
    if (spec.type == ValueType::kFloat64 || spec.type == ValueType::kInt64) {
      ASSERT_TRUE(spec.min.has_value());
      ASSERT_TRUE(spec.max.has_value());
      const double value = spec.type == ValueType::kFloat64
                               ? std::get<double>(spec.default_value)
                               : static_cast<double>(std::get<std::int64_t>(spec.default_value));
      EXPECT_LE(*spec.min, value);
      EXPECT_LE(value, *spec.max);
    }
    if (spec.type == ValueType::kString) {
      const std::string& value = std::get<std::string>(spec.default_value);
      EXPECT_NE(std::find(spec.allowed.begin(), spec.allowed.end(), value), spec.allowed.end());
    }
  }
  EXPECT_TRUE(has_dry_run);
}

TEST_P(EveryPolicyPlugin, CreatesNothingForAHostOfAnotherAbi) {
  boost::dll::shared_library library(GetParam().path);
  auto& factory = library.get_alias<plugin::FactoryFn>(plugin::kFactoryAlias);
  plugin::FactoryCall call;
  call.host_abi_version = plugin::kAbiVersion + 1;
  factory(&call);
  EXPECT_EQ(call.plugin, nullptr);
  EXPECT_EQ(call.plugin_abi_version, plugin::kAbiVersion);
}

TEST_P(EveryPolicyPlugin, ReportsIncompleteParamsAsAnErrorNamingTheKey) {
  plugin::PolicyPlugin& policy_plugin = load_policy_plugin(GetParam().path);
  plugin::Params params = params_for(policy_plugin.describe());
  params.erase("dry_run");
  std::string error;
  EXPECT_EQ(policy_plugin.create(params, error), nullptr);
  EXPECT_NE(error.find("'dry_run'"), std::string::npos) << error;
}

TEST_P(EveryPolicyPlugin, DecidesNothingWhenNoRecordIsNew) {
  PolicyRun run(GetParam().path);
  const std::vector<TelemetryPoint> history = {train_point(1, kNaN, kNaN),
                                               eval_point(2, kNaN, kNaN)};
  expect_no_action(run.policy().observe({history, history.size(), run.config, {}}));
  expect_no_action(run.policy().observe({history, history.size() + 5, run.config, {}}));
  expect_no_action(run.policy().observe({{}, 0, run.config, {}}));
}

INSTANTIATE_TEST_SUITE_P(Policies, EveryPolicyPlugin, ::testing::ValuesIn(kPolicyLibraries),
                         [](const auto& info) { return std::string(info.param.name); });

// --------------------------------------------------------------------------------------------
// plateau against torch 1.13's ReduceLROnPlateau.

const nlohmann::json& plateau_golden_cases() {
  static const nlohmann::json cases = [] {
    const std::string path = std::string(TV_GOLDEN_DIR) + "/reduce_lr_on_plateau.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path);
    return nlohmann::json::parse(in).at("cases");
  }();
  return cases;
}

// Mode max cases watch val_accuracy, min cases val_loss, so that both fields are exercised.
PolicyRun plateau_run_for(const nlohmann::json& golden) {
  const nlohmann::json& p = golden.at("params");
  const std::string mode = p.at("mode").get<std::string>();
  return PolicyRun(TV_POLICY_PLATEAU,
                   {{"monitor", mode == "max" ? "val_accuracy" : "val_loss"},
                    {"mode", mode},
                    {"factor", p.at("factor").get<double>()},
                    {"patience", p.at("patience").get<std::int64_t>()},
                    {"cooldown", p.at("cooldown").get<std::int64_t>()},
                    {"threshold", p.at("threshold").get<double>()},
                    {"threshold_mode", p.at("threshold_mode").get<std::string>()},
                    {"min_lr", p.at("min_lr").get<double>()},
                    {"eps", p.at("eps").get<double>()}},
                   {{kLearningRateKey, golden.at("initial_lr").get<double>()}});
}

TelemetryPoint plateau_eval(const nlohmann::json& golden, std::uint64_t step, double metric) {
  return golden.at("params").at("mode") == "max" ? eval_point(step, 1e9, metric)
                                                 : eval_point(step, metric, -1e9);
}

void expect_learning_rate(double actual, double expected) {
  EXPECT_NEAR(actual, expected, 1e-12 * std::abs(expected));
}

TEST(PlateauGoldenFile, HoldsThirtyCases) {
  EXPECT_EQ(plateau_golden_cases().size(), 30u);
}

class PlateauGolden : public ::testing::TestWithParam<int> {
 protected:
  const nlohmann::json& golden() const { return plateau_golden_cases().at(GetParam()); }
};

TEST_P(PlateauGolden, MatchesTorchOneEvaluationPerCall) {
  SCOPED_TRACE(golden().at("sequence").get<std::string>() + " " + golden().at("params").dump());
  PolicyRun run = plateau_run_for(golden());
  const auto& metrics = golden().at("metrics");
  const auto& expected = golden().at("lr_after_each_step");
  ASSERT_EQ(metrics.size(), expected.size());
  for (std::size_t i = 0; i < metrics.size(); ++i) {
    SCOPED_TRACE("step " + std::to_string(i));
    const Decision decision = run.feed(plateau_eval(golden(), i, metrics[i].get<double>()));
    EXPECT_FALSE(decision.stop);
    expect_learning_rate(run.learning_rate(), expected[i].get<double>());
  }
}

// Batches of records, training records in between: only evaluations are scheduler steps, and
// several reductions in one batch collapse into one write of the last value.
TEST_P(PlateauGolden, MatchesTorchWhenEvaluationsArriveInBatches) {
  SCOPED_TRACE(golden().at("sequence").get<std::string>() + " " + golden().at("params").dump());
  PolicyRun run = plateau_run_for(golden());
  const auto& metrics = golden().at("metrics");
  const auto& expected = golden().at("lr_after_each_step");
  constexpr std::size_t kEvaluationsPerBatch = 3;
  for (std::size_t first = 0; first < metrics.size(); first += kEvaluationsPerBatch) {
    std::vector<TelemetryPoint> batch;
    const std::size_t end = std::min(first + kEvaluationsPerBatch, metrics.size());
    for (std::size_t i = first; i < end; ++i) {
      batch.push_back(train_point(10 * i, 1.0));
      batch.push_back(plateau_eval(golden(), 10 * i + 5, metrics[i].get<double>()));
    }
    const Decision decision = run.feed(batch);
    EXPECT_LE(decision.writes.size(), 1u);
    SCOPED_TRACE("after evaluation " + std::to_string(end - 1));
    expect_learning_rate(run.learning_rate(), expected[end - 1].get<double>());
  }
}

INSTANTIATE_TEST_SUITE_P(Torch113, PlateauGolden, ::testing::Range(0, 30));

TEST(Plateau, NamesTheSignalAndTheChangeInItsReason) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{1}}});
  expect_no_action(run.feed(eval_point(100, 0.41)));
  expect_no_action(run.feed(eval_point(200, 0.4123)));
  expect_learning_rate_write(run.feed(eval_point(300, 0.42)), 0.01,
                             "val_loss 0.42 has not improved on 0.41 for 2 evaluations "
                             "(patience 1): learning_rate 0.1 -> 0.01");
}

TEST(Plateau, CountsOnlyEvaluationsWhenWatchingAValidationMetric) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{0}}});
  expect_no_action(run.feed(eval_point(100, 1.0)));
  for (std::uint64_t step = 101; step < 110; ++step) {
    expect_no_action(run.feed(train_point(step, 5.0)));
  }
  const Decision decision = run.feed(eval_point(200, 1.0));
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_DOUBLE_EQ(run.learning_rate(), 0.01);
}

TEST(Plateau, CountsEveryRecordWhenWatchingTheTrainingLoss) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"monitor", "loss"}, {"patience", std::int64_t{1}}});
  expect_no_action(run.feed(train_point(1, 2.0)));
  expect_no_action(run.feed(train_point(2, 2.0)));
  const Decision decision = run.feed(train_point(3, 2.0));
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_NE(decision.writes[0].reason.find("loss 2 has not improved on 2 for 2 records"),
            std::string::npos)
      << decision.writes[0].reason;
}

// The supervisor passes the whole history; records before first_new were seen already.
TEST(Plateau, StepsOnlyOnRecordsFromFirstNew) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{2}}});
  const std::vector<TelemetryPoint> history = {eval_point(1, 1.0), eval_point(2, 5.0),
                                               eval_point(3, 5.0)};
  const std::span<const TelemetryPoint> all(history);
  expect_no_action(run.policy().observe({all.first(2), 0, run.config, {}}));
  for (int repeat = 0; repeat < 3; ++repeat) {
    expect_no_action(run.policy().observe({all.first(2), 2, run.config, {}}));
  }
  // Two bad evaluations so far: patience 2 is not exceeded yet.
  expect_no_action(run.policy().observe({all, 2, run.config, {}}));
  const std::vector<TelemetryPoint> longer = {history[0], history[1], history[2],
                                              eval_point(4, 5.0)};
  EXPECT_EQ(run.policy().observe({longer, 3, run.config, {}}).writes.size(), 1u);
}

// The issue this pins: a human set 0.08 between two reductions, and the policy scaled the rate it
// remembered, walking the human's value back down. It scales the live rate.
TEST(Plateau, ReducesFromTheLiveRateNotFromItsLastProposal) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{0}}});
  run.feed(eval_point(1, 1.0));
  Decision decision = run.feed(eval_point(2, 1.0));
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), 0.01);
  run.config[kLearningRateKey] = 0.08;  // a human's write, past its hold
  decision = run.feed(eval_point(3, 1.0));
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), 0.008);
}

// While a human holds the rate, plateau proposes nothing, says why in its note, and reduces from
// the live (human's) rate once the hold ends: its counters did not move meanwhile.
TEST(Plateau, YieldsToAHumanHoldAndSaysSo) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{1}}});
  run.feed(eval_point(1, 1.0));
  run.config[kLearningRateKey] = 0.08;
  run.holds = {
      {kLearningRateKey, "human:ana", 7, 0.08, 2, "for 1 more evaluation or until step 5002"}};
  run.feed(eval_point(2, 1.0));
  Decision decision = run.feed(eval_point(3, 1.0));
  EXPECT_TRUE(decision.writes.empty());
  EXPECT_EQ(decision.note,
            "learning_rate held by human:ana's write of revision 7 (0.08) for 1 more evaluation "
            "or until step 5002: not reduced (val_loss 1 has not improved on 1 for 2 "
            "evaluations (patience 1))");
  run.holds.clear();
  decision = run.feed(eval_point(4, 1.0));
  expect_learning_rate_write(decision, 0.008,
                             "val_loss 1 has not improved on 1 for 3 evaluations (patience 1): "
                             "learning_rate 0.08 -> 0.008");
}

// Under a freeze every reduction is refused: the policy does not walk the rate down in its head.
// It proposes the same value from the live rate each time (the hub counts those as one row), and
// the first write after the freeze is one reduction of the live rate.
TEST(Plateau, ARefusedReductionDoesNotAdvanceItsState) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{0}}, {"cooldown", std::int64_t{3}}});
  run.fate = plugin::WriteFate::kFrozen;
  run.feed(eval_point(1, 1.0));
  for (std::uint64_t step = 2; step < 8; ++step) {
    // No cooldown started by a refused write: every evaluation proposes again, the same value.
    const Decision decision = run.feed(eval_point(step, 1.0));
    ASSERT_EQ(decision.writes.size(), 1u) << "step " << step;
    EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), 0.01);
  }
  run.fate = plugin::WriteFate::kApplied;
  EXPECT_DOUBLE_EQ(std::get<double>(run.feed(eval_point(8, 1.0)).writes.at(0).value), 0.01);
  EXPECT_DOUBLE_EQ(run.learning_rate(), 0.01);
  // Applied: now the cooldown holds it back.
  for (std::uint64_t step = 9; step < 12; ++step)
    expect_no_action(run.feed(eval_point(step, 1.0)));
}

TEST(Plateau, InDryRunStillProposesButMarksEveryWrite) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{0}}, {"dry_run", true}});
  run.apply_writes = false;
  run.feed(eval_point(1, 1.0));
  const Decision decision = run.feed(eval_point(2, 1.5));
  EXPECT_TRUE(decision.dry_run);  // the supervisor reports these writes and applies none
  expect_learning_rate_write(decision, 0.01,
                             "dry run: val_loss 1.5 has not improved on 1 for 1 evaluations "
                             "(patience 0): learning_rate 0.1 -> 0.01");
}

TEST(Plateau, LeavesAJobWithoutALearningRateAlone) {
  PolicyRun run(TV_POLICY_PLATEAU, {{"patience", std::int64_t{0}}}, {});
  for (std::uint64_t step = 1; step < 5; ++step)
    expect_no_action(run.feed(eval_point(step, 1.0)));
}

TEST(Plateau, RefusesAFactorThatIsNoReduction) {
  plugin::PolicyPlugin& plateau = load_policy_plugin(TV_POLICY_PLATEAU);
  for (const double factor : {1.0, 0.0}) {
    std::string error;
    EXPECT_EQ(plateau.create(params_for(plateau.describe(), {{"factor", factor}}), error), nullptr);
    EXPECT_NE(error.find("'factor'"), std::string::npos) << error;
  }
}

// --------------------------------------------------------------------------------------------
// grad_explosion (defaults: threshold 10, lr_factor 0.5, clip_value 1, cooldown_steps 100).

const plugin::ConfigView kUnclippedConfig = {{kLearningRateKey, 0.1}, {kGradClipMaxKey, 0.0}};

TEST(GradExplosion, LowersTheLearningRateAndClipsOnASpike) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, kUnclippedConfig);
  expect_no_action(run.feed(train_point(1199, 0.5, 3.0)));
  const Decision decision = run.feed(train_point(1200, 0.5, 57.5));
  ASSERT_EQ(decision.writes.size(), 2u);
  EXPECT_EQ(decision.writes[0].path, kLearningRateKey);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), 0.05);
  EXPECT_EQ(decision.writes[0].reason,
            "grad_norm 57.5 > threshold 10 at step 1200: learning_rate 0.1 -> 0.05");
  EXPECT_EQ(decision.writes[1].path, kGradClipMaxKey);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[1].value), 1.0);
  EXPECT_EQ(decision.writes[1].reason,
            "grad_norm 57.5 > threshold 10 at step 1200: grad_clip_max off -> 1");
  EXPECT_FALSE(decision.stop);
}

TEST(GradExplosion, ANormAtTheThresholdIsNoSpike) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, kUnclippedConfig);
  expect_no_action(run.feed(train_point(1, 0.5, 10.0)));
}

TEST(GradExplosion, ANonFiniteNormIsASpike) {
  for (const double norm : {kNaN, kInf, -kInf}) {
    PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, kUnclippedConfig);
    const Decision decision = run.feed(train_point(7, 0.5, norm));
    ASSERT_EQ(decision.writes.size(), 2u);
    EXPECT_NE(decision.writes[0].reason.find("is not finite at step 7"), std::string::npos)
        << decision.writes[0].reason;
    EXPECT_DOUBLE_EQ(run.learning_rate(), 0.05);
  }
}

TEST(GradExplosion, TightensClippingButNeverLoosensIt) {
  {
    PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, {{kLearningRateKey, 0.1}, {kGradClipMaxKey, 0.5}});
    const Decision decision = run.feed(train_point(1, 0.5, 50.0));
    ASSERT_EQ(decision.writes.size(), 1u);
    EXPECT_EQ(decision.writes[0].path, kLearningRateKey);
  }
  {
    PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, {{kLearningRateKey, 0.1}, {kGradClipMaxKey, 5.0}});
    const Decision decision = run.feed(train_point(1, 0.5, 50.0));
    ASSERT_EQ(decision.writes.size(), 2u);
    EXPECT_EQ(decision.writes[1].reason,
              "grad_norm 50 > threshold 10 at step 1: grad_clip_max 5 -> 1");
  }
  {
    PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, {{kLearningRateKey, 0.1}});
    const Decision decision = run.feed(train_point(1, 0.5, 50.0));
    ASSERT_EQ(decision.writes.size(), 2u);
    EXPECT_DOUBLE_EQ(std::get<double>(run.config.at(kGradClipMaxKey)), 1.0);
  }
}

TEST(GradExplosion, IgnoresFurtherSpikesForCooldownSteps) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, kUnclippedConfig);
  EXPECT_EQ(run.feed(train_point(1000, 0.5, 50.0)).writes.size(), 2u);
  expect_no_action(run.feed(train_point(1050, 0.5, 50.0)));
  expect_no_action(run.feed(train_point(1100, 0.5, 50.0)));
  // Clipping is already at clip_value: only the learning rate moves again.
  expect_learning_rate_write(
      run.feed(train_point(1101, 0.5, 50.0)), 0.025,
      "grad_norm 50 > threshold 10 at step 1101: learning_rate 0.05 -> 0.025");
  EXPECT_DOUBLE_EQ(run.learning_rate(), 0.025);
}

TEST(GradExplosion, AJobResumedFromAnEarlierStepEndsTheCooldown) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {}, kUnclippedConfig);
  run.feed(train_point(1000, 0.5, 50.0));
  EXPECT_EQ(run.feed(train_point(900, 0.5, 50.0)).writes.size(), 1u);
}

TEST(GradExplosion, SpikesInOneBatchCompoundIntoOneWrite) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {{"cooldown_steps", std::int64_t{0}}}, kUnclippedConfig);
  const Decision decision =
      run.feed({train_point(1, 0.5, 20.0), train_point(2, 0.5, 1.0), train_point(3, 0.5, 30.0)});
  ASSERT_EQ(decision.writes.size(), 2u);
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[0].value), 0.025);
  EXPECT_EQ(decision.writes[0].reason,
            "grad_norm 20 > threshold 10 at step 1: learning_rate 0.1 -> 0.05; "
            "grad_norm 30 > threshold 10 at step 3: learning_rate 0.05 -> 0.025");
  EXPECT_DOUBLE_EQ(std::get<double>(decision.writes[1].value), 1.0);
}

TEST(GradExplosion, InDryRunMarksEveryWrite) {
  PolicyRun run(TV_POLICY_GRAD_EXPLOSION, {{"dry_run", true}}, kUnclippedConfig);
  const Decision decision = run.feed(train_point(5, 0.5, 50.0));
  ASSERT_EQ(decision.writes.size(), 2u);
  for (const plugin::ProposedWrite& write : decision.writes) {
    EXPECT_TRUE(starts_with(write.reason, "dry run: grad_norm 50 > threshold 10 at step 5: "))
        << write.reason;
  }
  EXPECT_TRUE(decision.dry_run);
  EXPECT_FALSE(decision.stop);
}

// --------------------------------------------------------------------------------------------
// divergence.

void expect_stop(const Decision& decision, const std::string& reason) {
  EXPECT_TRUE(decision.stop);
  EXPECT_EQ(decision.stop_reason, reason);
  ASSERT_EQ(decision.writes.size(), 1u);
  EXPECT_EQ(decision.writes[0].path, kEarlyStopKey);
  EXPECT_EQ(std::get<bool>(decision.writes[0].value), true);
  EXPECT_EQ(decision.writes[0].reason, reason);
}

TEST(Divergence, StopsAfterPatienceRecordsInARowAboveMaxLoss) {
  PolicyRun run(TV_POLICY_DIVERGENCE, {{"max_loss", 100.0}, {"patience", std::int64_t{3}}});
  const std::vector<double> losses = {150, 200, 50, 150, 160};
  for (std::size_t i = 0; i < losses.size(); ++i) {
    expect_no_action(run.feed(train_point(i, losses[i])));
  }
  expect_stop(run.feed(train_point(5, 170)),
              "loss 170 > max_loss 100 for 3 records in a row (patience 3) at step 5");
}

TEST(Divergence, ALossAtMaxLossIsNotAbove) {
  PolicyRun run(TV_POLICY_DIVERGENCE, {{"max_loss", 100.0}});
  for (std::uint64_t step = 0; step < 5; ++step) {
    expect_no_action(run.feed(train_point(step, 100.0)));
  }
}

TEST(Divergence, StopsAtOnceOnANonFiniteLoss) {
  for (const double loss : {kNaN, kInf}) {
    PolicyRun run(TV_POLICY_DIVERGENCE, {{"patience", std::int64_t{5}}});
    expect_no_action(run.feed(train_point(6, 0.7)));
    const Decision decision = run.feed(train_point(7, loss));
    EXPECT_TRUE(decision.stop);
    EXPECT_EQ(decision.stop_reason,
              "loss " + std::string(std::isnan(loss) ? "nan" : "inf") + " is not finite at step 7");
  }
}

TEST(Divergence, StopsAtOnceOnASkippedUpdate) {
  PolicyRun run(TV_POLICY_DIVERGENCE);
  TelemetryPoint skipped = train_point(7, 2.5);
  skipped.flags = plugin::kTelemetryNonFiniteLoss;
  expect_stop(run.feed(skipped),
              "the update at step 7 was skipped for a non-finite loss (loss 2.5)");
}

TEST(Divergence, WithTheCheckOffIgnoresNonFiniteRecords) {
  PolicyRun run(TV_POLICY_DIVERGENCE,
                {{"max_loss", 100.0}, {"patience", std::int64_t{2}}, {"check_non_finite", false}});
  expect_no_action(run.feed(train_point(1, kNaN)));
  expect_no_action(run.feed(train_point(2, kInf)));
  expect_no_action(run.feed(train_point(3, 150)));
  // Neither counts towards nor breaks the run above max_loss.
  expect_no_action(run.feed(train_point(4, kNaN)));
  expect_stop(run.feed(train_point(5, 150)),
              "loss 150 > max_loss 100 for 2 records in a row (patience 2) at step 5");
}

TEST(Divergence, StopsOnceEvenWithinABatch) {
  PolicyRun run(TV_POLICY_DIVERGENCE);
  const Decision decision =
      run.feed({train_point(1, 0.5), train_point(2, kNaN), train_point(3, kNaN)});
  expect_stop(decision, "loss nan is not finite at step 2");
  expect_no_action(run.feed(train_point(4, kNaN)));
  expect_no_action(run.feed(train_point(5, 1e9)));
}

TEST(Divergence, InDryRunOnlySaysOnceThatItWouldStop) {
  PolicyRun run(TV_POLICY_DIVERGENCE, {{"dry_run", true}});
  const Decision decision = run.feed(train_point(3, kNaN));
  EXPECT_FALSE(decision.stop);
  EXPECT_TRUE(decision.writes.empty());
  EXPECT_EQ(decision.stop_reason, "dry run: would stop: loss nan is not finite at step 3");
  expect_no_action(run.feed(train_point(4, kNaN)));
}

// --------------------------------------------------------------------------------------------
// early_stopping: hand-computed Keras EarlyStopping runs and the stop's reason; the golden
// comparison with Keras is in early_stopping_golden_test.cpp.

// Feeds one evaluation per call; returns the index of the evaluation that stopped the job, -1
// when none did. Checks that nothing at all happens after the stop.
int stopping_evaluation(PolicyRun& run, const std::vector<double>& values,
                        bool as_accuracy = false) {
  int stopped_at = -1;
  for (std::size_t i = 0; i < values.size(); ++i) {
    const TelemetryPoint point =
        as_accuracy ? eval_point(i, 1e9, values[i]) : eval_point(i, values[i], -1e9);
    const Decision decision = run.feed(point);
    if (stopped_at >= 0) {
      expect_no_action(decision);
    } else if (decision.stop) {
      stopped_at = static_cast<int>(i);
    } else {
      expect_no_action(decision);
    }
  }
  return stopped_at;
}

TEST(EarlyStopping, StopsOnceWaitReachesPatience) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{2}}});
  EXPECT_EQ(stopping_evaluation(run, {1.0, 0.9, 0.8, 0.85, 0.82, 0.7, 0.6}), 4);
}

TEST(EarlyStopping, StopsWithTheEarlyStopWriteAndAReasonNamingTheValues) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{2}}});
  for (const double value : {1.0, 0.9, 0.8, 0.85})
    run.feed(eval_point(1, value));
  expect_stop(run.feed(eval_point(5, 0.82)),
              "val_loss 0.82 has not improved on best 0.8 by more than min_delta 0 for 2 "
              "evaluations (patience 2)");
  EXPECT_EQ(std::get<bool>(run.config.at(kEarlyStopKey)), true);
}

TEST(EarlyStopping, WithPatienceZeroStopsOnTheFirstStall) {
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{0}}});
    EXPECT_EQ(stopping_evaluation(run, {1.0, 0.9, 0.95}), 2);
  }
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{0}}});
    EXPECT_EQ(stopping_evaluation(run, {1.0, 1.0}), 1);
  }
}

// Keras' best starts as None, which the first value improves on whatever it is: a first nan
// becomes the best, and nothing compares as better than nan.
TEST(EarlyStopping, TheFirstWatchedValueIsTheBestEvenWhenItIsNaN) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{0}}});
  expect_no_action(run.feed(eval_point(1, kNaN)));
  expect_stop(run.feed(eval_point(2, 0.5)),
              "val_loss 0.5 has not improved on best nan by more than min_delta 0 for 1 "
              "evaluations (patience 0)");
}

TEST(EarlyStopping, WarmUpEvaluationsAreNotWatched) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING,
                {{"patience", std::int64_t{0}}, {"start_from_epoch", std::int64_t{2}}});
  EXPECT_EQ(stopping_evaluation(run, {0.1, 0.1, 5.0, 4.0, 4.5}), 4);
}

TEST(EarlyStopping, AnImprovementMustExceedMinDelta) {
  const std::vector<double> values = {1.0, 0.95, 0.85, 0.80, 0.9};
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{2}}, {"min_delta", 0.1}});
    EXPECT_EQ(stopping_evaluation(run, values), 4);
  }
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{2}}});
    EXPECT_EQ(stopping_evaluation(run, values), -1);
  }
}

TEST(EarlyStopping, ImprovementsThatMissTheBaselineDoNotRestartTheCountdown) {
  const std::vector<double> values = {0.9, 0.8, 0.7, 0.75};
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING,
                  {{"patience", std::int64_t{2}}, {"use_baseline", true}, {"baseline", 0.5}});
    EXPECT_EQ(stopping_evaluation(run, values), 3);
  }
  {
    PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{2}}, {"baseline", 0.5}});
    EXPECT_EQ(stopping_evaluation(run, values), -1);
  }
}

TEST(EarlyStopping, BeatingTheBaselineRestartsTheCountdown) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING,
                {{"patience", std::int64_t{2}}, {"use_baseline", true}, {"baseline", 0.5}});
  EXPECT_EQ(stopping_evaluation(run, {0.9, 0.4, 0.45, 0.46}), 3);
}

TEST(EarlyStopping, InMaxModeWatchesAccuracyRising) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING,
                {{"monitor", "val_accuracy"}, {"mode", "max"}, {"patience", std::int64_t{2}}});
  EXPECT_EQ(stopping_evaluation(run, {0.5, 0.6, 0.6, 0.59, 0.7}, true), 3);
}

TEST(EarlyStopping, CountsOnlyEvaluations) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{1}}});
  expect_no_action(run.feed(eval_point(1, 1.0)));
  for (std::uint64_t step = 2; step < 12; ++step) {
    expect_no_action(run.feed(train_point(step, 5.0)));
  }
  EXPECT_TRUE(run.feed(eval_point(12, 1.0)).stop);
}

TEST(EarlyStopping, InDryRunOnlySaysOnceThatItWouldStop) {
  PolicyRun run(TV_POLICY_EARLY_STOPPING, {{"patience", std::int64_t{0}}, {"dry_run", true}});
  expect_no_action(run.feed(eval_point(1, 1.0)));
  const Decision decision = run.feed(eval_point(2, 1.0));
  EXPECT_FALSE(decision.stop);
  EXPECT_TRUE(decision.writes.empty());
  EXPECT_EQ(decision.stop_reason,
            "dry run: would stop: val_loss 1 has not improved on best 1 by more than min_delta 0 "
            "for 1 evaluations (patience 0)");
  expect_no_action(run.feed(eval_point(3, 2.0)));
}

}  // namespace
}  // namespace tv::policies::test
