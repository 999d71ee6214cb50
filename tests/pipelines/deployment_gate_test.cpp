// The deployment gate's rules, one case each.
#include "trainvisor/fleet/pipelines/deployment_gate.hpp"

#include <gtest/gtest.h>

namespace tv::fleet::pipelines {
namespace {

nlohmann::json evaluation(double fresh, std::optional<double> deployed) {
  nlohmann::json j = {{"new", {{"accuracy", fresh}, {"macro_f1", fresh}, {"loss", 1.0}}},
                      {"eval_samples", 100}};
  j["deployed"] = deployed ? nlohmann::json{{"accuracy", *deployed}} : nlohmann::json(nullptr);
  return j;
}

const std::string kOld(64, 'a'), kOther(64, 'b');

TEST(DeploymentGate, TheFirstModelNeedsOnlyTheMinimum) {
  const GateDecision d = judge({0.7, 0.02, evaluation(0.81, std::nullopt), "", ""});
  EXPECT_TRUE(d.deploy);
  EXPECT_EQ(d.reason, "deployed: accuracy 0.810 >= min 0.700; nothing deployed before");
  const GateDecision low = judge({0.7, 0.02, evaluation(0.41, std::nullopt), "", ""});
  EXPECT_FALSE(low.deploy);
  EXPECT_EQ(low.reason, "refused: accuracy 0.410 < min_accuracy 0.700");
}

TEST(DeploymentGate, ANewModelMayNotRegressBeyondTheMargin) {
  EXPECT_TRUE(judge({0.5, 0.02, evaluation(0.79, 0.80), kOld, kOld}).deploy);  // within 0.02
  const GateDecision worse = judge({0.5, 0.02, evaluation(0.70, 0.80), kOld, kOld});
  EXPECT_FALSE(worse.deploy);
  EXPECT_EQ(worse.reason,
            "refused: accuracy 0.700 >= min 0.500, below the deployed model 0.800 "
            "(max_regression 0.020)");
}

TEST(DeploymentGate, AModelComparedWithAnotherThanTheDeployedOneIsRefused) {
  const GateDecision moved = judge({0.5, 0.02, evaluation(0.95, 0.80), kOld, kOther});
  EXPECT_FALSE(moved.deploy);
  EXPECT_EQ(moved.reason,
            "refused: the alias holds bbbbbbbbbbbb, and this model was compared with aaaaaaaaaaaa");
  // Deployed by someone else while it trained with nothing to compare with.
  EXPECT_FALSE(judge({0.5, 0.02, evaluation(0.95, std::nullopt), "", kOther}).deploy);
}

TEST(DeploymentGate, AMissingOrBrokenEvaluationIsRefused) {
  EXPECT_FALSE(judge({0, 0, nullptr, "", ""}).deploy);
  EXPECT_FALSE(judge({0, 0, nlohmann::json{{"new", {{"accuracy", "high"}}}}, "", ""}).deploy);
  EXPECT_FALSE(judge({0, 0, nlohmann::json{{"new", {{"accuracy", 1.5}}}}, "", ""}).deploy);
  const GateDecision no_old = judge({0, 0, evaluation(0.9, std::nullopt), kOld, kOld});
  EXPECT_FALSE(no_old.deploy);
  EXPECT_EQ(no_old.reason, "refused: the training reported no evaluation of the deployed model");
}

}  // namespace
}  // namespace tv::fleet::pipelines
