// The coordinator's side of the dashboard over real HTTP on 127.0.0.1: the bundle at / and its
// security headers, a metric's downsampled curve (a million points included, its reply's size
// and time printed), config markers with the step each change took effect at, and the events
// push channel (origin, hello, subscriptions, a client that does not read).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "trainvisor/fleet/api/events.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/coordinator_store.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"
#include "two_tiny_jobs.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char* const kManifest = test_data::kTwoTinyJobs;

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("tv-dash-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "fleet.toml") << kManifest;
  }
  void TearDown() override {
    client_.reset();
    coordinator_.reset();
    fs::remove_all(dir_);
  }
  void start(const std::function<void(CoordinatorOptions&)>& tweak = {}) {
    CoordinatorOptions o;
    o.data_dir = (dir_ / "data").string();
    o.manifest_path = (dir_ / "fleet.toml").string();
    o.operator_token = "op-secret";
    o.worker_token = "worker-secret";
    o.plugin_dirs = {TV_PLUGIN_DIR};
    if (tweak) tweak(o);
    coordinator_ = std::make_unique<Coordinator>(o);
    client_ = std::make_unique<http::Client>(
        http::ClientOptions{coordinator_->url(), {}, std::chrono::seconds(30)});
  }
  http::Response get(const std::string& target) { return client_->request("GET", target); }
  // `host`, enrolled with the worker token, claims a job: its credential and the claim's reply.
  std::pair<std::string, json> claim_as(const std::string& host) {
    auto r = client_->request("POST", "/v1/hosts/" + host + "/enrol", "{}",
                              {{"X-Worker-Token", "worker-secret"}});
    EXPECT_EQ(r.status, 200) << r.body;
    const std::string credential = r.json_body().value("credential", "");
    r = client_->request("POST", "/v1/job/claim",
                         json{{"worker", host}, {"capability", {{"cores", 2}}}}.dump(),
                         {{"X-Host-Credential", credential}});
    EXPECT_EQ(r.status, 200) << r.body;
    return {credential, r.json_body()};
  }
  std::string job_id(const std::string& name) {
    const json jobs = get("/v1/jobs").json_body();
    for (const json& j : jobs["jobs"]) {
      if (j["name"] == name) return j["id"];
    }
    ADD_FAILURE() << "no job " << name;
    return "";
  }

 public:
  // The store the coordinator keeps telemetry in, opened beside it: points appended here are
  // what a host's batches would have stored.
  TelemetryStore telemetry() {
    return TelemetryStore::open((dir_ / "data" / kCoordinatorDatabase).string());
  }
  http::ClientOptions ws_options() const {
    return {coordinator_->url(), {}, std::chrono::seconds(10)};
  }

 protected:
  fs::path dir_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<http::Client> client_;
};

std::string header(const http::Response& r, std::string name) {
  const auto lower = [](std::string s) {
    for (char& c : s)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  for (const auto& [k, v] : r.headers) {
    if (lower(k) == lower(name)) return v;
  }
  return "";
}

void expect_security_headers(const http::Response& r, const std::string& what) {
  EXPECT_EQ(header(r, "Content-Security-Policy"),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
      << what;
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff") << what;
  EXPECT_EQ(header(r, "Referrer-Policy"), "no-referrer") << what;
}

TEST_F(DashboardTest, WithoutABundleTheRootSaysTheDashboardIsNotBuilt) {
  start();
  const auto r = get("/");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("the dashboard is not built"), std::string::npos) << r.body;
  EXPECT_EQ(r.content_type, "text/plain; charset=utf-8");
  expect_security_headers(r, "/");
  expect_security_headers(get("/v1/health"), "/v1/health");
  const auto unknown = get("/no/such/path");
  EXPECT_EQ(unknown.status, 404);
  expect_security_headers(unknown, "the server's own 404");
  EXPECT_EQ(header(get("/v1/jobs"), "Cache-Control"), "no-store");
}

TEST_F(DashboardTest, TheBundleIsServedAndNothingOutsideIt) {
  const fs::path web = dir_ / "web";
  fs::create_directories(web / "assets");
  std::ofstream(web / "index.html") << "<!doctype html><script src=/assets/app-5KQ2ZJ3A.js>";
  std::ofstream(web / "assets" / "app-5KQ2ZJ3A.js") << "console.log(1)";
  std::ofstream(web / "assets" / "style.css") << "body{}";
  std::ofstream(web / "assets" / "notes.txt") << "not served";
  std::ofstream(dir_ / "secret.js") << "secret";
  fs::create_symlink(dir_ / "secret.js", web / "assets" / "link.js");
  start([&](CoordinatorOptions& o) { o.web_root = web.string(); });
  auto r = get("/");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_EQ(header(r, "Cache-Control"), "no-cache");
  expect_security_headers(r, "/");
  r = get("/assets/app-5KQ2ZJ3A.js");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "console.log(1)");
  EXPECT_EQ(r.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(header(r, "Cache-Control"), "public, max-age=31536000, immutable");
  expect_security_headers(r, "an asset");
  r = get("/assets/style.css");
  EXPECT_EQ(r.content_type, "text/css; charset=utf-8");
  EXPECT_EQ(header(r, "Cache-Control"), "no-cache");  // no content hash in its name
  EXPECT_EQ(get("/assets/notes.txt").status, 404);
  r = get("/assets/link.js");
  EXPECT_EQ(r.status, 404) << "a symbolic link out of the root";
  EXPECT_EQ(r.body.find("secret"), std::string::npos);
  for (const std::string bad : {"/assets/..", "/assets/%2e%2e", "/assets/..%5cindex.html"}) {
    r = get(bad);
    EXPECT_GE(r.status, 400) << bad;
    EXPECT_EQ(r.body.find("doctype"), std::string::npos) << bad;
  }
  EXPECT_EQ(get("/assets/..%2f..%2fsecret.js").status, 404);
  EXPECT_EQ(get("/v1/health").status, 200);  // the API is not shadowed
}

// A point of a long test curve: loss known except every 7th step, one millisecond a step.
plugin::TelemetryPoint point(std::uint64_t step, std::uint64_t revision = 1) {
  plugin::TelemetryPoint p;
  p.step = step;
  p.wall_time_ns = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(step) * 1'000'000;
  p.config_revision = revision;
  if (step % 7 != 3) p.loss = std::sin(static_cast<double>(step) * 1e-3) + double(step % 97) / 100;
  return p;
}

void append_points(TelemetryStore& t, const std::string& job, std::uint64_t from, std::uint64_t to,
                   std::uint64_t revision = 1) {
  constexpr std::uint64_t kBatch = 10000;
  for (std::uint64_t b = from; b < to; b += kBatch) {
    std::vector<plugin::TelemetryPoint> batch;
    for (std::uint64_t s = b; s < std::min(to, b + kBatch); ++s)
      batch.push_back(point(s, revision));
    t.append(job, batch, "h", 0, 0);
  }
}

// The reply's buckets against the same buckets computed from the points themselves.
void expect_exact_buckets(const json& reply, std::uint64_t points) {
  const std::int64_t from = reply["from"], to = reply["to"], width = reply["bucket_width"];
  std::map<std::int64_t, std::array<double, 5>> expected;  // count, min, max, first, last
  for (std::uint64_t s = 0; s < points; ++s) {
    const auto step = static_cast<std::int64_t>(s);
    const double v = point(s).loss;
    if (step < from || step > to || std::isnan(v)) continue;
    auto [it, fresh] = expected.try_emplace((step - from) / width, std::array{0.0, v, v, v, v});
    auto& e = it->second;
    e[0] += 1;
    e[1] = std::min(e[1], v);
    e[2] = std::max(e[2], v);
    e[4] = v;
  }
  const json& buckets = reply["buckets"];
  ASSERT_EQ(buckets.size(), expected.size());
  std::size_t i = 0;
  for (const auto& [index, e] : expected) {
    const json& b = buckets[i++];
    ASSERT_EQ(b[0], from + index * width);
    EXPECT_EQ(b[2].get<double>(), e[0]) << "count of bucket " << index;
    EXPECT_EQ(b[3].get<double>(), e[1]) << "min of bucket " << index;
    EXPECT_EQ(b[4].get<double>(), e[2]) << "max of bucket " << index;
    EXPECT_EQ(b[5].get<double>(), e[3]) << "first of bucket " << index;
    EXPECT_EQ(b[6].get<double>(), e[4]) << "last of bucket " << index;
  }
}

// Appends `points` points to tiny-a and checks its 1000-bucket loss curve, printing the reply's
// size and time.
void check_long_curve(DashboardTest& t, http::Client& client, const std::string& job,
                      std::uint64_t points) {
  TelemetryStore store = t.telemetry();
  const auto appended = Clock::now();
  append_points(store, job, 0, points);
  const auto asked = Clock::now();
  const auto r = client.request("GET", "/v1/job/" + job + "/curve?metric=loss&buckets=1000");
  const auto answered = Clock::now();
  ASSERT_EQ(r.status, 200) << r.body;
  const json reply = json::parse(r.body);
  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::printf("curve of %llu points in 1000 buckets: %zu bytes, %lld ms (appending took %lld ms)\n",
              static_cast<unsigned long long>(points), r.body.size(),
              static_cast<long long>(ms(answered - asked)),
              static_cast<long long>(ms(asked - appended)));
  EXPECT_LE(reply["buckets"].size(), 1000u);
  EXPECT_EQ(reply["from"], 0);
  EXPECT_EQ(reply["to"], points - 1);
  expect_exact_buckets(reply, points);
  // A zoom into the oldest part reads the long-term layer, still exact at whole aggregates.
  const auto zoom =
      client.request("GET", "/v1/job/" + job + "/curve?metric=loss&buckets=100&from=5000&to=15000");
  ASSERT_EQ(zoom.status, 200) << zoom.body;
  expect_exact_buckets(zoom.json_body(), points);
}

TEST_F(DashboardTest, AMillionPointCurveIsWholeAndExactPerBucket) {
  start();
  check_long_curve(*this, *client_, job_id("tiny-a"), 1'000'000);
  // Retention kept the newest points whole and the rest as aggregates.
  const json c = get("/v1/job/" + job_id("tiny-a") + "/curve?metric=loss").json_body();
  EXPECT_EQ(c["exact_from"], 1'000'000 - kDefaultTelemetryKeep);
  EXPECT_EQ(c["rollup_steps"], kDefaultRollupSteps);
}

TEST_F(DashboardTest, AHundredThousandPointCurveIsExactPerBucket) {
  start();
  check_long_curve(*this, *client_, job_id("tiny-a"), 100'000);
  EXPECT_TRUE(get("/v1/job/" + job_id("tiny-a") + "/curve?metric=loss")
                  .json_body()["exact_from"]
                  .is_null());
}

TEST_F(DashboardTest, CurveParametersAreCheckedAndTimeIsAnAxis) {
  start();
  const std::string job = job_id("tiny-a");
  const std::string base = "/v1/job/" + job + "/curve";
  for (const auto& [query, names] :
       {std::pair{"", "metric: missing; one of loss, val_loss"},
        std::pair{"?metric=los", "metric: 'los' is not one of loss, val_loss, val_accuracy"},
        std::pair{"?metric=loss&x=epoch", "x: 'epoch' is not one of step, time"},
        std::pair{"?metric=loss&buckets=0", "buckets"},
        std::pair{"?metric=loss&buckets=10001", "buckets"},
        std::pair{"?metric=loss&from=9&to=3", "from: 9 is after to (3)"}}) {
    const auto r = get(base + query);
    EXPECT_EQ(r.status, 400) << query;
    EXPECT_NE(r.body.find(names), std::string::npos) << query << ": " << r.body;
  }
  EXPECT_EQ(get("/v1/job/nope/curve?metric=loss").status, 404);
  EXPECT_TRUE(get(base + "?metric=loss").json_body()["buckets"].empty());
  TelemetryStore store = telemetry();
  append_points(store, job, 0, 1000);
  const json c = get(base + "?metric=loss&x=time&buckets=10").json_body();
  EXPECT_EQ(c["x"], "time");
  EXPECT_EQ(c["from"], 1'700'000'000'000);  // Unix milliseconds
  EXPECT_EQ(c["to"], 1'700'000'000'999);
  ASSERT_EQ(c["buckets"].size(), 10u);
  std::uint64_t count = 0;
  for (const json& b : c["buckets"])
    count += b[2].get<std::uint64_t>();
  EXPECT_EQ(count, 1000u - 143u);  // every 7th loss is missing
  EXPECT_TRUE(get(base + "?metric=val_loss").json_body()["buckets"].empty());
}

TEST_F(DashboardTest, MarkersGiveEachChangeItsActorKeysAndTheStepItTookEffect) {
  start();
  const auto [credential, claim] = claim_as("h");
  const std::string id = claim["job"]["id"];  // tiny-b, which runs plateau
  http::Response r;
  const auto as_operator = [&](const std::string& what, const json& body) {
    return client_->request("POST", "/v1/job/" + id + "/config" + what, body.dump(),
                            {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  };
  ASSERT_EQ(as_operator("", {{"writes", {{"training/optimizer/learning_rate", 0.02}}},
                             {"reason", "slower"}})
                .status,
            200);
  ASSERT_EQ(as_operator("/freeze", {{"prefix", "training/optimizer"}}).status, 200);
  r = client_->request("POST", "/v1/job/" + id + "/config",
                       json{{"policy", "plateau"},
                            {"writes", {{"training/optimizer/learning_rate", 0.01}}},
                            {"reason", "flat"}}
                           .dump(),
                       {{"X-Host-Credential", credential}});
  ASSERT_EQ(r.status, 409) << r.body;
  TelemetryStore store = telemetry();
  append_points(store, id, 0, 100, 1);
  append_points(store, id, 100, 200, 2);
  const json m = get("/v1/job/" + id + "/config/markers").json_body();
  ASSERT_EQ(m["markers"].size(), 3u) << m.dump(1);
  const json& write = m["markers"][0];
  EXPECT_EQ(write["kind"], "write");
  EXPECT_EQ(write["revision"], 2);
  EXPECT_EQ(write["actor"], "human:ana");
  EXPECT_EQ(write["reason"], "slower");
  EXPECT_TRUE(write["accepted"]);
  EXPECT_EQ(write["applied_step"], 100);
  ASSERT_EQ(write["keys"].size(), 1u);
  EXPECT_EQ(write["keys"][0]["path"], "training/optimizer/learning_rate");
  EXPECT_EQ(write["keys"][0]["new"], 0.02);
  EXPECT_EQ(m["markers"][1]["kind"], "freeze");
  EXPECT_TRUE(m["markers"][1]["applied_step"].is_null());
  const json& refused = m["markers"][2];
  EXPECT_EQ(refused["actor"], "policy:plateau");
  EXPECT_FALSE(refused["accepted"]);
  EXPECT_FALSE(refused["refusal"].get<std::string>().empty());
  EXPECT_TRUE(refused["applied_step"].is_null());
  EXPECT_EQ(m["after"], refused["last_seq"]);
  // Paging on from `after` gives nothing more.
  EXPECT_TRUE(get("/v1/job/" + id + "/config/markers?after=" + m["after"].dump())
                  .json_body()["markers"]
                  .empty());
}

// The next message of `type` on `ws`, skipping others; fails after `limit`.
json next_of_type(http::WebSocketClient& ws, const std::string& type,
                  std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    json j = json::parse(ws.receive(limit));
    if (j["type"] == type) return j;
  }
  throw std::runtime_error("no " + type + " message within the limit");
}

TEST_F(DashboardTest, EventsRefuseAnotherSitesOrigin) {
  start();
  try {
    http::WebSocketClient ws(ws_options(), "/v1/events", {{"Origin", "http://evil.example"}});
    FAIL() << "upgraded";
  } catch (const http::WebSocketRefused& e) {
    EXPECT_EQ(e.status, 403);
    EXPECT_NE(e.body.find("origin 'http://evil.example' is not this server's"), std::string::npos)
        << e.body;
  }
  const std::string own = "http://127.0.0.1:" + std::to_string(coordinator_->port());
  http::WebSocketClient ws(ws_options(), "/v1/events", {{"Origin", own}});
  EXPECT_EQ(next_of_type(ws, "ready")["public_reads"], true);
}

TEST_F(DashboardTest, EventsTakeAtMostHalfTheWebSocketSessions) {
  start([](CoordinatorOptions& o) { o.http.max_websocket_sessions = 4; });
  http::WebSocketClient first(ws_options(), "/v1/events");
  http::WebSocketClient second(ws_options(), "/v1/events");
  for (http::WebSocketClient* ws : {&first, &second})
    next_of_type(*ws, "ready");
  try {
    http::WebSocketClient third(ws_options(), "/v1/events");
    FAIL() << "a third events connection of four sessions was let in";
  } catch (const http::WebSocketRefused& e) {
    EXPECT_EQ(e.status, 503);
    EXPECT_NE(e.body.find("too many events connections (2)"), std::string::npos) << e.body;
  }
}

TEST_F(DashboardTest, EventsNeedAHelloWithAReadTokenWhenReadsAreNotPublic) {
  start([](CoordinatorOptions& o) {
    o.public_reads = false;
    o.read_token = "read-secret";
  });
  {
    http::WebSocketClient ws(ws_options(), "/v1/events");
    ws.send(api::events_hello("wrong"));
    try {
      ws.receive(std::chrono::seconds(10));
      FAIL() << "a wrong token was let in";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("(1008): hello: wrong read_token"), std::string::npos)
          << e.what();
    }
  }
  {
    http::WebSocketClient ws(ws_options(), "/v1/events");
    ws.send(api::events_subscribe_fleet());
    try {
      ws.receive(std::chrono::seconds(10));
      FAIL() << "a subscription without a hello was let in";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("the first message must be a hello"), std::string::npos)
          << e.what();
    }
  }
  http::WebSocketClient ws(ws_options(), "/v1/events");
  ws.send(api::events_hello("read-secret"));
  EXPECT_EQ(next_of_type(ws, "ready")["public_reads"], false);
}

TEST_F(DashboardTest, ASubscribedJobsTelemetryAndConfigArePushed) {
  start();
  const std::string job = job_id("tiny-a");
  http::WebSocketClient ws(ws_options(), "/v1/events");
  next_of_type(ws, "ready");
  ws.send(api::events_subscribe_job(job));
  const json sub = next_of_type(ws, "subscribed");
  EXPECT_EQ(sub["job"], job);
  EXPECT_EQ(sub["after_step"], -1);
  ws.send(api::events_subscribe_job("nope"));
  EXPECT_NE(next_of_type(ws, "error")["message"].get<std::string>().find("nope"),
            std::string::npos);
  TelemetryStore store = telemetry();
  append_points(store, job, 0, 10);
  std::vector<std::uint64_t> steps;
  while (steps.size() < 10) {
    const json t = next_of_type(ws, "telemetry");
    EXPECT_EQ(t["job"], job);
    EXPECT_FALSE(t["truncated"]);
    for (const json& p : t["points"])
      steps.push_back(p["step"]);
  }
  for (std::uint64_t i = 0; i < 10; ++i)
    EXPECT_EQ(steps[i], i);
  // An evaluation, then training steps: the summary keeps the evaluation's accuracy.
  plugin::TelemetryPoint evaluated = point(10);
  evaluated.val_accuracy = 0.75;
  store.append(job, {evaluated, point(11), point(12)}, "h", 0, 0);
  const auto w = client_->request(
      "POST", "/v1/job/" + job + "/config",
      json{{"writes", {{"training/optimizer/learning_rate", 0.02}}}, {"reason", "slower"}}.dump(),
      {{"X-Operator-Token", "op-secret"}, {"X-Operator-Name", "ana"}});
  ASSERT_EQ(w.status, 200) << w.body;
  // The config entry and the job's summary with its new desired revision, in either order.
  json c, summary;
  while (c.is_null() || summary.is_null()) {
    const json j = json::parse(ws.receive(std::chrono::seconds(10)));
    if (j["type"] == "config") c = j;
    if (j["type"] == "job" && j["job"]["desired_revision"] == 2) summary = j["job"];
  }
  EXPECT_EQ(c["job"], job);
  EXPECT_EQ(c["revision"], 2);
  ASSERT_EQ(c["entries"].size(), 1u);
  EXPECT_EQ(c["entries"][0]["actor"], "human:ana");
  EXPECT_EQ(c["entries"][0]["reason"], "slower");
  EXPECT_EQ(summary["id"], job);
  EXPECT_EQ(summary["name"], "tiny-a");
  EXPECT_EQ(summary["last"]["step"], 12);
  EXPECT_EQ(summary["last"]["val_accuracy"], 0.75);
}

// A job's log tail: the one kept when a client subscribes, then each new one, whole, once.
TEST_F(DashboardTest, ASubscribedJobsLogTailIsPushedWholeWhenANewOneArrives) {
  start();
  const auto [credential, claim] = claim_as("h");
  const std::string job = claim["job"]["id"], lease = claim["lease_token"];
  const auto send_tail = [&](const std::string& tail, bool truncated) {
    const auto s =
        client_->request("POST", "/v1/job/" + job + "/log?truncated=" + (truncated ? "1" : "0"),
                         tail, {{"X-Host-Credential", credential}, {"X-Lease-Token", lease}});
    ASSERT_EQ(s.status, 200) << s.body;
  };
  send_tail("epoch 1\n\x1b[33mwarning\x1b[0m: slow\n", true);
  http::WebSocketClient ws(ws_options(), "/v1/events");
  next_of_type(ws, "ready");
  ws.send(api::events_subscribe_job(job));
  next_of_type(ws, "subscribed");
  json log = json::parse(ws.receive(std::chrono::seconds(10)));  // at once, before any tick
  EXPECT_EQ(log["type"], "log") << log.dump();
  EXPECT_EQ(log["job"], job);
  EXPECT_EQ(log["host"], "h");
  EXPECT_GT(log["updated_ms"].get<std::int64_t>(), 0);
  EXPECT_EQ(log["lines"], (json{"epoch 1", "warning: slow"}));
  EXPECT_EQ(log["truncated"], true);
  send_tail("epoch 1\nwarning: slow\nepoch 2\n", false);
  log = next_of_type(ws, "log");
  EXPECT_EQ(log["lines"], (json{"epoch 1", "warning: slow", "epoch 2"}));
  EXPECT_EQ(log["truncated"], false);
  // Nothing new, nothing sent: a few ticks pass without another log message.
  const auto until = Clock::now() + 4 * api::kEventTick;
  for (auto left = 4 * api::kEventTick; left.count() > 0;
       left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now())) {
    try {
      const json j = json::parse(ws.receive(left));
      EXPECT_NE(j["type"], "log") << j.dump();
    } catch (const std::runtime_error&) {
      break;  // quiet until the end of the wait
    }
  }
}

TEST_F(DashboardTest, AClientThatDoesNotReadIsDroppedWhileAnotherKeepsReceiving) {
  start([](CoordinatorOptions& o) {
    o.http.max_websocket_queue_bytes = 512 * 1024;
    o.http.transfer_timeout = std::chrono::seconds(2);
  });
  const std::string job = job_id("tiny-a");
  http::WebSocketClient idle(ws_options(), "/v1/events");
  http::WebSocketClient reader(ws_options(), "/v1/events");
  for (http::WebSocketClient* ws : {&idle, &reader}) {
    ws->send(api::events_subscribe_job(job));
  }
  next_of_type(reader, "subscribed");
  constexpr std::uint64_t kPoints = 20000;
  std::atomic<std::uint64_t> read_through{0};
  std::thread reading([&] {
    try {
      while (read_through.load() < kPoints - 1) {
        const json t = next_of_type(reader, "telemetry");
        read_through = t["points"].back()["step"].get<std::uint64_t>();
      }
    } catch (const std::exception& e) {
      ADD_FAILURE() << "the reading client: " << e.what();
    }
  });
  TelemetryStore store = telemetry();
  for (std::uint64_t b = 0; b < kPoints; b += 1000) {
    append_points(store, job, b, b + 1000);
    std::this_thread::sleep_for(api::kEventTick + std::chrono::milliseconds(20));
  }
  reading.join();
  EXPECT_EQ(read_through.load(), kPoints - 1);
  // The idle client was cut off: what reached its socket ends in an error, not in every point.
  std::uint64_t idle_through = 0;
  std::string ended;
  try {
    for (;;) {
      const json j = json::parse(idle.receive(std::chrono::seconds(10)));
      if (j["type"] == "telemetry") idle_through = j["points"].back()["step"];
    }
  } catch (const std::exception& e) {
    ended = e.what();
  }
  EXPECT_LT(idle_through, kPoints - 1);
  EXPECT_EQ(ended.find("timed out"), std::string::npos) << ended;
}

}  // namespace
}  // namespace tv::fleet
