// The typed client against a real coordinator on 127.0.0.1: replies decoded, refusals as values
// with their status and reason, an unreachable coordinator as an exception.
#include "trainvisor/fleet/api/coordinator_client.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "temp_dir.hpp"
#include "test_coordinator.hpp"
#include "trainvisor/fleet/coordinator.hpp"

namespace tv::fleet::api {
namespace {

namespace fs = std::filesystem;

class CoordinatorClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    coordinator_ = std::make_unique<Coordinator>(
        test::coordinator_options(dir_.path(),
                                  "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n"
                                  "[[jobs.policies]]\nname = \"plateau\"\n"));
  }
  void TearDown() override { coordinator_.reset(); }
  CoordinatorClient client(std::string worker = "wk", std::string op = "op") {
    CoordinatorClientOptions o;
    o.http = http::ClientOptions{coordinator_->url(), {}, std::chrono::seconds(10)};
    o.worker_token = std::move(worker);
    o.operator_token = std::move(op);
    o.operator_name = "ana";
    return CoordinatorClient(o);
  }
  // A client of host `name`, enrolled with the worker token the first time.
  CoordinatorClient host(const std::string& name = "h") {
    auto c = client();
    auto& credential = credentials_[name];
    if (credential.empty()) {
      const auto e = c.enrol_self(name);
      EXPECT_TRUE(e) << e.error().error;
      if (e) credential = e->credential;
    }
    c.set_host_credential(credential);
    return c;
  }
  // The job, claimed by host h (its policy writes come from its holder).
  std::string claimed(CoordinatorClient& c) {
    const auto claim = c.claim({"h", cap()});
    EXPECT_TRUE(claim && claim->job);
    return claim->job->id;
  }
  HostCapability cap() {
    HostCapability c;
    c.hostname = "h";
    c.cores = 2;
    c.ram_gib = 4;
    return c;
  }
  test::TempDir dir_;
  std::unique_ptr<Coordinator> coordinator_;
  std::map<std::string, std::string> credentials_;
};

TEST_F(CoordinatorClientTest, ALeaseFromClaimToCompletion) {
  auto c = host();
  const auto claim = c.claim({"h", cap()});
  ASSERT_TRUE(claim) << claim.error().error;
  ASSERT_TRUE(claim->job);
  const std::string id = claim->job->id;
  EXPECT_TRUE(c.mark_running(id, claim->lease_token));
  const auto hb = c.heartbeat(id, claim->lease_token);
  ASSERT_TRUE(hb);
  EXPECT_FALSE(hb->cancel_requested);
  EXPECT_TRUE(c.complete(id, {claim->lease_token, std::nullopt}));
  const auto job = c.job(id);
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, JobStatus::kCompleted);
  EXPECT_EQ(job->worker, "h");
  EXPECT_FALSE(c.claim({"h", cap()})->job);  // nothing left
}

TEST_F(CoordinatorClientTest, RefusalsAreValuesWithStatusAndReason) {
  auto c = host();
  const auto claim = c.claim({"h", cap()});
  ASSERT_TRUE(claim && claim->job);
  const auto stale = c.heartbeat(claim->job->id, "not-the-lease");
  EXPECT_FALSE(stale);
  EXPECT_EQ(stale.status(), 409);
  EXPECT_TRUE(stale.lease_lost());
  EXPECT_NE(stale.error().error.find("not the job's current lease"), std::string::npos);
  const auto unknown = c.job("nope");
  EXPECT_EQ(unknown.status(), 404);
  EXPECT_EQ(unknown.error().error, "job nope: no such job");

  auto intruder = client("wrong", "wrong");
  EXPECT_EQ(intruder.enrol_self("h2").status(), 401);
  intruder.set_host_credential("h:wrong");
  const auto refused = intruder.claim({"h", cap()});
  EXPECT_EQ(refused.status(), 401);
  EXPECT_NE(refused.error().error.find("X-Host-Credential"), std::string::npos);
  EXPECT_EQ(intruder.cancel(claim->job->id).status(), 401);
  // Another enrolled host: the lease is not its own (403), and it cannot take h's name.
  auto other = host("h2");
  const auto not_its_own = other.heartbeat(claim->job->id, claim->lease_token);
  EXPECT_EQ(not_its_own.status(), 403);
  EXPECT_TRUE(not_its_own.lease_lost());
  EXPECT_EQ(not_its_own.error().error, "job " + claim->job->id + " is held by h, not h2");
  EXPECT_EQ(other.enrol_self("h").status(), 409);
}

TEST_F(CoordinatorClientTest, AHumanWriteIsNamedAndAPolicyWriteUnderAFreezeIsRefused) {
  auto c = host();
  const std::string id = claimed(c);
  ConfigWriteRequest human;
  human.writes = {{"training/optimizer/learning_rate", 0.2}};
  human.reason = "manual";
  const auto w = c.write_config(id, human);
  ASSERT_TRUE(w) << w.error().error;
  EXPECT_EQ(w->actor, "human:ana");
  ASSERT_TRUE(c.freeze(id, "training/optimizer"));
  ConfigWriteRequest policy = human;
  policy.policy = "plateau";
  const auto refused = c.write_config(id, policy);
  EXPECT_EQ(refused.status(), 409);
  EXPECT_NE(refused.error().error.find("frozen prefix training/optimizer"), std::string::npos);
  const auto log = c.config_log(id, 0, 100);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->back().actor, "policy:plateau");
  EXPECT_FALSE(log->back().accepted);
  EXPECT_EQ(c.config(id)->frozen, std::vector<std::string>{"training/optimizer"});
}

TEST_F(CoordinatorClientTest, APolicyWriteDecidedBeforeAHumanWriteIsRefusedWith412) {
  auto c = host();
  const std::string id = claimed(c);
  const std::uint64_t before = c.config(id)->revision;
  ConfigWriteRequest human;
  human.writes = {{"training/optimizer/learning_rate", 0.08}};
  human.reason = "manual bump";
  ASSERT_TRUE(c.write_config(id, human));
  ConfigWriteRequest policy;
  policy.policy = "plateau";
  policy.writes = {{"training/optimizer/learning_rate", 0.01}};
  policy.decided_from = before;
  const auto refused = c.write_config(id, policy);
  EXPECT_EQ(refused.status(), 412);
  EXPECT_NE(refused.error().error.find("the human's value stands"), std::string::npos)
      << refused.error().error;
  policy.decided_from = before + 1;
  EXPECT_TRUE(c.write_config(id, policy));
}

TEST_F(CoordinatorClientTest, TheConfigStreamStartsWithASnapshot) {
  auto c = host();
  const std::string id = claimed(c);
  ConfigStreamReader stream(http::ClientOptions{coordinator_->url(), {}, std::chrono::seconds(10)},
                            credentials_["h"], id, 0);
  const StreamMessage m = stream.next(std::chrono::seconds(10));
  EXPECT_EQ(m.type, StreamMessage::Type::kSnapshot);
  EXPECT_EQ(m.revision, c.config(id)->revision);
  stream.close();
}

TEST_F(CoordinatorClientTest, AnInvalidManifestReloadCarriesItsDiagnostics) {
  std::ofstream(dir_.path() / "fleet.toml")
      << "[[jobs]]\nname = \"a\"\nmodel = \"no-such-model\"\n";
  auto c = client();
  const auto r = c.reload_manifest(true);
  EXPECT_EQ(r.status(), 400);
  EXPECT_EQ(r.error().error, "invalid manifest");
  ASSERT_FALSE(r.error().diagnostics.empty());
  EXPECT_NE(r.error().diagnostics[0].find("no-such-model"), std::string::npos);
}

TEST_F(CoordinatorClientTest, AnUnreachableCoordinatorThrows) {
  const std::string url = coordinator_->url();
  coordinator_.reset();
  CoordinatorClientOptions o;
  o.http = http::ClientOptions{url, {}, std::chrono::seconds(2)};
  CoordinatorClient c(o);
  EXPECT_THROW(c.health(), std::runtime_error);
}

}  // namespace
}  // namespace tv::fleet::api
