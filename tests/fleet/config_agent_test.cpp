// The WebSocket transport and the host's config agent, with real sockets on 127.0.0.1 and real
// shared-memory blocks: first against a scripted server (exact messages: gaps, freezes, bad
// values), then against a real coordinator whose stream loses deltas and drops connections.
#include "trainvisor/fleet/config_agent.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "refusing_port.hpp"
#include "test_coordinator.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

template <class F>
bool eventually(F f, std::chrono::milliseconds limit = 10s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (f()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return f();
}

// A stream endpoint that sends what the test queues, and records each subscription's `from`.
class ScriptedServer {
 public:
  ScriptedServer() {
    std::vector<http::Route> routes;
    routes.push_back({"GET", "/v1/job/{id}/config/stream",
                      [this](http::Request& req, http::BodyStream*) {
                        if (req.header("x-host-credential") != "h:secret")
                          return http::Response::error(401, "missing or wrong X-Host-Credential");
                        http::Response r;
                        r.status = 101;
                        return r;
                      },
                      false,
                      [this](const http::Request& req, http::WebSocketSession& ws) {
                        int me = 0;
                        {
                          std::lock_guard lock(mu_);
                          froms_.push_back(std::stoull(req.query.at("from")));
                          me = ++sessions_;
                        }
                        cv_.notify_all();
                        // Only the newest session sends or drops: an older one's handler may
                        // not have seen its client leave yet, and must not take what is meant
                        // for the session that replaced it.
                        while (ws.open()) {
                          std::unique_lock lock(mu_);
                          const auto mine = [&] { return me == sessions_ && !queue_.empty(); };
                          const auto dropped = [&] { return me == sessions_ && drop_; };
                          cv_.wait_for(lock, 20ms, [&] { return mine() || dropped(); });
                          if (dropped()) {
                            drop_ = false;
                            return;
                          }
                          while (mine()) {
                            const std::string m = queue_.front();
                            queue_.pop_front();
                            lock.unlock();
                            ws.send(m);
                            lock.lock();
                          }
                        }
                      }});
    server_ = std::make_unique<http::Server>(http::ServerOptions{}, routes);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void send(const json& m) {
    {
      std::lock_guard lock(mu_);
      queue_.push_back(m.dump());
    }
    cv_.notify_all();
  }
  void drop() {
    {
      std::lock_guard lock(mu_);
      drop_ = true;
    }
    cv_.notify_all();
  }
  std::vector<std::uint64_t> froms() {
    std::lock_guard lock(mu_);
    return froms_;
  }
  bool wait_sessions(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return sessions_ >= n; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::vector<std::uint64_t> froms_;
  int sessions_ = 0;
  bool drop_ = false;
  std::unique_ptr<http::Server> server_;
};

class ConfigAgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    job_ = "agent-test-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    shm::ConfigBlockWriter::remove(shm::block_name_for_job(job_));
  }
  void TearDown() override { shm::ConfigBlockWriter::remove(shm::block_name_for_job(job_)); }
  std::unique_ptr<ConfigAgent> agent(const std::string& url) {
    ConfigAgentOptions o;
    o.coordinator = http::ClientOptions{url, {}, 5s};
    o.host_credential = "h:secret";
    o.job_id = job_;
    o.initial = {{"training/optimizer/learning_rate", 0.1}};
    o.backoff_min = 10ms;
    o.backoff_max = 200ms;
    o.idle_timeout = 2s;
    return std::make_unique<ConfigAgent>(o);
  }
  double block_lr() {
    const auto r = shm::ConfigBlockReader::attach(shm::block_name_for_job(job_));
    return r.resolve<double>("training/optimizer/learning_rate").get(-1);
  }
  std::int64_t block_revision() {
    const auto r = shm::ConfigBlockReader::attach(shm::block_name_for_job(job_));
    return r.resolve<std::int64_t>("trainvisor/revision").get(-1);
  }
  std::string job_;
};

TEST(WebSocketTest, RefusedUpgradesAndPlainRequestsGetHttpReplies) {
  ScriptedServer server;
  try {
    http::WebSocketClient ws(http::ClientOptions{server.url(), {}, 5s}, "/v1/job/x/config/stream",
                             {{"X-Host-Credential", "h:wrong"}});
    FAIL() << "upgrade accepted with a wrong token";
  } catch (const http::WebSocketRefused& e) {
    EXPECT_EQ(e.status, 401);
    EXPECT_NE(e.body.find("X-Host-Credential"), std::string::npos);
  }
  http::Client plain(http::ClientOptions{server.url(), {}, 5s});
  const auto r = plain.request("GET", "/v1/job/x/config/stream?from=0", "",
                               {{"X-Host-Credential", "h:secret"}});
  EXPECT_EQ(r.status, 426);
  const tv::test::RefusingPort closed;
  EXPECT_THAT(
      [&] {
        http::WebSocketClient(http::ClientOptions{closed.url(), {}, 2s}, "/");
      },
      ThrowsMessage<std::runtime_error>("cannot connect to " + closed.url() +
                                        ": Connection refused"));
}

TEST(WebSocketTest, ReceivesInOrderTimesOutWhenIdleAndCanBeInterrupted) {
  ScriptedServer server;
  http::WebSocketClient ws(http::ClientOptions{server.url(), {}, 5s},
                           "/v1/job/x/config/stream?from=0", {{"X-Host-Credential", "h:secret"}});
  for (int i = 0; i < 100; ++i)
    server.send({{"n", i}});
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(json::parse(ws.receive(5s))["n"], i);
  EXPECT_THAT([&] { ws.receive(100ms); },
              ThrowsMessage<std::runtime_error>(HasSubstr("timed out after 100 ms")));

  http::WebSocketClient ws2(http::ClientOptions{server.url(), {}, 5s},
                            "/v1/job/x/config/stream?from=0", {{"X-Host-Credential", "h:secret"}});
  // interrupt() ends a receive that would otherwise wait its whole 30 s: the message says which.
  std::thread stopper([&] { ws2.interrupt(); });
  EXPECT_THAT([&] { ws2.receive(30s); },
              ThrowsMessage<std::runtime_error>("websocket to " + server.url() + " interrupted"));
  stopper.join();
}

TEST_F(ConfigAgentTest, AppliesASnapshotThenDeltasAndResyncsOnAGap) {
  ScriptedServer server;
  auto a = agent(server.url());
  ASSERT_TRUE(server.wait_sessions(1));
  EXPECT_EQ(server.froms().at(0), 1u);  // a new block is revision 1
  server.send({{"type", "snapshot"},
               {"revision", 5},
               {"values", {{"training/optimizer/learning_rate", 0.05}}},
               {"frozen", json::array()}});
  ASSERT_TRUE(eventually([&] { return block_revision() == 5; }));
  EXPECT_EQ(block_lr(), 0.05);
  server.send({{"type", "delta"},
               {"revision", 6},
               {"actor", "human:ana"},
               {"writes", {{"training/optimizer/learning_rate", 0.04}}}});
  ASSERT_TRUE(eventually([&] { return block_revision() == 6; }));
  EXPECT_EQ(block_lr(), 0.04);
  // Revision 7 was lost: 8 shows the gap, and the agent resubscribes from 6.
  server.send({{"type", "delta"},
               {"revision", 8},
               {"actor", "human:ana"},
               {"writes", {{"training/optimizer/learning_rate", 0.03}}}});
  ASSERT_TRUE(server.wait_sessions(2));
  EXPECT_EQ(server.froms().at(1), 6u);
  EXPECT_EQ(block_lr(), 0.04);
  EXPECT_EQ(a->stats().gaps, 1u);
  // A keepalive naming a revision the agent has not seen is a gap too.
  server.send({{"type", "resume"}, {"frozen", json::array()}});
  server.send({{"type", "keepalive"}, {"revision", 9}});
  ASSERT_TRUE(server.wait_sessions(3));
  EXPECT_EQ(server.froms().at(2), 6u);
  EXPECT_EQ(a->stats().gaps, 2u);
}

TEST_F(ConfigAgentTest, RefusesPolicyWritesUnderAFrozenPrefixAndValuesOutOfRange) {
  ScriptedServer server;
  auto a = agent(server.url());
  ASSERT_TRUE(server.wait_sessions(1));
  server.send({{"type", "resume"}, {"frozen", json::array()}});
  server.send({{"type", "freeze"}, {"prefix", "training/optimizer"}, {"frozen", true}});
  server.send({{"type", "delta"},
               {"revision", 2},
               {"actor", "policy:plateau"},
               {"writes", {{"training/optimizer/learning_rate", 0.01}}}});
  ASSERT_TRUE(eventually([&] { return block_revision() == 2; }));
  EXPECT_EQ(block_lr(), 0.1);  // the last good value stays
  auto refusals = a->take_refusals();
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].revision, 2u);
  EXPECT_NE(refusals[0].reason.find("frozen prefix training/optimizer"), std::string::npos);
  // A human may write there; a value outside the schema is refused whoever sends it.
  server.send({{"type", "delta"},
               {"revision", 3},
               {"actor", "human:ana"},
               {"writes", {{"training/optimizer/learning_rate", 0.02}}}});
  server.send({{"type", "delta"},
               {"revision", 4},
               {"actor", "human:ana"},
               {"writes", {{"training/optimizer/learning_rate", 50.0}}}});
  ASSERT_TRUE(eventually([&] { return block_revision() == 4; }));
  EXPECT_EQ(block_lr(), 0.02);
  refusals = a->take_refusals();
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].revision, 4u);
  EXPECT_NE(refusals[0].reason.find("learning_rate"), std::string::npos);
  // Unfrozen: the policy's next write applies.
  server.send({{"type", "freeze"}, {"prefix", "training/optimizer"}, {"frozen", false}});
  server.send({{"type", "delta"},
               {"revision", 5},
               {"actor", "policy:plateau"},
               {"writes", {{"training/optimizer/learning_rate", 0.015}}}});
  ASSERT_TRUE(eventually([&] { return block_revision() == 5; }));
  EXPECT_EQ(block_lr(), 0.015);
  EXPECT_EQ(a->stats().refused, 2u);
}

TEST_F(ConfigAgentTest, ReconnectsAfterADropAndARestartedAgentAdoptsItsBlock) {
  ScriptedServer server;
  {
    auto a = agent(server.url());
    ASSERT_TRUE(server.wait_sessions(1));
    server.send({{"type", "resume"}, {"frozen", json::array()}});
    server.send({{"type", "delta"},
                 {"revision", 2},
                 {"actor", "api"},
                 {"writes", {{"training/optimizer/learning_rate", 0.07}}}});
    ASSERT_TRUE(eventually([&] { return block_revision() == 2; }));
    server.drop();
    ASSERT_TRUE(server.wait_sessions(2));
    EXPECT_EQ(server.froms().at(1), 2u);
    EXPECT_FALSE(a->stats().adopted_block);
  }  // the agent stops; its block stays, as after a host daemon's death
  auto b = agent(server.url());
  EXPECT_TRUE(b->stats().adopted_block);
  EXPECT_EQ(b->revision(), 2u);
  EXPECT_EQ(block_lr(), 0.07);
  ASSERT_TRUE(server.wait_sessions(3));
  EXPECT_EQ(server.froms().at(2), 2u);  // resumes from the block's revision
}

// A coordinator's options over a fresh directory whose manifest has one tiny job. The seed makes
// the job's id, and so its block's name, differ between tests that ctest runs side by side.
// Host h's credential, once h holds the coordinator's one job: the stream admits its holder.
std::string holder_credential(http::Client& client) {
  const auto e = client.request("POST", "/v1/hosts/h/enrol", "{}", {{"X-Worker-Token", "wk"}});
  EXPECT_EQ(e.status, 200) << e.body;
  const std::string credential = e.json_body().value("credential", "");
  const json claim = {{"worker", "h"}, {"capability", {{"cores", 2}, {"ram_gib", 8.0}}}};
  const auto c =
      client.request("POST", "/v1/job/claim", claim.dump(), {{"X-Host-Credential", credential}});
  EXPECT_EQ(c.status, 200) << c.body;
  EXPECT_FALSE(c.json_body()["job"].is_null()) << c.body;
  return credential;
}

CoordinatorOptions one_job_coordinator(const fs::path& dir, int seed) {
  fs::remove_all(dir);
  return test::coordinator_options(dir, "[[jobs]]\nname = \"j\"\nmodel = \"tiny\"\nseed = " +
                                            std::to_string((::getpid() % 100000) * 10 + seed) +
                                            "\n");
}

TEST(ConfigStreamTest, AnAgentConvergesOnACoordinatorThatLosesDeltasAndDropsStreams) {
  const fs::path dir = fs::temp_directory_path() / ("tv-stream-" + std::to_string(::getpid()));
  CoordinatorOptions o = one_job_coordinator(dir, 1);
  o.stream_keepalive = 50ms;
  o.stream_fault.skip_every = 3;
  o.stream_fault.close_every = 7;
  {
    Coordinator c(o);
    http::Client client(http::ClientOptions{c.url(), {}, 5s});
    const std::string id = client.request("GET", "/v1/jobs").json_body()["jobs"][0]["id"];
    shm::ConfigBlockWriter::remove(shm::block_name_for_job(id));
    ConfigAgentOptions ao;
    ao.coordinator = http::ClientOptions{c.url(), {}, 5s};
    ao.host_credential = holder_credential(client);
    ao.job_id = id;
    ao.backoff_min = 5ms;
    ao.backoff_max = 50ms;
    ConfigAgent agent(ao);
    const auto reader = shm::ConfigBlockReader::attach(agent.block_name());
    auto lr = reader.resolve<double>("training/optimizer/learning_rate");
    std::uint64_t last = 0;
    for (int i = 1; i <= 40; ++i) {
      const auto r =
          client.request("POST", "/v1/job/" + id + "/config",
                         json{{"writes", {{"training/optimizer/learning_rate", 0.001 * i}}}}.dump(),
                         {{"X-Operator-Token", "op"}});
      ASSERT_EQ(r.status, 200) << r.body;
      last = r.json_body()["revision"];
    }
    ASSERT_TRUE(eventually([&] { return agent.revision() == last; }, 20s))
        << "agent at " << agent.revision() << ", hub at " << last;
    EXPECT_EQ(lr.get(0), 0.040);
    EXPECT_GT(agent.stats().gaps, 0u);
    EXPECT_GT(agent.stats().connects, 2u);
    agent.remove_block();
  }
  fs::remove_all(dir);
}

TEST(ConfigStreamTest, RunsOverTlsWithAVerifiedCertificate) {
  const fs::path dir = fs::temp_directory_path() / ("tv-stream-tls-" + std::to_string(::getpid()));
  CoordinatorOptions o = one_job_coordinator(dir, 2);
  const std::string cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl could not make a certificate";
  o.http.tls_cert_file = cert;
  o.http.tls_key_file = key;
  {
    Coordinator c(o);
    const std::string url = "https://localhost:" + std::to_string(c.port());
    http::Client client(http::ClientOptions{url, cert, 5s});
    const std::string id = client.request("GET", "/v1/jobs").json_body()["jobs"][0]["id"];
    shm::ConfigBlockWriter::remove(shm::block_name_for_job(id));
    ConfigAgentOptions ao;
    ao.coordinator = http::ClientOptions{url, cert, 5s};
    ao.host_credential = holder_credential(client);
    ao.job_id = id;
    ConfigAgent agent(ao);
    const auto r =
        client.request("POST", "/v1/job/" + id + "/config",
                       json{{"writes", {{"training/optimizer/learning_rate", 0.0125}}}}.dump(),
                       {{"X-Operator-Token", "op"}});
    ASSERT_EQ(r.status, 200) << r.body;
    const auto reader = shm::ConfigBlockReader::attach(agent.block_name());
    auto lr = reader.resolve<double>("training/optimizer/learning_rate");
    EXPECT_TRUE(eventually([&] { return lr.get(0) == 0.0125; }));
    agent.remove_block();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tv::fleet
