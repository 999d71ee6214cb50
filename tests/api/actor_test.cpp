#include "trainvisor/fleet/api/actor.hpp"

#include <gtest/gtest.h>

namespace tv::fleet::api {
namespace {

TEST(Actor, ParsesTheThreeKindsAndPrintsThemBack) {
  for (const std::string text : {"human:ana", "policy:plateau", "api"}) {
    const auto a = Actor::parse(text);
    ASSERT_TRUE(a) << text;
    EXPECT_EQ(a->str(), text);
  }
  EXPECT_TRUE(Actor::parse("human:ana")->is_human());
  EXPECT_EQ(Actor::parse("policy:plateau")->name, "plateau");
  EXPECT_TRUE(Actor::parse("policy:plateau")->is_policy());
}

TEST(Actor, RefusesAnythingElse) {
  for (const std::string text : {"", "human:", "policy:", "robot:x", "Human:ana", "apix"})
    EXPECT_FALSE(Actor::parse(text)) << text;
}

TEST(Actor, PathUnderMatchesWholeSegmentsOnly) {
  EXPECT_TRUE(path_under("a/b/c", "a/b"));
  EXPECT_TRUE(path_under("a/b", "a/b"));
  EXPECT_FALSE(path_under("a/bc", "a/b"));
  EXPECT_FALSE(path_under("a", "a/b"));
}

TEST(Actor, AFreezeHoldsPoliciesOnly) {
  const std::vector<std::string> frozen = {"training/optimizer"};
  const auto why = frozen_refusal("policy:plateau", "training/optimizer/learning_rate", frozen);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why,
            "training/optimizer/learning_rate is under the frozen prefix training/optimizer; "
            "policy:plateau may not write it");
  EXPECT_FALSE(frozen_refusal("human:ana", "training/optimizer/learning_rate", frozen));
  EXPECT_FALSE(frozen_refusal("policy:plateau", "training/regularization/dropout", frozen));
}

}  // namespace
}  // namespace tv::fleet::api
