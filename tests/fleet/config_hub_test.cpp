// The config hub on a real SQLite file: revisions, validation, freeze rules, audit, deltas.
#include "trainvisor/fleet/config_hub.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

class ConfigHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("tv-hub-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    hub_.emplace(ConfigHub::open((dir_ / "hub.sqlite").string(), [this] { return ++now_; }));
    hub_->seed("job1", {{"training/optimizer/learning_rate", 0.1},
                        {"training/control/max_epochs", std::int64_t{5}}});
  }
  void TearDown() override {
    hub_.reset();
    fs::remove_all(dir_);
  }
  double lr() {
    return std::get<double>(hub_->get("job1").values.at("training/optimizer/learning_rate"));
  }
  fs::path dir_;
  std::int64_t now_ = 1000;
  std::optional<ConfigHub> hub_;
};

TEST_F(ConfigHubTest, SeededTreeIsRevisionOneAndSeedingIsIdempotent) {
  ConfigTree t = hub_->get("job1");
  EXPECT_EQ(t.revision, 1u);
  EXPECT_EQ(t.values.size(), 2u);
  hub_->seed("job1", {{"training/optimizer/learning_rate", 0.5}});
  EXPECT_EQ(lr(), 0.1);
  EXPECT_THROW(hub_->seed("job2", {{"training/optimizer/lr", 0.5}}), ConfigHubError);
  EXPECT_THROW(hub_->get("job2"), ConfigHubError);
}

TEST_F(ConfigHubTest, ABatchIsOneRevisionWithItsAudit) {
  const auto r = hub_->write(
      "job1", {{"training/optimizer/learning_rate", 0.01}, {"training/optimizer/momentum", 0.8}},
      "human:ana", "slower");
  ASSERT_TRUE(r.applied) << r.refusal;
  EXPECT_EQ(r.revision, 2u);
  EXPECT_EQ(hub_->get("job1").revision, 2u);
  EXPECT_EQ(lr(), 0.01);
  const auto log = hub_->audit("job1", 0, 100);
  ASSERT_EQ(log.size(), 4u);  // two seeded values, two writes
  EXPECT_EQ(log[2].revision, 2u);
  EXPECT_EQ(log[2].actor, "human:ana");
  EXPECT_EQ(log[2].reason, "slower");
  EXPECT_EQ(std::get<double>(*log[2].old_value), 0.1);
  EXPECT_EQ(std::get<double>(log[2].new_value), 0.01);
  EXPECT_FALSE(log[3].old_value.has_value());  // momentum was not set before
  EXPECT_TRUE(log[3].accepted);
  EXPECT_EQ(hub_->audit("job1", log[1].seq, 1).at(0).seq, log[2].seq);  // paging
  // An integer for a float knob is that float.
  EXPECT_TRUE(
      hub_->write("job1", {{"training/optimizer/learning_rate", std::int64_t{1}}}, "api", "")
          .applied);
  EXPECT_EQ(lr(), 1.0);
}

TEST_F(ConfigHubTest, InvalidWritesChangeNothing) {
  const auto before = hub_->audit("job1", 0, 100).size();
  auto r = hub_->write("job1", {{"training/optimizer/learning_rat", 0.2}}, "human:ana", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.refusal.find("did you mean 'training/optimizer/learning_rate'"), std::string::npos)
      << r.refusal;
  r = hub_->write("job1", {{"training/optimizer/learning_rate", std::string("fast")}}, "human:ana",
                  "");
  EXPECT_EQ(r.status, 400);
  r = hub_->write(
      "job1", {{"training/optimizer/momentum", 0.5}, {"training/optimizer/learning_rate", 99.0}},
      "human:ana", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.refusal.find("above the maximum 10"), std::string::npos) << r.refusal;
  r = hub_->write("job1", {{"trainvisor/revision", std::int64_t{9}}}, "human:ana", "");
  EXPECT_EQ(r.status, 400);
  r = hub_->write("job1", {{"training/optimizer/momentum", 0.5}}, "robot", "");
  EXPECT_EQ(r.status, 400);
  r = hub_->write("nope", {{"training/optimizer/momentum", 0.5}}, "api", "");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(hub_->get("job1").revision, 1u);
  EXPECT_EQ(hub_->audit("job1", 0, 100).size(), before);
  EXPECT_EQ(hub_->get("job1").values.count("training/optimizer/momentum"), 0u);
}

TEST_F(ConfigHubTest, FrozenPrefixRefusesPoliciesNotHumans) {
  EXPECT_THROW(hub_->freeze("job1", "training/optimizer", "policy:plateau"), ConfigHubError);
  hub_->freeze("job1", "training/optimizer", "human:ana");
  EXPECT_EQ(hub_->frozen("job1"), std::vector<std::string>{"training/optimizer"});
  auto r = hub_->write("job1", {{"training/optimizer/learning_rate", 0.05}}, "policy:plateau",
                       "val_loss flat");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.refusal.find("frozen prefix training/optimizer"), std::string::npos) << r.refusal;
  EXPECT_EQ(lr(), 0.1);
  const auto log = hub_->audit("job1", 0, 100);
  EXPECT_FALSE(log.back().accepted);
  EXPECT_EQ(log.back().actor, "policy:plateau");
  EXPECT_EQ(log.back().refusal, r.refusal);
  // Outside the prefix, and a prefix is a whole segment: training/optimizerX is not under it.
  EXPECT_TRUE(hub_->write("job1", {{"training/control/max_epochs", std::int64_t{3}}},
                          "policy:early_stopping", "")
                  .applied);
  EXPECT_TRUE(
      hub_->write("job1", {{"training/optimizer/learning_rate", 0.02}}, "human:ana", "override")
          .applied);
  hub_->unfreeze("job1", "training/optimizer", "human:ana");
  EXPECT_TRUE(
      hub_->write("job1", {{"training/optimizer/learning_rate", 0.01}}, "policy:plateau", "")
          .applied);
  EXPECT_EQ(lr(), 0.01);
}

TEST_F(ConfigHubTest, DeltasSinceARevisionAndPersistence) {
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.05}}, "api", "");
  hub_->write("job1",
              {{"training/optimizer/learning_rate", 0.02}, {"training/control/early_stop", true}},
              "api", "");
  const auto d = hub_->deltas_since("job1", 1);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].revision, 2u);
  EXPECT_EQ(d[1].revision, 3u);
  ASSERT_EQ(d[1].writes.size(), 2u);
  EXPECT_TRUE(std::get<bool>(d[1].writes[1].value));
  EXPECT_EQ(hub_->deltas_since("job1", 3).size(), 0u);
  hub_.reset();
  hub_.emplace(ConfigHub::open((dir_ / "hub.sqlite").string()));
  EXPECT_EQ(hub_->get("job1").revision, 3u);
  EXPECT_EQ(lr(), 0.02);
}

}  // namespace
}  // namespace tv::fleet
