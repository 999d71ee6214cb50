// The knob keys are defined once, in the public plugin header (plugin::knob), and the trainer's
// schema gives every one of them a spec; knobs::check uses the one range check.
#include "trainvisor/core/trainer_knobs.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>

namespace tv {
namespace {

TEST(TrainerKnobs, TheSchemaHasExactlyThePluginHeadersKeys) {
  const std::set<std::string> keys = {
      plugin::knob::kOptimizer,   plugin::knob::kLearningRate,    plugin::knob::kMomentum,
      plugin::knob::kWeightDecay, plugin::knob::kGradClipMax,     plugin::knob::kDropout,
      plugin::knob::kBatchSize,   plugin::knob::kEvalEvery,       plugin::knob::kMaxEpochs,
      plugin::knob::kEarlyStop,   plugin::knob::kCheckpointEvery, plugin::knob::kRevision};
  std::set<std::string> in_schema;
  for (const plugin::ParamSpec& spec : knobs::schema())
    in_schema.insert(spec.key);
  EXPECT_EQ(in_schema, keys);
  EXPECT_EQ(knobs::schema().size(), keys.size()) << "a knob is declared twice";
}

TEST(TrainerKnobs, CheckReturnsNothingForAValidValueAndTheReasonOtherwise) {
  EXPECT_EQ(knobs::check(knobs::kLearningRate, 0.1), std::nullopt);
  EXPECT_EQ(knobs::check(knobs::kLearningRate, std::int64_t{1}), std::nullopt);  // int for float
  EXPECT_EQ(knobs::check(knobs::kLearningRate, 11.0),
            "trainer parameter 'training/optimizer/learning_rate': 11 is above the maximum 10");
  EXPECT_EQ(knobs::check("training/optimizer/learning_rat", 0.1),
            "unknown knob 'training/optimizer/learning_rat' (did you mean "
            "'training/optimizer/learning_rate'?)");
}

}  // namespace
}  // namespace tv
