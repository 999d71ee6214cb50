// The coordinator over real HTTP on 127.0.0.1 with a real SQLite file and artifact directory:
// tokens, host credentials, claims, fenced leases after a stale sweep, streamed uploads,
// operator calls, reloads.
#include "trainvisor/fleet/coordinator.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "trainvisor/fleet/manifest.hpp"
#include "two_tiny_jobs.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kManifest = test_data::kTwoTinyJobs;

class CoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tv-coord-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    manifest_ = (dir_ / "fleet.toml").string();
    std::ofstream(manifest_) << kManifest;
    CoordinatorOptions o;
    o.data_dir = (dir_ / "data").string();
    o.manifest_path = manifest_;
    o.operator_token = "op-secret";
    o.worker_token = "worker-secret";
    o.plugin_dirs = {TV_PLUGIN_DIR};
    o.queue.stale_after = std::chrono::milliseconds(400);
    o.sweep_every = std::chrono::milliseconds(50);
    o.max_artifact_bytes = 1 << 20;
    coordinator_ = std::make_unique<Coordinator>(o);
    client_ = std::make_unique<http::Client>(
        http::ClientOptions{coordinator_->url(), {}, std::chrono::seconds(10)});
  }
  void TearDown() override {
    client_.reset();
    coordinator_.reset();
    fs::remove_all(dir_);
  }
  // `host`'s credential, enrolled with the worker token on first use.
  std::string credential(const std::string& host) {
    auto& c = credentials_[host];
    if (c.empty()) {
      const auto r = client_->request("POST", "/v1/hosts/" + host + "/enrol", "{}",
                                      {{"X-Worker-Token", "worker-secret"}});
      EXPECT_EQ(r.status, 200) << r.body;
      c = r.json_body().at("credential");
    }
    return c;
  }
  // A host call as host_ (the host of the last claim), or with the given token and header.
  http::Response post(const std::string& target, const json& body, std::string token = {},
                      const std::string& header = "X-Host-Credential") {
    if (token.empty() && header == "X-Host-Credential") token = credential(host_);
    return client_->request("POST", target, body.dump(), {{header, token}});
  }
  json claim(const std::string& worker) {
    host_ = worker;
    const auto r = post("/v1/job/claim",
                        {{"worker", worker}, {"capability", {{"cores", 2}, {"ram_gib", 8.0}}}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json_body();
  }
  http::Response upload(const std::string& job, const std::string& name, const std::string& lease,
                        const std::string& path, const std::string& digest) {
    return client_->send_file("PUT", "/v1/job/" + job + "/artifact/" + name, path,
                              {{"X-Host-Credential", credential(host_)},
                               {"X-Lease-Token", lease},
                               {"X-Content-SHA256", digest}});
  }
  std::string write_file(const std::string& name, const std::string& bytes) {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << bytes;
    return p;
  }
  fs::path dir_;
  std::string manifest_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<http::Client> client_;
  std::map<std::string, std::string> credentials_;
  std::string host_ = "h";
};

TEST_F(CoordinatorTest, HostEndpointsNeedAHostCredential) {
  const json claim_body = {{"worker", "h"}, {"capability", json::object()}};
  // The worker token only enrols; a wrong, revoked or absent credential is no host.
  for (const auto& [header, token] :
       {std::pair{"X-Worker-Token", "worker-secret"}, std::pair{"X-Worker-Token", "op-secret"},
        std::pair{"X-Host-Credential", "h:wrong"}, std::pair{"X-Host-Credential", "h"},
        std::pair{"X-Operator-Token", "op-secret"}}) {
    EXPECT_EQ(post("/v1/job/claim", claim_body, token, header).status, 401) << header << token;
  }
  for (const std::string path : {"/v1/job/x/heartbeat", "/v1/job/x/complete", "/v1/job/x/fail",
                                 "/v1/job/x/running", "/v1/job/x/log"}) {
    EXPECT_EQ(post(path, {{"lease_token", "t"}}, "worker-secret", "X-Worker-Token").status, 401)
        << path;
  }
  for (const std::string path : {"/v1/job/x/cancel", "/v1/job/x/requeue", "/v1/manifest/reload"}) {
    EXPECT_EQ(post(path, json::object(), "worker-secret", "X-Operator-Token").status, 401) << path;
    EXPECT_EQ(post(path, json::object()).status, 401)
        << path;  // a host's credential is not an operator's
  }
  // A credential claims only as its own host.
  const auto as_other = post("/v1/job/claim", {{"worker", "h2"}, {"capability", json::object()}});
  EXPECT_EQ(as_other.status, 403) << as_other.body;
  EXPECT_EQ(client_->request("GET", "/v1/jobs").json_body()["jobs"].size(), 2u);  // nothing changed
  const auto all = client_->request("GET", "/v1/jobs").json_body();
  for (const auto& j : all["jobs"])
    EXPECT_EQ(j["status"], "pending");
}

// Every read route: `job` holds an artifact of `digest`, `configured` a config tree.
std::vector<std::string> read_targets(const std::string& job, const std::string& digest,
                                      const std::string& configured) {
  return {"/v1/jobs",
          "/v1/job/" + job,
          "/v1/job/" + job + "/explain",
          "/v1/workers",
          "/v1/job/" + job + "/artifacts",
          "/v1/artifact/" + digest + "/stat",
          "/v1/artifact/" + digest,
          "/v1/job/" + configured + "/config",
          "/v1/job/" + configured + "/config/log",
          "/v1/job/" + job + "/telemetry",
          "/v1/job/" + job + "/log",
          "/v1/knobs",
          "/metrics"};
}

// The value of one series in a Prometheus text exposition (`series` as it is written, labels
// included); -1 when it is not there.
double sample(const std::string& text, const std::string& series) {
  const std::string at = "\n" + series + " ";
  const std::size_t i = ("\n" + text).find(at);
  if (i == std::string::npos) return -1;
  return std::stod(text.substr(i + at.size() - 1));
}

TEST_F(CoordinatorTest, ReadsArePublicOnLoopbackByDefault) {
  const std::string id = client_->request("GET", "/v1/jobs").json_body()["jobs"][0]["id"];
  for (const std::string& t : read_targets(id, std::string(64, 'a'), id)) {
    const int status = client_->request("GET", t).status;
    EXPECT_NE(status, 401) << t;
    EXPECT_TRUE(status == 200 || status == 404) << t << ": " << status;
  }
}

TEST_F(CoordinatorTest, ReadsNeedATokenWhenNotPublic) {
  const json c = claim("h1");
  const std::string id = c["job"]["id"];
  const std::string digest = sha256_hex("bundle bytes");
  ASSERT_EQ(upload(id, "bundle.tvb", c["lease_token"], write_file("b.tvb", "bundle bytes"), digest)
                .status,
            200);
  std::ofstream(manifest_, std::ios::app)
      << "[[jobs]]\nname = \"tuned\"\nmodel = \"tiny\"\n"
         "[jobs.hyper]\ntraining.optimizer.learning_rate = 0.05\n";
  // The same state, served again without public reads; and a default one on a non-loopback
  // address (every interface), which must not be public either.
  for (const bool explicit_option : {true, false}) {
    client_.reset();
    coordinator_.reset();
    CoordinatorOptions o;
    o.data_dir = (dir_ / "data").string();
    o.manifest_path = manifest_;
    o.plugin_dirs = {TV_PLUGIN_DIR};
    o.operator_token = "op-secret";
    o.worker_token = "worker-secret";
    o.read_token = "read-secret";
    if (explicit_option) {
      o.public_reads = false;
    } else {
      o.http.bind = "0.0.0.0";
    }
    coordinator_ = std::make_unique<Coordinator>(o);
    client_ = std::make_unique<http::Client>(http::ClientOptions{
        "http://127.0.0.1:" + std::to_string(coordinator_->port()), {}, std::chrono::seconds(10)});
    const auto jobs = client_->request("GET", "/v1/jobs", {}, {{"X-Read-Token", "read-secret"}})
                          .json_body()["jobs"];
    std::string tuned;
    for (const auto& j : jobs)
      if (j["name"] == "tuned") tuned = j["id"];
    ASSERT_FALSE(tuned.empty()) << jobs.dump();
    for (const std::string& t : read_targets(id, digest, tuned)) {
      auto r = client_->request("GET", t);
      EXPECT_EQ(r.status, 401) << t;
      EXPECT_NE(r.body.find("X-Read-Token"), std::string::npos) << r.body;
      EXPECT_EQ(client_->request("GET", t, {}, {{"X-Read-Token", "wrong"}}).status, 401) << t;
      EXPECT_EQ(client_->request("GET", t, {}, {{"X-Operator-Token", "read-secret"}}).status, 401)
          << t;
      for (const auto& [header, token] :
           {std::pair{"X-Read-Token", "read-secret"}, std::pair{"X-Operator-Token", "op-secret"},
            std::pair{"X-Worker-Token", "worker-secret"}}) {
        r = client_->request("GET", t, {}, {{header, token}});
        EXPECT_EQ(r.status, 200) << t << " with " << header << ": " << r.body;
      }
    }
    // Health stays open: a liveness probe holds no token.
    EXPECT_EQ(client_->request("GET", "/v1/health").status, 200);
  }
}

TEST_F(CoordinatorTest, ClaimRunUploadCompleteDownload) {
  const json c = claim("host-1");
  ASSERT_FALSE(c["job"].is_null());
  EXPECT_EQ(c["job"]["name"], "tiny-b");  // the higher priority first
  const std::string id = c["job"]["id"], lease = c["lease_token"];
  EXPECT_EQ(post("/v1/job/" + id + "/running", {{"lease_token", lease}}).status, 200);
  auto hb = post("/v1/job/" + id + "/heartbeat", {{"lease_token", lease}});
  EXPECT_EQ(hb.status, 200);
  EXPECT_FALSE(hb.json_body()["cancel_requested"]);
  EXPECT_EQ(post("/v1/job/" + id + "/heartbeat", {{"lease_token", "0000"}}).status, 409);

  const std::string bytes = "TVBUNDLE1\nweights";
  const std::string digest = sha256_hex(bytes);
  const std::string path = write_file("bundle.tvb", bytes);
  auto up = upload(id, "bundle.tvb", lease, path, digest);
  ASSERT_EQ(up.status, 200) << up.body;
  EXPECT_FALSE(up.json_body()["deduplicated"]);
  up = upload(id, "bundle.tvb", lease, path, digest);
  EXPECT_TRUE(up.json_body()["deduplicated"]);
  // Bad uploads change nothing.
  EXPECT_EQ(upload(id, "other.tvb", lease, path, sha256_hex("something else")).status, 400);
  EXPECT_EQ(upload(id, "..", lease, path, digest).status, 400);
  EXPECT_EQ(upload(id, "x.tvb", lease, path, "not-a-digest").status, 400);
  const std::string big(2 << 20, 'b');
  EXPECT_EQ(upload(id, "big.tvb", lease, write_file("big", big), sha256_hex(big)).status, 413);
  EXPECT_EQ(upload(id, "x.tvb", "wrong-lease", path, digest).status, 409);
  // Without the holder's credential nothing is stored, whatever the lease.
  EXPECT_EQ(client_
                ->send_file("PUT", "/v1/job/" + id + "/artifact/y.tvb", path,
                            {{"X-Worker-Token", "worker-secret"},
                             {"X-Lease-Token", lease},
                             {"X-Content-SHA256", digest}})
                .status,
            401);
  EXPECT_EQ(client_
                ->send_file("PUT", "/v1/job/" + id + "/artifact/y.tvb", path,
                            {{"X-Host-Credential", credential("host-2")},
                             {"X-Lease-Token", lease},
                             {"X-Content-SHA256", digest}})
                .status,
            403);
  const auto arts =
      client_->request("GET", "/v1/job/" + id + "/artifacts").json_body()["artifacts"];
  ASSERT_EQ(arts.size(), 1u);
  EXPECT_EQ(arts[0]["digest"], digest);

  EXPECT_EQ(post("/v1/job/" + id + "/complete",
                 {{"lease_token", lease}, {"artifact", sha256_hex("never")}})
                .status,
            400);
  EXPECT_EQ(
      post("/v1/job/" + id + "/complete", {{"lease_token", lease}, {"artifact", digest}}).status,
      200);
  const json row = client_->request("GET", "/v1/job/" + id).json_body();
  EXPECT_EQ(row["status"], "completed");
  EXPECT_EQ(row["artifact"], digest);
  const std::string back = (dir_ / "back").string();
  EXPECT_EQ(client_->download("/v1/artifact/" + digest, back).status, 200);
  std::ifstream in(back, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), {}), bytes);
  EXPECT_EQ(client_->request("GET", "/v1/artifact/" + sha256_hex("nope") + "/stat").status, 404);
}

// GET /metrics after a job ran through the coordinator: claims, a human's config write and the
// telemetry that showed it applied, an upload, a completion, a download; routes by pattern only.
TEST_F(CoordinatorTest, MetricsCountWhatAJobDid) {
  const json c = claim("host-1");
  claim("host-2");
  EXPECT_TRUE(claim("host-3")["job"].is_null());  // two jobs, both taken
  host_ = "host-1";
  const std::string id = c["job"]["id"], lease = c["lease_token"];
  ASSERT_EQ(post("/v1/job/" + id + "/running", {{"lease_token", lease}}).status, 200);
  auto r = client_->request("POST", "/v1/job/" + id + "/config",
                            json{{"writes", {{"training/optimizer/learning_rate", 0.02}}}}.dump(),
                            {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json point = {{"step", 5}, {"loss", 0.5}, {"config_revision", 2}};
  r = post("/v1/job/" + id + "/telemetry", {{"host", "host-1"}, {"points", {point}}});
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string bytes = "TVBUNDLE1\nweights";
  const std::string digest = sha256_hex(bytes);
  ASSERT_EQ(upload(id, "bundle.tvb", lease, write_file("b.tvb", bytes), digest).status, 200);
  ASSERT_EQ(
      post("/v1/job/" + id + "/complete", {{"lease_token", lease}, {"artifact", digest}}).status,
      200);
  ASSERT_EQ(client_->download("/v1/artifact/" + digest, (dir_ / "back").string()).status, 200);

  const http::Response m = client_->request("GET", "/metrics");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.content_type, "text/plain; version=0.0.4; charset=utf-8");
  const std::string& t = m.body;
  EXPECT_EQ(sample(t, "trainvisor_jobs{status=\"completed\"}"), 1) << t;
  // host-2's job is claimed, or back to pending once the fixture's 400 ms stale_after swept it
  // (a slow run, as under TSan): one of the two, either way.
  EXPECT_EQ(sample(t, "trainvisor_jobs{status=\"claimed\"}") +
                sample(t, "trainvisor_jobs{status=\"pending\"}"),
            1)
      << t;
  EXPECT_EQ(sample(t, "trainvisor_claims_total{outcome=\"granted\"}"), 2) << t;
  EXPECT_EQ(sample(t, "trainvisor_claims_total{outcome=\"none\"}"), 1) << t;
  EXPECT_EQ(sample(t, "trainvisor_config_writes_total{actor_kind=\"human\",outcome=\"accepted\"}"),
            1)
      << t;
  EXPECT_EQ(sample(t, "trainvisor_config_writes_total{actor_kind=\"policy\",outcome=\"accepted\"}"),
            0)
      << t;
  EXPECT_EQ(sample(t, "trainvisor_config_apply_lag_seconds_count"), 1) << t;
  EXPECT_EQ(sample(t, "trainvisor_config_apply_lag_seconds_bucket{le=\"300\"}"), 1) << t;
  EXPECT_EQ(sample(t, "trainvisor_telemetry_batches_total"), 1) << t;
  EXPECT_EQ(sample(t, "trainvisor_telemetry_points_total"), 1) << t;
  EXPECT_EQ(sample(t, "trainvisor_artifact_uploaded_bytes_total"), double(bytes.size())) << t;
  EXPECT_EQ(sample(t, "trainvisor_artifact_downloaded_bytes_total"), double(bytes.size())) << t;
  EXPECT_EQ(sample(t, "trainvisor_config_streams"), 0) << t;
  EXPECT_EQ(sample(t,
                   "trainvisor_http_requests_total{route=\"/v1/job/claim\",method=\"POST\","
                   "code=\"200\"}"),
            3)
      << t;
  EXPECT_EQ(sample(t,
                   "trainvisor_http_requests_total{route=\"/v1/job/{id}/complete\","
                   "method=\"POST\",code=\"200\"}"),
            1)
      << t;
  EXPECT_EQ(sample(t, "trainvisor_http_request_duration_seconds_count{route=\"/v1/job/claim\"}"), 3)
      << t;
  // Labels name routes, never a job or an artifact.
  EXPECT_EQ(t.find(id), std::string::npos);
  EXPECT_EQ(t.find(digest), std::string::npos);
  EXPECT_EQ(t.find("# TYPE trainvisor_jobs gauge\n"), t.rfind("# TYPE trainvisor_jobs gauge\n"));
}

TEST_F(CoordinatorTest, SweptLeaseIsFencedOff) {
  const json first = claim("slow-host");
  const std::string id = first["job"]["id"], old_lease = first["lease_token"];
  // Silent past its 400 ms lease: a sweep (every 50 ms) returns the job to pending.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string status;
  while ((status = client_->request("GET", "/v1/job/" + id).json_body()["status"]) != "pending" &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(status, "pending") << "the sweep never returned the silent holder's job";
  // The late holder is refused everywhere, and nothing it says changes the job.
  EXPECT_EQ(post("/v1/job/" + id + "/heartbeat", {{"lease_token", old_lease}}).status, 409);
  EXPECT_EQ(post("/v1/job/" + id + "/complete", {{"lease_token", old_lease}}).status, 409);
  EXPECT_EQ(
      post("/v1/job/" + id + "/fail", {{"lease_token", old_lease}, {"class", "trainer_failure"}})
          .status,
      409);
  const std::string bytes = "late";
  EXPECT_EQ(
      upload(id, "bundle.tvb", old_lease, write_file("late", bytes), sha256_hex(bytes)).status,
      409);
  // Another host takes it over.
  json second;
  for (int i = 0;
       i < 2 && (second.is_null() || second["job"].is_null() || second["job"]["id"] != id); ++i) {
    second = claim("fast-host");
  }
  ASSERT_EQ(second["job"]["id"], id);
  EXPECT_EQ(second["attempt"], 2);
  EXPECT_EQ(post("/v1/job/" + id + "/complete", {{"lease_token", second["lease_token"]}}).status,
            200);
  EXPECT_EQ(post("/v1/job/" + id + "/complete", {{"lease_token", old_lease}}).status, 409);
  const std::string metrics = client_->request("GET", "/metrics").body;
  EXPECT_GE(sample(metrics, "trainvisor_swept_leases_total"), 1) << metrics;
  EXPECT_GE(sample(metrics, "trainvisor_stale_sweeps_total"), 1) << metrics;
}

TEST_F(CoordinatorTest, OperatorCancelRequeueAndBadRequests) {
  const json c = claim("h");
  const std::string id = c["job"]["id"], lease = c["lease_token"];
  const auto op = [&](const std::string& target) {
    return post(target, json::object(), "op-secret", "X-Operator-Token");
  };
  auto r = op("/v1/job/" + id + "/cancel");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(r.json_body()["was_running"]);
  EXPECT_EQ(r.json_body()["worker"], "h");
  // The holder learns of it from its next heartbeat.
  const auto hb = post("/v1/job/" + id + "/heartbeat", {{"lease_token", lease}});
  // The contract: the lease still holds (200) and says the job is cancelled, so the holder stops
  // its trainer and reports; a 409 here would read as a lost lease and skip that report.
  ASSERT_EQ(hb.status, 200) << hb.body;
  EXPECT_EQ(hb.json_body()["cancel_requested"], true) << hb.body;
  EXPECT_EQ(op("/v1/job/" + id + "/requeue").status, 200);
  EXPECT_EQ(client_->request("GET", "/v1/job/" + id).json_body()["status"], "pending");
  EXPECT_EQ(op("/v1/job/nope/cancel").status, 404);
  EXPECT_EQ(client_->request("GET", "/v1/job/nope").status, 404);
  EXPECT_EQ(client_->request("GET", "/v1/jobs?status=bogus").status, 400);
  EXPECT_EQ(
      client_->request("POST", "/v1/job/claim", "{oops", {{"X-Host-Credential", credential("h")}})
          .status,
      400);
  r = post("/v1/job/claim", {{"capability", json::object()}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.json_body()["error"], "missing field 'worker' (a non-empty string)");
  EXPECT_EQ(post("/v1/job/" + id + "/fail", {{"lease_token", "x"}, {"class", "meteor"}}).status,
            400);
}

TEST_F(CoordinatorTest, ReloadIsIdempotentAndDryRunWritesNothing) {
  const auto op = [&](const std::string& target) {
    return post(target, json::object(), "op-secret", "X-Operator-Token");
  };
  auto r = op("/v1/manifest/reload");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["written"], 0);
  EXPECT_EQ(r.json_body()["unchanged"].size(), 2u);
  std::ofstream(manifest_, std::ios::app)
      << "[[jobs]]\nname = \"tiny-c\"\nmodel = \"tiny\"\nseed = 3\n";
  r = op("/v1/manifest/reload?dry_run=1");
  EXPECT_EQ(r.json_body()["added"], json::array({"tiny-c"}));
  EXPECT_EQ(client_->request("GET", "/v1/jobs").json_body()["jobs"].size(), 2u);
  r = op("/v1/manifest/reload");
  EXPECT_EQ(r.json_body()["added"], json::array({"tiny-c"}));
  EXPECT_EQ(client_->request("GET", "/v1/jobs").json_body()["jobs"].size(), 3u);
  // A broken manifest is refused with its diagnostics and changes nothing.
  std::ofstream(manifest_, std::ios::app) << "[[jobs]]\nname = \"bad\"\nmodel = \"tinny\"\n";
  r = op("/v1/manifest/reload");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.json_body()["diagnostics"][0].get<std::string>().find("did you mean 'tiny'?"),
            std::string::npos)
      << r.body;
  EXPECT_EQ(client_->request("GET", "/v1/jobs").json_body()["jobs"].size(), 3u);
}

TEST_F(CoordinatorTest, ConfigHubOverHttp) {
  const std::string id = claim("h")["job"]["id"];  // tiny-b, which runs the plateau policy
  auto tree = client_->request("GET", "/v1/job/" + id + "/config").json_body();
  EXPECT_EQ(tree["revision"], 1);
  const auto human = [&](const json& body) {
    return client_->request("POST", "/v1/job/" + id + "/config", body.dump(),
                            {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  };
  const auto policy = [&](const json& body, const std::string& host = "h") {
    return client_->request("POST", "/v1/job/" + id + "/config", body.dump(),
                            {{"X-Host-Credential", credential(host)}});
  };
  auto r = human({{"writes", {{"training/optimizer/learning_rate", 0.02}}}, {"reason", "slower"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["revision"], 2);
  EXPECT_EQ(r.json_body()["actor"], "human:ana");
  EXPECT_EQ(human({{"writes", {{"training/optimizer/learning_rat", 0.02}}}}).status, 400);
  EXPECT_EQ(client_
                ->request("POST", "/v1/job/" + id + "/config",
                          R"({"writes":{"training/optimizer/momentum":0.5}})")
                .status,
            401);
  const auto op = [&](const std::string& what, const json& body) {
    return client_->request("POST", "/v1/job/" + id + "/config/" + what, body.dump(),
                            {{"X-Operator-Token", "op-secret"}});
  };
  r = op("freeze", {{"prefix", "training/optimzer"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("did you mean 'training/optimizer'?"), std::string::npos) << r.body;
  ASSERT_EQ(op("freeze", {{"prefix", "training/optimizer"}}).status, 200);
  r = policy({{"policy", "plateau"},
              {"writes", {{"training/optimizer/learning_rate", 0.01}}},
              {"reason", "flat"}});
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(human({{"writes", {{"training/optimizer/learning_rate", 0.03}}}}).status, 200);
  EXPECT_EQ(op("unfreeze", {{"prefix", "training/optimizer"}}).status, 200);
  // Only the holder writes, and only as one of the job's policies; nothing is recorded otherwise.
  const json write = {{"policy", "plateau"},
                      {"writes", {{"training/optimizer/learning_rate", 0.01}}}};
  EXPECT_EQ(policy(write, "h2").status, 403);
  json other = write;
  other["policy"] = "divergence";
  r = policy(other);
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("runs no policy 'divergence'"), std::string::npos) << r.body;
  // The worker token writes only under a policy name of its own, never as the job's plugin.
  r = client_->request("POST", "/v1/job/" + id + "/config", write.dump(),
                       {{"X-Worker-Token", "worker-secret"}});
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("runs the policy 'plateau' on its host"), std::string::npos) << r.body;
  r = policy(write);
  EXPECT_EQ(r.status, 200) << r.body;
  tree = client_->request("GET", "/v1/job/" + id + "/config").json_body();
  EXPECT_EQ(tree["revision"], 4);
  EXPECT_EQ(tree["values"]["training/optimizer/learning_rate"], 0.01);
  const auto log = client_->request("GET", "/v1/job/" + id + "/config/log").json_body()["entries"];
  // Three accepted writes, the refused one, the freeze and the unfreeze.
  ASSERT_EQ(log.size(), 6u);
  EXPECT_EQ(log[1]["kind"], "freeze");
  EXPECT_EQ(log[1]["path"], "training/optimizer");
  EXPECT_EQ(log[2]["actor"], "policy:plateau");
  EXPECT_FALSE(log[2]["accepted"]);
  EXPECT_EQ(log[4]["kind"], "unfreeze");
  EXPECT_EQ(log[5]["old"], 0.03);
}

// A policy running as its own process writes with the worker token under a name of its own, to
// a job a trainer runs, and meets the hub's freeze, validation, human-wins and audit like any
// policy.
TEST_F(CoordinatorTest, APolicyWithTheWorkerTokenWritesToARunningJob) {
  const json c = claim("h");  // tiny-b; tiny-a stays pending
  const std::string id = c["job"]["id"];
  ASSERT_EQ(post("/v1/job/" + id + "/running", {{"lease_token", c["lease_token"]}}).status, 200);
  std::string pending;
  const json jobs = client_->request("GET", "/v1/jobs").json_body()["jobs"];
  for (const auto& j : jobs) {
    if (j["status"] == "pending") pending = j["id"];
  }
  ASSERT_FALSE(pending.empty());
  const auto write = [&](const std::string& job, const json& body,
                         std::vector<std::pair<std::string, std::string>> headers = {
                             {"X-Worker-Token", "worker-secret"}}) {
    return client_->request("POST", "/v1/job/" + job + "/config", body.dump(), headers);
  };
  const auto lr = [](double v, const std::string& name = "py-supervisor",
                     std::uint64_t decided_from = 1) {
    return json{{"policy", name},
                {"writes", {{"training/optimizer/learning_rate", v}}},
                {"reason", "loss flat"},
                {"decided_from", decided_from}};
  };
  auto r = write(id, lr(0.025));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["actor"], "policy:py-supervisor");
  EXPECT_EQ(r.json_body()["revision"], 2);

  // Refused before the hub, nothing recorded: a pending job, a wrong token, a bad name, a host
  // credential that proves nothing (the worker token beside it does not help), a bad value.
  r = write(pending, lr(0.025));
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("is pending: no trainer runs it"), std::string::npos) << r.body;
  EXPECT_EQ(write(id, lr(0.02), {{"X-Worker-Token", "worker-secrex"}}).status, 401);
  for (const std::string& name :
       std::vector<std::string>{"Py Supervisor", "py:sup", std::string(65, 'p')}) {
    r = write(id, lr(0.02, name));
    EXPECT_EQ(r.status, 400) << name;
    EXPECT_NE(r.body.find("policy name '"), std::string::npos) << r.body;
  }
  r = write(id, lr(0.02, ""));
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("field 'policy'"), std::string::npos) << r.body;
  EXPECT_EQ(
      write(id, lr(0.02), {{"X-Worker-Token", "worker-secret"}, {"X-Host-Credential", "h:wrong"}})
          .status,
      401);
  EXPECT_EQ(write(id, lr(100.0)).status, 400);
  const auto log = [&] {
    return client_->request("GET", "/v1/job/" + id + "/config/log").json_body()["entries"];
  };
  EXPECT_EQ(log().size(), 1u);

  // A frozen folder holds it: 409 with the hub's reason, and the refusal is in the log.
  ASSERT_EQ(post("/v1/job/" + id + "/config/freeze", {{"prefix", "training/optimizer"}},
                 "op-secret", "X-Operator-Token")
                .status,
            200);
  r = write(id, lr(0.0125, "py-supervisor", 2));
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("under the frozen prefix training/optimizer; policy:py-supervisor may not "
                        "write it"),
            std::string::npos)
      << r.body;
  json entries = log();
  ASSERT_EQ(entries.size(), 3u);  // the write, the freeze, the refusal
  EXPECT_EQ(entries[2]["actor"], "policy:py-supervisor");
  EXPECT_FALSE(entries[2]["accepted"]);
  EXPECT_NE(entries[2]["refusal"].get<std::string>().find("frozen prefix"), std::string::npos);
  ASSERT_EQ(post("/v1/job/" + id + "/config/unfreeze", {{"prefix", "training/optimizer"}},
                 "op-secret", "X-Operator-Token")
                .status,
            200);

  // The human wins: a decision made before a human's write of its key is refused (412).
  r = client_->request("POST", "/v1/job/" + id + "/config",
                       json{{"writes", {{"training/optimizer/learning_rate", 0.04}}}}.dump(),
                       {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  ASSERT_EQ(r.status, 200) << r.body;
  r = write(id, lr(0.0125, "py-supervisor", 2));
  EXPECT_EQ(r.status, 412);
  EXPECT_NE(r.body.find("the human's value stands"), std::string::npos) << r.body;
  EXPECT_EQ(client_->request("GET", "/v1/job/" + id + "/config")
                .json_body()["values"]["training/optimizer/learning_rate"],
            0.04);
}

TEST_F(CoordinatorTest, AnEarlyStopIsStoppedByItsWriterAndAFinishedJobRefusesWrites) {
  const json c = claim("h");
  const std::string id = c["job"]["id"], lease = c["lease_token"];
  const auto human = [&](const json& writes, const std::string& reason) {
    return client_->request("POST", "/v1/job/" + id + "/config",
                            json{{"writes", writes}, {"reason", reason}}.dump(),
                            {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  };
  ASSERT_EQ(human({{"training/control/early_stop", true}}, "enough for today").status, 200);
  auto r = post("/v1/job/" + id + "/complete", {{"lease_token", lease}, {"early_stopped", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  json row = client_->request("GET", "/v1/job/" + id).json_body();
  EXPECT_EQ(row["status"], "stopped");
  EXPECT_EQ(row["stopped_by"], "human:ana");
  EXPECT_EQ(row["stop_reason"], "enough for today");
  EXPECT_EQ(client_->request("GET", "/v1/health").json_body()["jobs"]["stopped"], 1);

  // A finished job takes no more writes: 409 naming it and its status; nothing is recorded.
  r = human({{"training/optimizer/learning_rate", 0.02}}, "too late");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.json_body()["error"].get<std::string>().find("'tiny-b' (" + id + ") is stopped"),
            std::string::npos)
      << r.body;
  const auto log = [&] {
    return client_->request("GET", "/v1/job/" + id + "/config/log").json_body()["entries"];
  };
  EXPECT_EQ(log().size(), 1u);

  // A requeue runs it again: the early stop is cleared in the operator's name, writes reopen.
  ASSERT_EQ(
      post("/v1/job/" + id + "/requeue", json::object(), "op-secret", "X-Operator-Token").status,
      200);
  row = client_->request("GET", "/v1/job/" + id).json_body();
  EXPECT_EQ(row["status"], "pending");
  EXPECT_EQ(row["stopped_by"], "");
  const json tree = client_->request("GET", "/v1/job/" + id + "/config").json_body();
  EXPECT_EQ(tree["values"]["training/control/early_stop"], false);
  EXPECT_EQ(log().back()["reason"], "requeued: the job runs again");
  EXPECT_EQ(human({{"training/optimizer/learning_rate", 0.02}}, "now").status, 200);

  // The trainer's own early stop, with no write on record, is named as the trainer's.
  const json again = claim("h");
  ASSERT_EQ(again["job"]["id"], id);
  ASSERT_EQ(post("/v1/job/" + id + "/complete",
                 {{"lease_token", again["lease_token"]}, {"early_stopped", true}})
                .status,
            200);
  EXPECT_EQ(client_->request("GET", "/v1/job/" + id).json_body()["stopped_by"], "trainer");
}

TEST_F(CoordinatorTest, ReloadNamesReplacedJobsAndAnAmbiguousNameIsAConflict) {
  const auto jobs = client_->request("GET", "/v1/jobs").json_body()["jobs"];
  const std::string old_id = jobs[0]["name"] == "tiny-a" ? jobs[0]["id"] : jobs[1]["id"];
  auto r = client_->request("GET", "/v1/jobs/tiny-a");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json_body()["id"], old_id);
  EXPECT_EQ(client_->request("GET", "/v1/jobs/" + old_id.substr(0, 8)).json_body()["id"], old_id);
  EXPECT_EQ(client_->request("GET", "/v1/jobs/no-such-job").status, 404);

  // tiny-a's seed changes: a new job (new id) beside the old one, and the reload says so.
  std::string text = kManifest;
  text.replace(text.find("seed = 1"), 8, "seed = 7");
  std::ofstream(manifest_) << text;
  r = post("/v1/manifest/reload", json::object(), "op-secret", "X-Operator-Token");
  ASSERT_EQ(r.status, 200) << r.body;
  const json replaced = r.json_body()["replaced"];
  ASSERT_EQ(replaced.size(), 1u) << r.body;
  EXPECT_EQ(replaced[0]["name"], "tiny-a");
  EXPECT_EQ(replaced[0]["replaces"], json::array({old_id}));
  const std::string new_id = replaced[0]["id"];
  EXPECT_NE(new_id, old_id);

  // The name now names two jobs: 409 listing both with their status; the ids still work.
  r = client_->request("GET", "/v1/jobs/tiny-a");
  EXPECT_EQ(r.status, 409);
  const std::string error = r.json_body()["error"];
  EXPECT_NE(error.find(old_id + " (pending)"), std::string::npos) << error;
  EXPECT_NE(error.find(new_id + " (pending)"), std::string::npos) << error;
  EXPECT_EQ(client_->request("GET", "/v1/jobs/" + new_id).json_body()["id"], new_id);
  // A reload that changes nothing replaces nothing.
  r = post("/v1/manifest/reload", json::object(), "op-secret", "X-Operator-Token");
  EXPECT_TRUE(r.json_body()["replaced"].empty()) << r.body;
}

TEST_F(CoordinatorTest, EnrolmentIsTrustOnFirstUseAndAnOperatorRevokes) {
  const auto enrol = [&](const std::string& name, const std::string& token,
                         const std::string& header) {
    return client_->request("POST", "/v1/hosts/" + name + "/enrol", "{}", {{header, token}});
  };
  const std::string first = credential("h");
  // The worker token cannot take an enrolled name, nor enrol a name that cannot name a host.
  auto r = enrol("h", "worker-secret", "X-Worker-Token");
  EXPECT_EQ(r.status, 409);
  EXPECT_NE(r.body.find("host h is already enrolled; an operator can revoke it"), std::string::npos)
      << r.body;
  EXPECT_EQ(enrol("h", "wrong", "X-Worker-Token").status, 401);
  EXPECT_EQ(enrol("a:b", "worker-secret", "X-Worker-Token").status, 400);
  EXPECT_EQ(claim("h")["job"]["name"], "tiny-b");
  // Revoked: refused, and the worker token cannot enrol the name again; an operator can.
  ASSERT_EQ(post("/v1/hosts/h/revoke", json::object(), "op-secret", "X-Operator-Token").status,
            200);
  EXPECT_EQ(post("/v1/hosts/nobody/revoke", json::object(), "op-secret", "X-Operator-Token").status,
            404);
  EXPECT_EQ(post("/v1/hosts/h/revoke", json::object()).status, 401);
  EXPECT_EQ(post("/v1/job/claim", {{"worker", "h"}, {"capability", json::object()}}).status, 401);
  EXPECT_EQ(enrol("h", "worker-secret", "X-Worker-Token").status, 409);
  r = enrol("h", "op-secret", "X-Operator-Token");
  ASSERT_EQ(r.status, 200) << r.body;
  credentials_["h"] = r.json_body().at("credential");
  EXPECT_NE(credentials_["h"], first);
  EXPECT_EQ(claim("h")["job"]["name"], "tiny-a");
}

TEST_F(CoordinatorTest, TheDataDirectoryAndTheDatabaseAreOwnerOnly) {
  client_.reset();
  coordinator_.reset();
  const fs::path data = dir_ / "data";
  fs::permissions(data, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
  for (const char* f : {"coordinator.sqlite", "coordinator.sqlite-wal", "coordinator.sqlite-shm"}) {
    if (fs::exists(data / f))
      fs::permissions(data / f,
                      fs::perms::owner_read | fs::perms::owner_write | fs::perms::others_read);
  }
  std::vector<std::string> notes;
  CoordinatorOptions o;
  o.data_dir = data.string();
  o.operator_token = "op-secret";
  o.worker_token = "worker-secret";
  o.on_error = [&](const std::string& m) { notes.push_back(m); };
  coordinator_ = std::make_unique<Coordinator>(o);
  EXPECT_EQ(fs::status(data).permissions() & fs::perms::all, fs::perms::owner_all);
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("was mode 0755; made it 0700"), std::string::npos) << notes[0];
  int files = 0;
  for (const char* f : {"coordinator.sqlite", "coordinator.sqlite-wal", "coordinator.sqlite-shm"}) {
    if (!fs::exists(data / f)) continue;
    ++files;
    EXPECT_EQ(fs::status(data / f).permissions() & fs::perms::all,
              fs::perms::owner_read | fs::perms::owner_write)
        << f;
  }
  EXPECT_GE(files, 1);
}

// The knob schema a config editor reads: every knob the trainer has, typed as config values are,
// with when a change takes effect.
TEST_F(CoordinatorTest, TheKnobSchemaSaysWhenEachChangeTakesEffect) {
  const auto r = client_->request("GET", "/v1/knobs");
  ASSERT_EQ(r.status, 200) << r.body;
  const json body = r.json_body();
  std::map<std::string, json> knobs;
  for (const json& k : body.at("knobs"))
    knobs[k.at("key")] = k;
  ASSERT_EQ(knobs.size(), 12u) << r.body;
  for (const auto& [key, k] : knobs) {
    const std::string effect = k.at("takes_effect");
    EXPECT_TRUE(effect == "next_step" || effect == "next_epoch" || effect == "start" ||
                effect == "agent")
        << key << ": " << effect;
    EXPECT_FALSE(k.at("help").get<std::string>().empty()) << key;
  }
  const json& lr = knobs.at("training/optimizer/learning_rate");
  EXPECT_EQ(lr, (json{{"key", "training/optimizer/learning_rate"},
                      {"type", "float64"},
                      {"default", 0.05},
                      {"min", 0.0},
                      {"max", 10.0},
                      {"allowed", json::array()},
                      {"help", "learning rate"},
                      {"takes_effect", "next_step"}}));
  // A float keeps its decimal point, an int64's bounds are integers.
  EXPECT_NE(r.body.find(R"("default":0.0,"help":"clip the gradient norm)"), std::string::npos)
      << r.body;
  const json& batch = knobs.at("training/control/batch_size");
  EXPECT_EQ(batch.at("type"), "int64");
  EXPECT_TRUE(batch.at("default").is_number_integer());
  EXPECT_TRUE(batch.at("min").is_number_integer());
  EXPECT_EQ(batch.at("max"), 65536);
  EXPECT_EQ(batch.at("takes_effect"), "next_epoch");
  const json& optimizer = knobs.at("training/optimizer/name");
  EXPECT_EQ(optimizer.at("type"), "string");
  EXPECT_EQ(optimizer.at("allowed"), (json{"sgd", "adamw"}));
  EXPECT_TRUE(optimizer.at("min").is_null());
  EXPECT_EQ(optimizer.at("takes_effect"), "start");
  EXPECT_EQ(knobs.at("trainvisor/revision").at("takes_effect"), "agent");
  EXPECT_TRUE(knobs.at("trainvisor/revision").at("max").is_null());
  const json& early = knobs.at("training/control/early_stop");
  EXPECT_EQ(early.at("default"), false);
  EXPECT_EQ(early.at("takes_effect"), "next_step");
  for (const char* key : {"training/control/max_epochs", "training/control/eval_every",
                          "training/control/checkpoint_every", "training/regularization/dropout"}) {
    EXPECT_EQ(knobs.at(key).at("takes_effect"), "next_step") << key;
  }
}

// A log tail as a host sends it: raw bytes with the holder's credential and lease token.
TEST_F(CoordinatorTest, ALogTailFromTheHolderIsCleanedKeptAndServed) {
  const json c = claim("h1");
  const std::string id = c["job"]["id"], lease = c["lease_token"];
  const std::string target = "/v1/job/" + id + "/log";
  auto log = client_->request("GET", target);
  ASSERT_EQ(log.status, 200) << log.body;
  EXPECT_EQ(log.json_body(), (json{{"job", id},
                                   {"host", nullptr},
                                   {"updated_ms", nullptr},
                                   {"lines", json::array()},
                                   {"truncated", false}}));
  EXPECT_EQ(client_->request("GET", "/v1/job/nope/log").status, 404);
  const auto send = [&](const std::string& host, const std::string& token, const std::string& body,
                        const std::string& query = "?truncated=1") {
    return client_->request("POST", target + query, body,
                            {{"X-Host-Credential", credential(host)}, {"X-Lease-Token", token}});
  };
  auto r = send("h2", lease, "not mine\n");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_NE(r.body.find("held by h1, not h2"), std::string::npos) << r.body;
  EXPECT_EQ(send("h1", "wrong-lease", "x\n").status, 409);
  r = send("h1", lease, std::string(64 * 1024 + 1, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("65537 bytes is over the limit of 65536 bytes"), std::string::npos)
      << r.body;
  std::string many;
  for (int i = 0; i < 201; ++i)
    many += "line " + std::to_string(i) + "\n";
  r = send("h1", lease, many);
  EXPECT_EQ(r.status, 413);
  EXPECT_NE(r.body.find("201 lines is over the limit of 200 lines"), std::string::npos) << r.body;
  r = send("h1", lease, "x\n", "?truncated=yes");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("truncated"), std::string::npos) << r.body;
  EXPECT_TRUE(client_->request("GET", target).json_body()["lines"].empty());  // nothing kept

  const std::string tail =
      "plain\n"
      "\x1b[1;31mred\x1b[0m text \x1b]0;title\x07"
      "done\n"
      "bad \xff\xfe bytes, cut \xe2\x82 and whole \xe2\x82\xac\n"
      "<script>alert(\"x\")</script>\n"
      "tab\there\x01\x7f\r\n"
      "50%\r100%\n"
      "no newline yet";
  r = send("h1", lease, tail);
  ASSERT_EQ(r.status, 200) << r.body;
  log = client_->request("GET", target);
  const json got = log.json_body();
  EXPECT_EQ(got["lines"],
            (json{"plain", "red text done",
                  "bad \xef\xbf\xbd\xef\xbf\xbd bytes, cut \xef\xbf\xbd\xef\xbf\xbd "
                  "and whole \xe2\x82\xac",
                  "<script>alert(\"x\")</script>", "tab\there", "100%", "no newline yet"}))
      << log.body;
  EXPECT_EQ(got["host"], "h1");
  EXPECT_GT(got["updated_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(got["truncated"], true);
  // A new tail replaces the old one; a failed job keeps its last.
  ASSERT_EQ(send("h1", lease, "Traceback: boom\n", "").status, 200);
  ASSERT_EQ(post("/v1/job/" + id + "/fail",
                 {{"lease_token", lease}, {"class", "trainer_failure"}, {"reason", "boom"}})
                .status,
            200);
  const json last = client_->request("GET", target).json_body();
  EXPECT_EQ(last["lines"], (json{"Traceback: boom"}));
  EXPECT_EQ(last["truncated"], false);
}

}  // namespace
}  // namespace tv::fleet
