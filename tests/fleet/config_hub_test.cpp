// The config hub on a real SQLite file: revisions, validation, freeze rules, audit, deltas.
#include "trainvisor/fleet/config_hub.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"

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
  EXPECT_EQ(r.refused, ConfigRefusal::kInvalid);
  EXPECT_NE(r.refusal.find("did you mean 'training/optimizer/learning_rate'"), std::string::npos)
      << r.refusal;
  r = hub_->write("job1", {{"training/optimizer/learning_rate", std::string("fast")}}, "human:ana",
                  "");
  EXPECT_EQ(r.refused, ConfigRefusal::kInvalid);
  r = hub_->write(
      "job1", {{"training/optimizer/momentum", 0.5}, {"training/optimizer/learning_rate", 99.0}},
      "human:ana", "");
  EXPECT_EQ(r.refused, ConfigRefusal::kInvalid);
  EXPECT_NE(r.refusal.find("above the maximum 10"), std::string::npos) << r.refusal;
  r = hub_->write("job1", {{"trainvisor/revision", std::int64_t{9}}}, "human:ana", "");
  EXPECT_EQ(r.refused, ConfigRefusal::kInvalid);
  r = hub_->write("job1", {{"training/optimizer/momentum", 0.5}}, "robot", "");
  EXPECT_EQ(r.refused, ConfigRefusal::kInvalid);
  r = hub_->write("nope", {{"training/optimizer/momentum", 0.5}}, "api", "");
  EXPECT_EQ(r.refused, ConfigRefusal::kUnknownJob);
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
  EXPECT_EQ(r.refused, ConfigRefusal::kFrozen);
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

// A policy decision made from a revision before a human's write to one of its keys arrives after
// it: the human's value stands, and the refusal is audited. Other keys, a decision made from the
// human's revision on, and a writer that does not say its revision are not refused.
TEST_F(ConfigHubTest, APolicyDecisionMadeBeforeAHumanWriteIsSuperseded) {
  const std::string lr_key = "training/optimizer/learning_rate";
  ASSERT_EQ(hub_->write("job1", {{lr_key, 0.08}}, "human:ana", "manual bump").revision, 2u);
  const auto r = hub_->write("job1", {{lr_key, 0.01}}, "policy:plateau", "flat", 1);
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.refused, ConfigRefusal::kSuperseded);
  EXPECT_NE(r.refusal.find("written by human:ana in revision 2, after revision 1"),
            std::string::npos)
      << r.refusal;
  EXPECT_EQ(lr(), 0.08);
  const auto last = hub_->last_write("job1", lr_key);  // the refusal is not the key's writer
  ASSERT_TRUE(last);
  EXPECT_EQ(last->actor, "human:ana");
  EXPECT_EQ(last->reason, "manual bump");
  EXPECT_FALSE(hub_->last_write("job1", "training/regularization/dropout"));
  const auto log = hub_->audit("job1", 0, 100);
  EXPECT_FALSE(log.back().accepted);
  EXPECT_EQ(log.back().refusal, r.refusal);
  EXPECT_TRUE(
      hub_->write("job1", {{"training/optimizer/momentum", 0.5}}, "policy:plateau", "", 1).applied);
  EXPECT_TRUE(hub_->write("job1", {{lr_key, 0.04}}, "policy:plateau", "", 3).applied);
  EXPECT_TRUE(hub_->write("job1", {{lr_key, 0.08}}, "human:ana", "again").applied);
  EXPECT_TRUE(hub_->write("job1", {{lr_key, 0.02}}, "policy:plateau", "").applied);
  EXPECT_EQ(lr(), 0.02);
}

TEST_F(ConfigHubTest, FreezeRefusesAPrefixNoKnobIsUnder) {
  const auto before = hub_->audit("job1", 0, 100).size();
  for (const char* bad : {"training/optimzer", "training/optim", "nothing", "training/"}) {
    try {
      hub_->freeze("job1", bad, "human:ana");
      ADD_FAILURE() << "froze '" << bad << "'";
    } catch (const ConfigHubError& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + bad + "'"), std::string::npos)
          << e.what();
    }
    EXPECT_THROW(hub_->unfreeze("job1", bad, "human:ana"), ConfigHubError) << bad;
  }
  try {
    hub_->freeze("job1", "training/optimzer", "human:ana");
  } catch (const ConfigHubError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'training/optimizer'?"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(hub_->frozen("job1").empty());
  EXPECT_EQ(hub_->audit("job1", 0, 100).size(), before);
  // Whole components of a knob's path, the knob itself included, are accepted.
  hub_->freeze("job1", "training", "human:ana");
  hub_->freeze("job1", "training/optimizer/learning_rate", "human:ana");
  EXPECT_EQ(hub_->frozen("job1").size(), 2u);
}

// A policy retrying under a freeze: the issue saw 50+ refusal rows. Identical refusals in a row
// are one row with a count; anything different, or an accepted change, starts a new row.
TEST_F(ConfigHubTest, RepeatedIdenticalRefusalsAreOneRowWithACount) {
  hub_->freeze("job1", "training/optimizer", "human:ana");
  const std::size_t before = hub_->audit("job1", 0, 100).size();
  const std::vector<ConfigWrite> batch = {{"training/optimizer/learning_rate", 0.01},
                                          {"training/optimizer/momentum", 0.5}};
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(hub_->write("job1", batch, "policy:plateau", "try " + std::to_string(i)).refused,
              ConfigRefusal::kFrozen);
  }
  auto log = hub_->audit("job1", 0, 100);
  ASSERT_EQ(log.size(), before + 2);  // one row per write of the batch
  for (std::size_t i = before; i < log.size(); ++i) {
    EXPECT_EQ(log[i].count, 3u);
    EXPECT_EQ(log[i].reason, "try 2");  // the latest one's reason and time
    EXPECT_FALSE(log[i].accepted);
    EXPECT_EQ(log[i].time_ms, now_);
  }
  // Another value, another actor: new rows.
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.02}}, "policy:plateau", "");
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.02}}, "policy:other", "");
  log = hub_->audit("job1", 0, 100);
  ASSERT_EQ(log.size(), before + 4);
  EXPECT_EQ(log[before + 2].count, 1u);
  EXPECT_EQ(log[before + 3].count, 1u);
  // An accepted change between two identical refusals: two rows.
  ASSERT_TRUE(
      hub_->write("job1", {{"training/control/max_epochs", std::int64_t{3}}}, "human:ana", "")
          .applied);
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.02}}, "policy:other", "");
  log = hub_->audit("job1", 0, 100);
  ASSERT_EQ(log.size(), before + 6);
  EXPECT_EQ(log.back().count, 1u);
  // Accepted rows are never counted up.
  ASSERT_TRUE(
      hub_->write("job1", {{"training/control/max_epochs", std::int64_t{3}}}, "human:ana", "")
          .applied);
  EXPECT_EQ(hub_->audit("job1", 0, 100).back().count, 1u);
}

// A database made before the count column existed gains it; its rows count once.
TEST_F(ConfigHubTest, AnOlderDatabaseGainsTheCountColumn) {
  const std::string path = (dir_ / "old.sqlite").string();
  {
    store::Connection db(path, {"old hub", std::chrono::seconds(1), store::Durability::kFull});
    db.exec(
        "CREATE TABLE config_jobs (job_id TEXT PRIMARY KEY, revision INTEGER NOT NULL);"
        "CREATE TABLE config_values (job_id TEXT NOT NULL, path TEXT NOT NULL,"
        "  value TEXT NOT NULL, PRIMARY KEY (job_id, path));"
        "CREATE TABLE config_frozen (job_id TEXT NOT NULL, prefix TEXT NOT NULL,"
        "  PRIMARY KEY (job_id, prefix));"
        "CREATE TABLE config_audit (seq INTEGER PRIMARY KEY, job_id TEXT NOT NULL,"
        "  revision INTEGER NOT NULL, actor TEXT NOT NULL, reason TEXT NOT NULL, path TEXT NOT "
        "NULL, old_value TEXT, new_value TEXT NOT NULL, time_ms INTEGER NOT NULL,"
        "  accepted INTEGER NOT NULL, refusal TEXT NOT NULL, kind TEXT NOT NULL DEFAULT 'write');"
        "INSERT INTO config_jobs VALUES ('old', 1);"
        "INSERT INTO config_values VALUES ('old', 'training/optimizer/learning_rate', '0.1');"
        "INSERT INTO config_audit (job_id, revision, actor, reason, path, old_value, new_value,"
        "  time_ms, accepted, refusal) VALUES ('old', 1, 'api', 'seeded',"
        "  'training/optimizer/learning_rate', NULL, '0.1', 5, 1, '');");
  }
  ConfigHub hub = ConfigHub::open(path);
  ASSERT_EQ(hub.audit("old", 0, 10).size(), 1u);
  EXPECT_EQ(hub.audit("old", 0, 10)[0].count, 1u);
  hub.freeze("old", "training", "human:ana");
  for (int i = 0; i < 2; ++i)
    hub.write("old", {{"training/optimizer/learning_rate", 0.01}}, "policy:plateau", "");
  EXPECT_EQ(hub.audit("old", 0, 10).back().count, 2u);
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

TEST_F(ConfigHubTest, SubscribeSendsASnapshotWhenTheRevisionIsUnknownTooOldOrAhead) {
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.2}}, "api", "");
  hub_->write("job1", {{"training/optimizer/learning_rate", 0.3}}, "api", "");
  for (const std::uint64_t from : {0ull, 9ull}) {
    const ConfigStream s = hub_->subscribe("job1", from);
    EXPECT_TRUE(s.snapshot) << from;
    EXPECT_EQ(s.tree.revision, 3u);
    EXPECT_EQ(std::get<double>(s.tree.values.at("training/optimizer/learning_rate")), 0.3);
  }
  EXPECT_TRUE(hub_->subscribe("job1", 1, /*max_backlog=*/1).snapshot);
  const ConfigStream s = hub_->subscribe("job1", 1);
  ASSERT_FALSE(s.snapshot);
  ASSERT_EQ(s.events.size(), 2u);
  EXPECT_EQ(s.events[0].delta.revision, 2u);
  EXPECT_EQ(s.events[1].delta.revision, 3u);
  EXPECT_EQ(s.events[1].delta.actor, "api");
  EXPECT_THROW(hub_->subscribe("nope", 0), ConfigHubError);
}

TEST_F(ConfigHubTest, ResumeReplaysFreezesInTheOrderTheyHappened) {
  // A policy write accepted before a freeze must reach an agent resuming from before both as
  // accepted: the frozen prefixes it starts from are those of its revision, not today's.
  ASSERT_TRUE(
      hub_->write("job1", {{"training/optimizer/learning_rate", 0.2}}, "policy:p", "").applied);
  hub_->freeze("job1", "training/optimizer", "human:ana");
  ASSERT_TRUE(
      hub_->write("job1", {{"training/optimizer/learning_rate", 0.25}}, "human:ana", "").applied);
  hub_->unfreeze("job1", "training/optimizer", "human:ana");
  hub_->freeze("job1", "training/control", "human:ana");

  const ConfigStream s = hub_->subscribe("job1", 1);
  ASSERT_FALSE(s.snapshot);
  EXPECT_TRUE(s.frozen.empty());
  ASSERT_EQ(s.events.size(), 5u);
  EXPECT_EQ(s.events[0].delta.actor, "policy:p");
  EXPECT_EQ(s.events[1].prefix, "training/optimizer");
  EXPECT_TRUE(s.events[1].frozen);
  EXPECT_EQ(s.events[2].delta.revision, 3u);
  EXPECT_EQ(s.events[3].prefix, "training/optimizer");
  EXPECT_FALSE(s.events[3].frozen);
  EXPECT_EQ(s.events[4].prefix, "training/control");

  const ConfigStream later = hub_->subscribe("job1", 3);
  EXPECT_EQ(later.frozen, std::vector<std::string>{"training/control"});
  EXPECT_TRUE(later.events.empty());
  std::uint64_t cursor = later.cursor;
  hub_->write("job1", {{"training/control/max_epochs", std::int64_t{7}}}, "api", "");
  const auto next = hub_->events_after("job1", cursor);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].delta.revision, 4u);
  EXPECT_TRUE(hub_->events_after("job1", cursor).empty());
}

TEST_F(ConfigHubTest, RefusedWritesAndAgentRefusalsStayOutOfTheStream) {
  hub_->freeze("job1", "training/optimizer", "human:ana");
  EXPECT_FALSE(
      hub_->write("job1", {{"training/optimizer/learning_rate", 0.2}}, "policy:p", "").applied);
  ASSERT_TRUE(
      hub_->write("job1", {{"training/control/max_epochs", std::int64_t{9}}}, "api", "").applied);
  hub_->record_agent_refusal("job1", 2, "host h: out of range");
  EXPECT_THROW(hub_->record_agent_refusal("job1", 7, "x"), ConfigHubError);
  const auto log = hub_->audit("job1", 0, 100);
  EXPECT_FALSE(log.back().accepted);
  EXPECT_EQ(log.back().refusal, "host h: out of range");
  EXPECT_EQ(log.back().revision, 2u);
  const ConfigStream s = hub_->subscribe("job1", 1);
  EXPECT_EQ(s.frozen, std::vector<std::string>{"training/optimizer"});  // before revision 2
  ASSERT_EQ(s.events.size(), 1u);                                       // revision 2, once
  EXPECT_EQ(s.events[0].delta.writes.size(), 1u);
}

TEST_F(ConfigHubTest, WaitForChangeWakesOnAWrite) {
  const std::uint64_t seen = hub_->wait_for_change(~0ull, std::chrono::milliseconds(0));
  EXPECT_EQ(hub_->wait_for_change(seen, std::chrono::milliseconds(10)), seen);
  std::thread writer([&] {
    hub_->write("job1", {{"training/optimizer/learning_rate", 0.2}}, "api", "");
  });
  EXPECT_NE(hub_->wait_for_change(seen, std::chrono::seconds(10)), seen);
  writer.join();
}

TEST(TelemetryStoreTest, StoresBatchesOnceAndTracksTheAppliedRevision) {
  const auto dir = fs::temp_directory_path() / ("tv-telemetry-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    TelemetryStore store = TelemetryStore::open((dir / "t.sqlite").string());
    EXPECT_FALSE(store.applied("j").has_value());
    std::vector<plugin::TelemetryPoint> batch;
    for (std::uint64_t step = 1; step <= 100; ++step) {
      plugin::TelemetryPoint p;
      p.step = step;
      p.loss = 1.0 / static_cast<double>(step);
      p.config_revision = step < 40 ? 1 : 2;
      p.flags = step % 10 == 0 ? std::uint32_t{plugin::kTelemetryEval} : 0u;
      p.val_loss = p.flags ? 0.5 : std::nan("");
      batch.push_back(p);
    }
    store.append("j", batch, "h1", 3, 1000);
    store.append("j", batch, "h1", 0, 2000);  // sent again: stored once
    const auto a = store.applied("j");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->revision, 2u);
    EXPECT_EQ(a->since_step, 40u);
    EXPECT_EQ(a->last_step, 100u);
    EXPECT_EQ(a->points, 100u);
    EXPECT_EQ(a->missed, 3u);
    EXPECT_EQ(store.curve("j", 0).size(), 100u);
    const auto thin = store.curve("j", 20);
    EXPECT_LE(thin.size(), 24u);
    EXPECT_EQ(thin.back().step, 100u);
    std::size_t evals = 0;
    for (const auto& p : thin) {
      if (p.flags & plugin::kTelemetryEval) {
        ++evals;
        EXPECT_EQ(p.val_loss, 0.5);
      } else {
        EXPECT_TRUE(std::isnan(p.val_loss));
      }
    }
    EXPECT_GE(evals, 5u);  // half the budget: evaluations are not thinned away
  }
  fs::remove_all(dir);
}

std::vector<plugin::TelemetryPoint> steps(std::uint64_t first, std::uint64_t last) {
  std::vector<plugin::TelemetryPoint> out;
  for (std::uint64_t step = first; step <= last; ++step) {
    plugin::TelemetryPoint p;
    p.step = step;
    p.loss = 1.0 / static_cast<double>(step);
    p.config_revision = 1;
    p.flags = step % 10 == 0 ? std::uint32_t{plugin::kTelemetryEval} : 0u;
    out.push_back(p);
  }
  return out;
}

TEST(TelemetryStoreTest, EachJobKeepsItsNewestPointsUpToTheCap) {
  const auto dir = fs::temp_directory_path() / ("tv-telemetry-cap-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  {
    TelemetryStore store = TelemetryStore::open((dir / "t.sqlite").string(), {50});
    for (std::uint64_t batch = 0; batch < 10; ++batch) {
      store.append("long", steps(batch * 20 + 1, batch * 20 + 20), "h1", 0, 1000);
      EXPECT_LE(store.stored("long"), 50u) << "after batch " << batch;
    }
    store.append("short", steps(1, 30), "h1", 0, 1000);
    EXPECT_EQ(store.stored("long"), 50u);
    EXPECT_EQ(store.stored("short"), 30u);  // another job's cap is its own
    const auto all = store.curve("long", 0);
    ASSERT_EQ(all.size(), 50u);
    EXPECT_EQ(all.front().step, 151u);  // the newest 50 of 200
    EXPECT_EQ(all.back().step, 200u);
    EXPECT_EQ(store.applied("long")->points, 200u);  // every point received is counted
    EXPECT_EQ(store.applied("long")->last_step, 200u);
    // A thinned read of the kept curve still ends at the last step and keeps evaluations.
    const auto thin = store.curve("long", 10);
    EXPECT_LE(thin.size(), 14u);
    EXPECT_GE(thin.size(), 5u);
    EXPECT_EQ(thin.back().step, 200u);
    EXPECT_GE(std::count_if(thin.begin(), thin.end(),
                            [](const auto& p) { return (p.flags & plugin::kTelemetryEval) != 0; }),
              2);
    // One batch larger than the cap keeps its own newest points.
    store.append("burst", steps(1, 120), "h1", 0, 1000);
    EXPECT_EQ(store.stored("burst"), 50u);
    EXPECT_EQ(store.curve("burst", 0).front().step, 71u);
  }
  {
    // Reopened with a smaller cap: the next append brings the job down to it.
    TelemetryStore store = TelemetryStore::open((dir / "t.sqlite").string(), {20});
    store.append("long", steps(201, 201), "h1", 0, 2000);
    EXPECT_EQ(store.stored("long"), 20u);
    EXPECT_EQ(store.curve("long", 0).front().step, 182u);
  }
  {
    TelemetryStore store = TelemetryStore::open((dir / "t.sqlite").string(), {0});  // no cap
    store.append("long", steps(202, 301), "h1", 0, 3000);
    EXPECT_EQ(store.stored("long"), 120u);
  }
  fs::remove_all(dir);
}

TEST(TelemetryStoreTest, ACurveStoredBeforeTheCapIsCountedOnceAndCapped) {
  const auto dir = fs::temp_directory_path() / ("tv-telemetry-old-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string path = (dir / "t.sqlite").string();
  {
    // The tables as a store without retention made them, with 40 points of one job.
    store::Connection db(path, {});
    db.exec(
        "CREATE TABLE telemetry (job_id TEXT NOT NULL, step INTEGER NOT NULL,"
        "  epoch INTEGER NOT NULL, flags INTEGER NOT NULL, wall_time_ns INTEGER NOT NULL,"
        "  loss REAL, grad_norm REAL, learning_rate REAL, config_revision INTEGER NOT NULL,"
        "  val_loss REAL, val_accuracy REAL, samples_per_sec REAL, PRIMARY KEY (job_id, step));"
        "CREATE TABLE telemetry_applied (job_id TEXT PRIMARY KEY,"
        "  revision INTEGER NOT NULL, since_step INTEGER NOT NULL, last_step INTEGER NOT NULL,"
        "  host TEXT NOT NULL, time_ms INTEGER NOT NULL, points INTEGER NOT NULL,"
        "  missed INTEGER NOT NULL);"
        "WITH RECURSIVE n(s) AS (SELECT 1 UNION ALL SELECT s+1 FROM n WHERE s<40) "
        "INSERT INTO telemetry (job_id, step, epoch, flags, wall_time_ns, config_revision) "
        "SELECT 'old', s, 0, 0, 0, 1 FROM n;"
        "INSERT INTO telemetry_applied VALUES ('old', 1, 1, 40, 'h1', 0, 40, 0);");
  }
  TelemetryStore store = TelemetryStore::open(path, {30});
  EXPECT_EQ(store.stored("old"), 40u);  // counted, not yet capped
  store.append("old", steps(41, 45), "h1", 0, 1000);
  EXPECT_EQ(store.stored("old"), 30u);
  const auto curve = store.curve("old", 0);
  ASSERT_EQ(curve.size(), 30u);
  EXPECT_EQ(curve.front().step, 16u);
  EXPECT_EQ(curve.back().step, 45u);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tv::fleet
