// The host daemon against a scripted coordinator: a real HTTP server (the project's own, on
// 127.0.0.1, port 0) that answers the worker API as each test says, records every request, and
// can refuse, stall or go away; and real trainer processes: this executable, started by the
// daemon as `<exe> train ...`, plays a trainer whose behaviour the job's model parameters choose
// (how much telemetry it pushes, how it ends, what it does on SIGTERM).
#include "trainvisor/fleet/host_daemon.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "test_coordinator.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/config_agent.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/folder_archive.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/trainer_process.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void write_file(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  std::ofstream(tmp, std::ios::binary) << text;
  fs::rename(tmp, p);
}

std::int64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// ---------------------------------------------------------------------------------------------
// The trainer this executable plays. Parameters (--param KEY=VALUE, from the job's model_params):
//   steps, evals  telemetry records pushed (evaluations carry val_loss); default 5 and 0
//   step_ns       the trainer's clock between records (wall_time_ns = step * step_ns); default 0
//   hold          none: end at once; go: wait for the file OUT/go; term: wait for SIGTERM
//   on_term       exit: SIGTERM ends it with 4 (as the real trainer after its checkpoint);
//                 ignore: it notes the signal and goes on waiting
//   exit          its exit code (0 and 3 leave OUT/bundle.tvb unless bundle=no); signal: dies of
//                 this signal
// It writes OUT/argv, OUT/pid, OUT/started (after its telemetry), OUT/sigterm (the monotonic ns
// at which SIGTERM arrived) and, when it exits by itself, OUT/exit_code like the real trainer.
namespace fake_trainer {

std::atomic<std::int64_t> g_sigterm_ns{0};
static_assert(std::atomic<std::int64_t>::is_always_lock_free);  // used by a signal handler

void on_sigterm(int) {
  std::int64_t none = 0;
  g_sigterm_ns.compare_exchange_strong(none, monotonic_ns());
}

struct Args {
  std::string job_id;
  fs::path out;
  std::map<std::string, std::string> params;
  std::string param(const std::string& k, const std::string& fallback) const {
    const auto it = params.find(k);
    return it == params.end() ? fallback : it->second;
  }
};

// Exits without running static destructors or sanitizer exit hooks, so that the exit code the
// daemon sees is exactly `code`.
[[noreturn]] void end(const Args& a, int code) {
  write_file(a.out / "exit_code", std::to_string(code) + "\n");
  std::fprintf(stderr, "fake trainer: exit %d\n", code);
  std::fflush(nullptr);
  std::_Exit(code);
}

// Waits as `hold` says; ends the process when SIGTERM asks it to.
void hold(const Args& a) {
  const std::string how = a.param("hold", "none");
  const bool ignore_term = a.param("on_term", "exit") == "ignore";
  const auto until = Clock::now() + 60s;  // a test that lost track of it: no process outlives it
  bool noted = false;
  while (how != "none") {
    if (const std::int64_t t = g_sigterm_ns.load(); t != 0 && !noted) {
      write_file(a.out / "sigterm", std::to_string(t));
      noted = true;
      if (!ignore_term) end(a, 4);
    }
    if (how == "go" && fs::exists(a.out / "go")) return;
    if (Clock::now() > until) {
      std::fprintf(stderr, "fake trainer: gave up waiting\n");
      end(a, 99);
    }
    std::this_thread::sleep_for(2ms);
  }
}

int run(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = on_sigterm;
  ::sigaction(SIGTERM, &sa, nullptr);
  Args a;
  std::string all;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    all += arg + "\n";
    if (i + 1 >= argc) continue;
    if (arg == "--job-id") a.job_id = argv[i + 1];
    if (arg == "--out") a.out = argv[i + 1];
    if (arg == "--param") {
      const std::string kv = argv[i + 1];
      a.params[kv.substr(0, kv.find('='))] = kv.substr(kv.find('=') + 1);
    }
  }
  write_file(a.out / "argv", all);
  write_file(a.out / "pid", std::to_string(::getpid()));
  auto block = shm::ConfigBlockReader::attach(shm::block_name_for_job(a.job_id),
                                              shm::ConfigBlockReader::Access::kReadWrite);
  shm::TelemetryWriter ring = block.telemetry_writer();
  const int steps = std::stoi(a.param("steps", "5"));
  const int evals = std::stoi(a.param("evals", "0"));
  const std::int64_t step_ns = std::stoll(a.param("step_ns", "0"));
  for (int i = 1; i <= steps + evals; ++i) {
    shm::TelemetryRecord r;
    r.step = static_cast<std::uint64_t>(i);
    r.loss = 2.0 / i;
    r.learning_rate = 0.05;
    r.config_revision = 1;
    r.wall_time_ns = i * step_ns;
    if (i > steps) {
      r.flags = shm::kTelemetryEval;
      r.val_loss = 1.0;  // never improves: a plateau
      r.val_accuracy = 0.5;
    }
    ring.push(r);
  }
  write_file(a.out / "started", "");
  hold(a);
  const int code = std::stoi(a.param("exit", "0"));
  if ((code == 0 || code == 3) && a.param("bundle", "yes") == "yes")
    write_file(a.out / "bundle.tvb", "bundle of " + a.job_id + "\n");
  if (const int sig = std::stoi(a.param("signal", "0")); sig != 0) {
    std::fprintf(stderr, "fake trainer: dying of signal %d\n", sig);
    std::fflush(nullptr);
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    ::signal(sig, SIG_DFL);
    ::raise(sig);
  }
  end(a, code);
}

}  // namespace fake_trainer

// ---------------------------------------------------------------------------------------------
// One request as the scripted coordinator received it.
struct Received {
  std::string route;  // claim, running, heartbeat, telemetry, config, stat, upload, complete, fail,
                      // log
  std::string path;
  std::map<std::string, std::string> headers;
  std::string body;
  Clock::time_point at;
  std::map<std::string, std::string> query;
  json json_body() const { return json::parse(body); }
};

// The worker side of the coordinator's API, answered as the test says. Every request is recorded
// before it is answered; a stalled route holds its requests until unstall() (the daemon's client
// gives up meanwhile); go_away() stops the server (connections refused) and come_back() serves
// again on the same port.
class ScriptedCoordinator {
 public:
  ScriptedCoordinator() { serve(0); }
  ~ScriptedCoordinator() {
    {
      std::lock_guard lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    server_.reset();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // The next claim gets this job (later claims: none), in `generation` (ClaimReply).
  void offer(const JobSpec& spec, const std::string& lease, std::int64_t generation = 0) {
    std::lock_guard lock(mu_);
    offers_.push_back({spec, lease, generation});
  }
  // Every later request to `route` gets this reply.
  void answer(const std::string& route, int status, json body) {
    std::lock_guard lock(mu_);
    answers_[route] = {status, std::move(body)};
  }
  // The store has this artifact: its stat answers 200.
  void know(const std::string& digest) {
    std::lock_guard lock(mu_);
    known_.insert(digest);
  }
  void stall(const std::string& route) {
    std::lock_guard lock(mu_);
    stalled_routes_.insert(route);
  }
  void unstall() {
    {
      std::lock_guard lock(mu_);
      stalled_routes_.clear();
    }
    cv_.notify_all();
  }
  int stalled(const std::string& route) {
    std::lock_guard lock(mu_);
    return held_[route];
  }
  void go_away() {
    {
      std::lock_guard lock(mu_);
      away_ = true;
    }
    cv_.notify_all();
    server_.reset();
  }
  void come_back() {
    {
      std::lock_guard lock(mu_);
      if (!away_) return;
      away_ = false;
    }
    serve(port_);
  }

  std::vector<Received> received(const std::string& route) {
    std::lock_guard lock(mu_);
    std::vector<Received> out;
    for (const Received& r : log_)
      if (r.route == route) out.push_back(r);
    return out;
  }
  std::size_t count(const std::string& route) { return received(route).size(); }
  // The routes in the order their requests arrived.
  std::vector<std::string> order() {
    std::lock_guard lock(mu_);
    std::vector<std::string> out;
    for (const Received& r : log_)
      out.push_back(r.route);
    return out;
  }
  // Waits until `pred` holds, re-checking on every request; false after `limit`.
  template <class F>
  bool wait(F pred, std::chrono::milliseconds limit = 30s) {
    const auto until = Clock::now() + limit;
    std::unique_lock lock(mu_);
    while (true) {
      lock.unlock();
      if (pred()) return true;
      lock.lock();
      if (Clock::now() >= until) return false;
      cv_.wait_for(lock, 20ms);
    }
  }

 private:
  struct Offer {
    JobSpec spec;
    std::string lease;
    std::int64_t generation = 0;
  };
  struct Answer {
    int status;
    json body;
  };

  void serve(std::uint16_t port) {
    const auto route = [this](const std::string& method, const std::string& pattern,
                              const std::string& name, bool streamed = false) {
      return http::Route{method, pattern,
                         [this, name](http::Request& req, http::BodyStream* body) {
                           return handle(name, req, body);
                         },
                         streamed};
    };
    std::vector<http::Route> routes = {
        route("POST", "/v1/hosts/{name}/enrol", "enrol"),
        route("POST", "/v1/job/claim", "claim"),
        route("POST", "/v1/job/{id}/running", "running"),
        route("POST", "/v1/job/{id}/heartbeat", "heartbeat"),
        route("POST", "/v1/job/{id}/telemetry", "telemetry"),
        route("POST", "/v1/job/{id}/config", "config"),
        route("GET", "/v1/artifact/{digest}/stat", "stat"),
        route("PUT", "/v1/job/{id}/artifact/{name}", "upload", true),
        route("POST", "/v1/job/{id}/complete", "complete"),
        route("POST", "/v1/job/{id}/fail", "fail"),
        route("POST", "/v1/job/{id}/log", "log"),
    };
    routes.push_back(
        {"GET", "/v1/job/{id}/config/stream",
         [](http::Request&, http::BodyStream*) {
           http::Response r;
           r.status = 101;
           return r;
         },
         false, [this](const http::Request& req, http::WebSocketSession& ws) { stream(req, ws); }});
    http::ServerOptions o;
    o.port = port;
    server_ = std::make_unique<http::Server>(o, std::move(routes));
    port_ = server_->port();
  }

  // The config stream: the block's values stand (a resume), then keepalives at its revision.
  void stream(const http::Request& req, http::WebSocketSession& ws) {
    const std::uint64_t from = std::stoull(req.query.at("from"));
    ws.send(json{{"type", "resume"}, {"frozen", json::array()}}.dump());
    while (ws.open()) {
      ws.send(json{{"type", "keepalive"}, {"revision", from}}.dump());
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, 50ms, [&] { return closing_ || away_; });
    }
  }

  http::Response handle(const std::string& name, http::Request& req, http::BodyStream* body) {
    Received r{name, req.path, req.headers, req.body, Clock::now(), req.query};
    if (body) {
      std::vector<std::byte> buf(64 * 1024);
      while (const std::size_t n = body->read(buf))
        r.body.append(reinterpret_cast<const char*>(buf.data()), n);
    }
    std::unique_lock lock(mu_);
    log_.push_back(r);
    cv_.notify_all();
    if (stalled_routes_.count(name)) {
      ++held_[name];
      cv_.notify_all();
      cv_.wait(lock, [&] { return closing_ || away_ || !stalled_routes_.count(name); });
    }
    if (const auto it = answers_.find(name); it != answers_.end())
      return http::Response::json(it->second.status, it->second.body);
    return reply(name, req, r.body);
  }

  // The default answers: those of a coordinator for which everything goes right. Called with
  // mu_ held.
  http::Response reply(const std::string& name, const http::Request& req, const std::string& body) {
    if (name == "enrol")
      return http::Response::json(
          200, {{"host", req.params[0]}, {"credential", req.params[0] + ":secret"}});
    if (name == "claim") {
      if (offers_.empty()) return http::Response::json(200, {{"job", nullptr}});
      const Offer o = offers_.front();
      offers_.erase(offers_.begin());
      return http::Response::json(200, {{"job", job_spec_json(o.spec)},
                                        {"attempt", 1},
                                        {"lease_token", o.lease},
                                        {"lease_expires_ms", 0},
                                        {"generation", o.generation}});
    }
    if (name == "heartbeat")
      return http::Response::json(200, {{"ok", true}, {"cancel_requested", false}});
    if (name == "telemetry") {
      return http::Response::json(
          200, {{"ok", true}, {"stored", json::parse(body).at("points").size()}});
    }
    if (name == "config") {
      return http::Response::json(
          200, {{"revision", ++revision_},
                {"actor", "policy:" + json::parse(body).at("policy").get<std::string>()}});
    }
    if (name == "stat") {
      if (!known_.count(req.params[0]))
        return http::Response::error(404, "artifact " + req.params[0] + ": not stored");
      return http::Response::json(200, {{"digest", req.params[0]}, {"size", 1}});
    }
    if (name == "upload") {
      const std::string digest = sha256_hex(body);
      known_.insert(digest);
      return http::Response::json(
          200, {{"digest", digest}, {"size", body.size()}, {"deduplicated", false}});
    }
    return http::Response::json(200, {{"ok", true}});  // running, complete, fail
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Received> log_;
  std::vector<Offer> offers_;
  std::map<std::string, Answer> answers_;
  std::set<std::string> known_;
  std::set<std::string> stalled_routes_;
  std::map<std::string, int> held_;
  std::uint64_t revision_ = 1;
  bool closing_ = false;
  bool away_ = false;
  std::uint16_t port_ = 0;
  std::unique_ptr<http::Server> server_;  // last: stopped before the state its handlers use
};

const char* kind_name(HostEvent::Kind k) {
  switch (k) {
    case HostEvent::Kind::kClaimed:
      return "claimed";
    case HostEvent::Kind::kStarted:
      return "started";
    case HostEvent::Kind::kProgress:
      return "progress";
    case HostEvent::Kind::kPolicy:
      return "policy";
    case HostEvent::Kind::kConfig:
      return "config";
    case HostEvent::Kind::kCoordinator:
      return "coordinator";
    case HostEvent::Kind::kFinished:
      return "finished";
    case HostEvent::Kind::kFailed:
      return "failed";
    case HostEvent::Kind::kCancelled:
      return "cancelled";
    case HostEvent::Kind::kLost:
      return "lost";
  }
  return "?";
}

class HostDaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static int n = 0;
    tag_ = std::to_string(::getpid()) + "-" + std::to_string(++n);
    dir_ = fs::temp_directory_path() / ("tv-host-daemon-test-" + tag_);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }

  void TearDown() override {
    coordinator_.unstall();
    coordinator_.come_back();
    if (daemon_) {
      daemon_->stop();
      wait_done(60s);
      if (thread_.joinable()) thread_.join();
    }
    // A trainer the daemon lost track of is still this process's child: end and reap it.
    for (const JobSpec& j : jobs_) {
      const std::string pid_text = read_file(out(j) / "pid");
      if (pid_text.empty()) continue;
      const pid_t pid = std::stoi(pid_text);
      if (read_file("/proc/" + pid_text + "/cmdline").find(j.id) != std::string::npos) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
      shm::ConfigBlockWriter::remove(shm::block_name_for_job(j.id));
    }
    fs::remove_all(dir_);
  }

  JobSpec job(std::map<std::string, plugin::ParamValue> behaviour) {
    JobSpec s;
    s.id = "hdt-" + tag_ + "-" + std::to_string(jobs_.size());
    s.name = "job-" + std::to_string(jobs_.size());
    s.model = "fake";
    s.mode = "train";
    s.model_params = plugin::Params(behaviour.begin(), behaviour.end());
    s.seed = 7;
    s.max_attempts = 3;
    jobs_.push_back(s);
    return s;
  }

  HostDaemonOptions options() {
    HostDaemonOptions o;
    o.coordinator_url = coordinator_.url();
    o.worker_token = "wk";
    o.name = "host-t";
    o.work_dir = (dir_ / "work").string();
    o.trainer_exe = fs::read_symlink("/proc/self/exe").string();
    o.poll_every = 50ms;
    o.heartbeat_every = 100ms;
    o.supervise_every = 20ms;
    o.telemetry_every = 100ms;
    o.kill_grace = 10s;
    HostCapability cap;
    cap.hostname = "host-t";
    cap.cores = 2;
    cap.ram_gib = 4;
    o.capability = cap;
    o.exit_when_idle = true;
    o.on_event = [this](const HostEvent& e) {
      std::lock_guard lock(mu_);
      events_.push_back(e);
    };
    return o;
  }

  void start(HostDaemonOptions o) {
    daemon_ = std::make_unique<HostDaemon>(std::move(o));
    thread_ = std::thread([this] {
      const int n = daemon_->run();
      std::lock_guard lock(mu_);
      completed_ = n;
      done_ = true;
      done_cv_.notify_all();
    });
  }

  // Waits for run() to return (exit_when_idle: nothing left to do). Returns the jobs it completed.
  std::optional<int> wait_done(std::chrono::milliseconds limit = 30s) {
    std::unique_lock lock(mu_);
    if (!done_cv_.wait_for(lock, limit, [&] { return done_; })) return std::nullopt;
    return completed_;
  }

  fs::path out(const JobSpec& j) const { return dir_ / "work" / j.id; }

  bool wait_file(const fs::path& p, std::chrono::milliseconds limit = 20s) {
    const auto until = Clock::now() + limit;
    while (!fs::exists(p)) {
      if (Clock::now() >= until) return false;
      std::this_thread::sleep_for(5ms);
    }
    return true;
  }

  // The events of `kind` whose message holds `text`.
  std::vector<HostEvent> events(HostEvent::Kind kind, const std::string& text = "") {
    std::lock_guard lock(mu_);
    std::vector<HostEvent> out;
    for (const HostEvent& e : events_)
      if (e.kind == kind && e.message.find(text) != std::string::npos) out.push_back(e);
    return out;
  }
  std::string all_events() {
    std::lock_guard lock(mu_);
    std::string s;
    for (const HostEvent& e : events_)
      s += std::string(kind_name(e.kind)) + " " + e.job_name + ": " + e.message + "\n";
    return s;
  }

  std::string telemetry_bodies() {
    std::string s;
    for (const Received& r : coordinator_.received("telemetry"))
      s += r.body + "\n";
    return s;
  }

  std::string bundle_digest(const JobSpec& j) { return sha256_hex("bundle of " + j.id + "\n"); }

  ScriptedCoordinator coordinator_;
  std::string tag_;
  fs::path dir_;
  std::vector<JobSpec> jobs_;
  std::unique_ptr<HostDaemon> daemon_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable done_cv_;
  std::vector<HostEvent> events_;
  bool done_ = false;
  int completed_ = 0;
};

// ---------------------------------------------------------------------------------------------

TEST_F(HostDaemonTest, ClaimSpawnHeartbeatCompleteWithUpload) {
  const JobSpec j = job({{"hold", std::string("go")}, {"depth", std::int64_t{3}}});
  coordinator_.offer(j, "lease-1");
  start(options());
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  // The trainer is running: it is heartbeated (with the lease) and its telemetry reaches the
  // coordinator before it ends.
  ASSERT_TRUE(coordinator_.wait([&] { return coordinator_.count("heartbeat") >= 2; }));
  ASSERT_TRUE(coordinator_.wait([&] {
    std::set<std::uint64_t> steps;
    for (const Received& r : coordinator_.received("telemetry")) {
      const json body = r.json_body();
      for (const json& p : body.at("points"))
        steps.insert(p.at("step").get<std::uint64_t>());
    }
    return steps == std::set<std::uint64_t>{1, 2, 3, 4, 5};
  })) << telemetry_bodies();
  write_file(out(j) / "go", "");
  ASSERT_EQ(wait_done(), 1) << all_events();

  const std::string argv = read_file(out(j) / "argv");
  EXPECT_NE(argv.find("--job-id\n" + j.id + "\n--model\nfake\n--out\n" + out(j).string() +
                      "\n--seed\n7\n"),
            std::string::npos)
      << argv;
  EXPECT_NE(argv.find("--param\ndepth=3\n"), std::string::npos) << argv;
  for (const Received& r : coordinator_.received("heartbeat")) {
    EXPECT_EQ(r.path, "/v1/job/" + j.id + "/heartbeat");
    EXPECT_EQ(r.json_body().at("lease_token"), "lease-1");
    EXPECT_EQ(r.headers.at("x-host-credential"), "host-t:secret");
    EXPECT_EQ(r.headers.count("x-worker-token"), 0u);  // the worker token only enrols
  }
  EXPECT_EQ(coordinator_.received("telemetry").at(0).json_body().at("host"), "host-t");
  // Enrolled, claimed, marked running, heartbeated; then asked whether the store has the bundle,
  // sent it and completed.
  std::vector<std::string> order = coordinator_.order();
  const auto at = [&](const std::string& r) {
    return std::find(order.begin(), order.end(), r) - order.begin();
  };
  EXPECT_EQ(order.at(0), "enrol");
  EXPECT_EQ(order.at(1), "claim");
  EXPECT_LT(at("running"), at("heartbeat"));
  EXPECT_LT(at("heartbeat"), at("stat"));
  EXPECT_LT(at("stat"), at("upload"));
  EXPECT_LT(at("upload"), at("complete"));
  EXPECT_EQ(coordinator_.count("fail"), 0u);

  const std::string digest = bundle_digest(j);
  const auto stat = coordinator_.received("stat");
  ASSERT_EQ(stat.size(), 1u);
  EXPECT_EQ(stat[0].path, "/v1/artifact/" + digest + "/stat");
  const auto up = coordinator_.received("upload");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].path, "/v1/job/" + j.id + "/artifact/bundle.tvb");
  EXPECT_EQ(up[0].body, "bundle of " + j.id + "\n");
  EXPECT_EQ(up[0].headers.at("x-content-sha256"), digest);
  EXPECT_EQ(up[0].headers.at("x-lease-token"), "lease-1");
  EXPECT_EQ(up[0].headers.at("x-host-credential"), "host-t:secret");
  const auto done = coordinator_.received("complete");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].json_body(), (json{{"lease_token", "lease-1"}, {"artifact", digest}}));
  EXPECT_EQ(events(HostEvent::Kind::kFinished, "bundle " + digest).size(), 1u) << all_events();
  // The log's tail, as raw lines with the lease: sent once, after the trainer's exit, since the
  // log stayed empty through the heartbeats before it.
  const auto logs = coordinator_.received("log");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs.back().path, "/v1/job/" + j.id + "/log");
  EXPECT_EQ(logs.back().query.at("truncated"), "0");
  EXPECT_EQ(logs.back().headers.at("x-lease-token"), "lease-1");
  EXPECT_EQ(logs.back().headers.at("x-host-credential"), "host-t:secret");
  EXPECT_EQ(logs.back().body, read_file(out(j) / "trainer.log"));
  EXPECT_NE(logs.back().body.find("fake trainer: exit 0\n"), std::string::npos) << logs.back().body;
  EXPECT_LT(at("log"), at("complete"));
  // What the job left on this host is gone: its block and the file a restart would adopt.
  EXPECT_THROW(shm::ConfigBlockReader::attach(shm::block_name_for_job(j.id)), shm::ShmError);
  EXPECT_FALSE(fs::exists(out(j) / "holder.json"));
}

// The value of one series in a Prometheus text exposition (`series` as written, labels
// included); nullopt when it is not there.
std::optional<double> sample(const std::string& text, const std::string& series) {
  const std::string at = "\n" + series + " ";
  const std::size_t i = ("\n" + text).find(at);
  if (i == std::string::npos) return std::nullopt;
  return std::stod(text.substr(i + at.size() - 1));
}

// GET /metrics on the host's listener while a job runs (its per-job gauges shown) and after it
// ended (its per-job gauges gone, its exit counted).
TEST_F(HostDaemonTest, MetricsShowARunningJobAndForgetItWhenItEnds) {
  // Five records a tenth of a second apart on the trainer's clock: 10 steps per second.
  const JobSpec j = job({{"hold", std::string("go")}, {"step_ns", std::int64_t{100'000'000}}});
  coordinator_.offer(j, "lease-m");
  HostDaemonOptions o = options();
  o.metrics_port = 0;
  o.exit_when_idle = false;
  start(o);
  ASSERT_TRUE(daemon_->metrics_port().has_value());
  http::Client scraper({"http://127.0.0.1:" + std::to_string(*daemon_->metrics_port()), {}, 10s});
  const auto scrape = [&] {
    const http::Response r = scraper.request("GET", "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    return r.body;
  };
  const std::string loss = "trainvisor_host_job_loss{job=\"" + j.id + "\"}";
  const std::string rate = "trainvisor_host_job_step_rate{job=\"" + j.id + "\"}";
  std::string text;
  ASSERT_TRUE(coordinator_.wait([&] {
    text = scrape();
    return sample(text, "trainvisor_host_telemetry_points_forwarded_total") == 5.0 &&
           sample(text, loss).has_value();
  })) << text;
  EXPECT_EQ(sample(text, "trainvisor_host_jobs_running"), 1.0) << text;
  EXPECT_EQ(sample(text, "trainvisor_host_claims_granted_total"), 1.0) << text;
  EXPECT_GE(sample(text, "trainvisor_host_claims_attempted_total").value_or(0), 1.0) << text;
  EXPECT_DOUBLE_EQ(sample(text, loss).value_or(-1), 2.0 / 5) << text;
  EXPECT_DOUBLE_EQ(sample(text, rate).value_or(-1), 10.0) << text;
  EXPECT_EQ(sample(text, "trainvisor_host_telemetry_points_lost_total"), 0.0) << text;
  ASSERT_TRUE(coordinator_.wait([&] { return coordinator_.count("heartbeat") >= 1; }));

  write_file(out(j) / "go", "");
  ASSERT_TRUE(coordinator_.wait([&] {
    text = scrape();
    return sample(text, "trainvisor_host_trainer_exits_total{class=\"completed\"}") == 1.0 &&
           sample(text, "trainvisor_host_jobs_running") == 0.0;
  })) << text;
  EXPECT_EQ(text.find(j.id), std::string::npos) << text;  // its series went with it
  EXPECT_GE(sample(text, "trainvisor_host_heartbeats_sent_total").value_or(0), 1.0) << text;
  EXPECT_EQ(sample(text, "trainvisor_host_heartbeats_failed_total"), 0.0) << text;
  EXPECT_EQ(coordinator_.count("complete"), 1u);
}

// Each way a trainer can end, as the coordinator hears of it.
struct ExitCase {
  const char* name;
  int exit_code;
  int signal;
  const char* route;       // complete or fail
  const char* fail_class;  // for fail
  const char* reason;      // the start of the reason (fail) or the event's message (complete)
  bool bundle = true;      // the trainer leaves its bundle
};

void PrintTo(const ExitCase& c, std::ostream* os) {
  *os << c.name;
}

class HostDaemonExitTest : public HostDaemonTest, public ::testing::WithParamInterface<ExitCase> {};

TEST_P(HostDaemonExitTest, ExitCodeMapsToItsFailureClass) {
  const ExitCase c = GetParam();
  const JobSpec j = job({{"exit", std::int64_t{c.exit_code}},
                         {"signal", std::int64_t{c.signal}},
                         {"bundle", std::string(c.bundle ? "yes" : "no")},
                         {"steps", std::int64_t{2}}});
  coordinator_.offer(j, "lease-x");
  start(options());
  ASSERT_TRUE(wait_done()) << all_events();
  const std::string other = std::string(c.route) == "complete" ? "fail" : "complete";
  EXPECT_EQ(coordinator_.count(other), 0u) << all_events();
  const auto r = coordinator_.received(c.route);
  ASSERT_EQ(r.size(), 1u) << all_events();
  const json body = r[0].json_body();
  EXPECT_EQ(body.at("lease_token"), "lease-x");
  if (std::string(c.route) == "complete") {
    EXPECT_EQ(body.at("artifact"), bundle_digest(j));
    // The coordinator learns an early stop from the report (it names who stopped the job).
    EXPECT_EQ(body.value("early_stopped", false), c.exit_code == 3) << body.dump();
    EXPECT_EQ(coordinator_.count("upload"), 1u);
    const auto finished = events(HostEvent::Kind::kFinished, c.reason + bundle_digest(j));
    ASSERT_EQ(finished.size(), 1u) << all_events();
    EXPECT_EQ(finished[0].early_stopped, c.exit_code == 3);
  } else {
    EXPECT_EQ(body.at("class"), c.fail_class);
    EXPECT_EQ(body.at("reason").get<std::string>().rfind(c.reason, 0), 0u) << body.dump();
    EXPECT_EQ(coordinator_.count("upload"), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(
    EveryEnding, HostDaemonExitTest,
    ::testing::Values(ExitCase{"completed", 0, 0, "complete", "", "bundle "},
                      ExitCase{"early_stopped", 3, 0, "complete", "", "early stop; bundle "},
                      ExitCase{"failed", 1, 0, "fail", "trainer_failure",
                               "trainer exited 1: fake trainer: exit 1"},
                      ExitCase{"bad_input", 2, 0, "fail", "trainer_failure",
                               "trainer exited 2: fake trainer: exit 2"},
                      ExitCase{"interrupted", 4, 0, "fail", "host_lost", "host host-t shut down"},
                      ExitCase{"killed_by_a_signal", 0, SIGABRT, "fail", "trainer_failure",
                               "trainer exited 134: fake trainer: dying of signal 6"},
                      ExitCase{"completed_without_a_bundle", 0, 0, "fail", "trainer_failure",
                               "cannot read ", false}),
    [](const ::testing::TestParamInfo<ExitCase>& i) { return std::string(i.param.name); });

// A job folder holding a checkpoint of generation 0, as a completed run leaves it.
void leave_checkpoint(const fs::path& folder, std::int64_t generation) {
  fs::create_directories(folder / "checkpoint");
  std::ofstream(folder / "checkpoint" / "state.json") << "{}";
  std::ofstream(folder / "generation") << generation << "\n";
}

TEST_F(HostDaemonTest, AClaimOfANewGenerationStartsOverFromStepZero) {
  const JobSpec j = job({{"steps", std::int64_t{1}}});
  leave_checkpoint(out(j), 0);
  coordinator_.offer(j, "lease-g", 1);  // requeued to start over
  start(options());
  ASSERT_EQ(wait_done(), 1) << all_events();
  EXPECT_EQ(read_file(out(j) / "argv").find("--resume"), std::string::npos)
      << read_file(out(j) / "argv");
  EXPECT_FALSE(fs::exists(out(j) / "checkpoint" / "state.json"));
  EXPECT_EQ(read_file(out(j) / "generation"), "1\n");
  EXPECT_EQ(events(HostEvent::Kind::kStarted, "started from step 0").size(), 1u) << all_events();
}

TEST_F(HostDaemonTest, AClaimOfTheSameGenerationResumesItsCheckpoint) {
  const JobSpec j = job({{"steps", std::int64_t{1}}});
  leave_checkpoint(out(j), 2);
  coordinator_.offer(j, "lease-g", 2);  // requeued --from-checkpoint, or a lost host's retry
  start(options());
  ASSERT_EQ(wait_done(), 1) << all_events();
  EXPECT_NE(read_file(out(j) / "argv").find("--resume"), std::string::npos)
      << read_file(out(j) / "argv");
}

TEST_F(HostDaemonTest, ARefusedCredentialEndsRunNamingTheCoordinator) {
  coordinator_.answer(
      "claim", 401, {{"error", "missing, unknown or revoked X-Host-Credential"}, {"status", 401}});
  HostDaemon daemon(options());
  try {
    daemon.run();
    ADD_FAILURE() << "run() went on with a refused credential: " << all_events();
  } catch (const WorkerTokenRefused& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("host-t's credential refused"), std::string::npos) << what;
    EXPECT_NE(what.find(coordinator_.url()), std::string::npos) << what;
    EXPECT_NE(what.find("trainvisor hosts enrol host-t"), std::string::npos) << what;
  }
  EXPECT_EQ(coordinator_.count("claim"), 1u);  // once: no retry can succeed
}

TEST_F(HostDaemonTest, EnrolsOnceAndKeepsItsCredentialOwnerOnly) {
  { HostDaemon(options()).run(); }
  ASSERT_EQ(coordinator_.count("enrol"), 1u);
  const Received e = coordinator_.received("enrol").at(0);
  EXPECT_EQ(e.path, "/v1/hosts/host-t/enrol");
  EXPECT_EQ(e.headers.at("x-worker-token"), "wk");
  const fs::path file = dir_ / "work" / "host-credential";
  EXPECT_EQ(fs::status(file).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(dir_ / "work").permissions() & fs::perms::all, fs::perms::owner_all);
  std::ifstream in(file);
  std::string kept;
  std::getline(in, kept);
  EXPECT_EQ(kept, "host-t:secret");
  // A later start uses the file: no second enrolment, and no worker token needed.
  HostDaemonOptions o = options();
  o.worker_token.clear();
  { HostDaemon(o).run(); }
  EXPECT_EQ(coordinator_.count("enrol"), 1u);
  EXPECT_EQ(coordinator_.received("claim").back().headers.at("x-host-credential"), "host-t:secret");
  // Another host's credential file is refused before any call.
  o.name = "host-u";
  o.credential_file = file.string();
  try {
    HostDaemon(o).run();
    ADD_FAILURE() << "ran with host-t's credential as host-u";
  } catch (const WorkerTokenRefused& e) {
    EXPECT_NE(std::string(e.what()).find("is host 'host-t''s"), std::string::npos) << e.what();
  }
}

TEST_F(HostDaemonTest, ARefusedEnrolmentEndsRun) {
  coordinator_.answer(
      "enrol", 409,
      {{"error", "host host-t is already enrolled; an operator can revoke it"}, {"status", 409}});
  try {
    HostDaemon(options()).run();
    ADD_FAILURE() << "run() went on without a credential: " << all_events();
  } catch (const WorkerTokenRefused& e) {
    EXPECT_NE(std::string(e.what()).find("refused to enrol host host-t (HTTP 409: host host-t is "
                                         "already enrolled"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(coordinator_.count("claim"), 0u);
  EXPECT_FALSE(fs::exists(dir_ / "work" / "host-credential"));
}

TEST_F(HostDaemonTest, KnownDigestIsNotUploadedAgain) {
  const JobSpec j = job({{"steps", std::int64_t{1}}});
  coordinator_.know(bundle_digest(j));
  coordinator_.offer(j, "lease-k");
  start(options());
  ASSERT_EQ(wait_done(), 1) << all_events();
  ASSERT_EQ(coordinator_.count("stat"), 1u);
  EXPECT_EQ(coordinator_.received("stat")[0].path, "/v1/artifact/" + bundle_digest(j) + "/stat");
  EXPECT_EQ(coordinator_.count("upload"), 0u);
  const auto done = coordinator_.received("complete");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].json_body().at("artifact"), bundle_digest(j));
}

TEST_F(HostDaemonTest, LostLeaseStopsTheTrainerAndReportsNothing) {
  const JobSpec j = job({{"hold", std::string("term")}});
  coordinator_.offer(j, "lease-l");
  start(options());
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  coordinator_.answer(
      "heartbeat", 409,
      {{"error", "job " + j.id + ": the lease token is not the job's current lease"},
       {"status", 409}});
  ASSERT_EQ(wait_done(), 0) << all_events();
  // The trainer was asked to stop (it checkpoints) and did; another host holds the job now, so
  // this one neither fails, completes nor uploads it.
  EXPECT_TRUE(fs::exists(out(j) / "sigterm"));
  EXPECT_EQ(read_file(out(j) / "exit_code"), "4\n");
  EXPECT_EQ(coordinator_.count("fail"), 0u);
  EXPECT_EQ(coordinator_.count("complete"), 0u);
  EXPECT_EQ(coordinator_.count("upload"), 0u);
  EXPECT_EQ(events(HostEvent::Kind::kLost, "the coordinator took the job back").size(), 1u)
      << all_events();
  EXPECT_THROW(shm::ConfigBlockReader::attach(shm::block_name_for_job(j.id)), shm::ShmError);
}

TEST_F(HostDaemonTest, CancelStopsTheTrainerAndReportsCancelled) {
  const JobSpec j = job({{"hold", std::string("term")}});
  coordinator_.offer(j, "lease-c");
  start(options());
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  coordinator_.answer("heartbeat", 200, {{"ok", true}, {"cancel_requested", true}});
  ASSERT_EQ(wait_done(), 0) << all_events();
  EXPECT_EQ(read_file(out(j) / "exit_code"), "4\n");
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].json_body(), (json{{"lease_token", "lease-c"},
                                    {"class", "cancelled"},
                                    {"reason", "cancelled by an operator"}}));
  EXPECT_EQ(coordinator_.count("upload"), 0u);
  EXPECT_EQ(events(HostEvent::Kind::kCancelled, "cancelled by an operator").size(), 1u);
}

TEST_F(HostDaemonTest, TrainerIgnoringSigtermIsKilledAfterTheGrace) {
  const JobSpec j = job({{"hold", std::string("term")}, {"on_term", std::string("ignore")}});
  coordinator_.offer(j, "lease-g");
  HostDaemonOptions o = options();
  o.kill_grace = 1000ms;
  start(o);
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  const pid_t pid = std::stoi(read_file(out(j) / "pid"));
  coordinator_.answer("heartbeat", 200, {{"ok", true}, {"cancel_requested", true}});
  ASSERT_EQ(wait_done(), 0) << all_events();
  // It felt SIGTERM, went on, and never exited by itself: something killed it, and the daemon
  // has reaped it.
  ASSERT_TRUE(fs::exists(out(j) / "sigterm"));
  EXPECT_FALSE(fs::exists(out(j) / "exit_code")) << read_file(out(j) / "exit_code");
  errno = 0;
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].json_body().at("class"), "cancelled");
  // Not before the grace: the report follows the kill, which follows SIGTERM by kill_grace
  // (less the little time the signal took to arrive).
  const std::int64_t sigterm_ns = std::stoll(read_file(out(j) / "sigterm"));
  const std::int64_t reported_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(f[0].at.time_since_epoch()).count();
  EXPECT_GE(reported_ns - sigterm_ns, std::int64_t{800'000'000});
}

TEST_F(HostDaemonTest, AStopWhileTheCoordinatorIsAwayEndsAfterTheGrace) {
  const JobSpec j = job({{"hold", std::string("term")}});
  coordinator_.offer(j, "lease-g");
  HostDaemonOptions o = options();
  o.exit_when_idle = false;
  o.shutdown_report_grace = 1500ms;
  start(o);
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  ASSERT_TRUE(coordinator_.wait([&] { return coordinator_.count("heartbeat") >= 1; }));
  coordinator_.go_away();
  const auto stopped = Clock::now();
  daemon_->stop();
  // The trainer checkpoints and exits; nobody takes the report, and the daemon still ends.
  ASSERT_EQ(wait_done(20s), 0) << all_events();
  EXPECT_GE(Clock::now() - stopped, 1500ms);
  EXPECT_EQ(read_file(out(j) / "exit_code"), "4\n");
  EXPECT_EQ(coordinator_.count("fail"), 0u);
  EXPECT_EQ(events(HostEvent::Kind::kCoordinator, "not handed back").size(), 1u) << all_events();
}

TEST_F(HostDaemonTest, StopHandsRunningJobsBackAsHostLost) {
  const JobSpec j = job({{"hold", std::string("term")}});
  coordinator_.offer(j, "lease-s");
  HostDaemonOptions o = options();
  o.exit_when_idle = false;
  start(o);
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  daemon_->stop();
  ASSERT_EQ(wait_done(), 0) << all_events();
  EXPECT_EQ(read_file(out(j) / "exit_code"), "4\n");
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].json_body(), (json{{"lease_token", "lease-s"},
                                    {"class", "host_lost"},
                                    {"reason", "host host-t shut down"}}));
}

TEST_F(HostDaemonTest, CoordinatorUnreachableThenBack) {
  const JobSpec j = job({{"hold", std::string("go")}});
  coordinator_.offer(j, "lease-u");
  start(options());
  ASSERT_TRUE(wait_file(out(j) / "started")) << all_events();
  ASSERT_TRUE(coordinator_.wait([&] { return coordinator_.count("heartbeat") >= 1; }));
  coordinator_.go_away();
  // The trainer ends while nobody answers: the daemon keeps the result and tries again.
  write_file(out(j) / "go", "");
  ASSERT_TRUE(coordinator_.wait([&] {
    return events(HostEvent::Kind::kFailed, "Connection refused").size() >= 2;
  })) << all_events();
  coordinator_.come_back();
  ASSERT_EQ(wait_done(), 1) << all_events();
  EXPECT_EQ(coordinator_.count("fail"), 0u) << coordinator_.received("fail").at(0).body;
  const auto up = coordinator_.received("upload");
  ASSERT_EQ(up.size(), 1u);
  EXPECT_EQ(up[0].body, "bundle of " + j.id + "\n");
  ASSERT_EQ(coordinator_.count("complete"), 1u);
  EXPECT_EQ(coordinator_.received("complete")[0].json_body().at("artifact"), bundle_digest(j));
}

TEST_F(HostDaemonTest, UploadTimingOutIsRetriedNotFailed) {
  const JobSpec j = job({{"steps", std::int64_t{1}}});
  coordinator_.offer(j, "lease-t");
  coordinator_.stall("upload");
  HostDaemonOptions o = options();
  o.coordinator_timeout = 500ms;
  start(o);
  // The first upload times out in the client: the daemon must try again rather than report the
  // trainer's work as a failure.
  ASSERT_TRUE(coordinator_.wait(
      [&] { return coordinator_.stalled("upload") >= 2 || coordinator_.count("fail") > 0; }));
  coordinator_.unstall();
  ASSERT_EQ(wait_done(), 1) << all_events();
  EXPECT_EQ(coordinator_.count("fail"), 0u) << coordinator_.received("fail").at(0).body;
  ASSERT_EQ(coordinator_.count("complete"), 1u);
  EXPECT_EQ(coordinator_.received("complete")[0].json_body().at("artifact"), bundle_digest(j));
  EXPECT_EQ(coordinator_.received("upload").back().body, "bundle of " + j.id + "\n");
}

TEST_F(HostDaemonTest, RunningMarkTimingOutNeitherFailsTheJobNorLosesItsTrainer) {
  const JobSpec j = job({{"hold", std::string("go")}});
  coordinator_.offer(j, "lease-r");
  coordinator_.stall("running");
  HostDaemonOptions o = options();
  o.coordinator_timeout = 500ms;
  start(o);
  // The client sends a request twice before it gives up; a third one is the daemon trying again.
  ASSERT_TRUE(coordinator_.wait(
      [&] { return coordinator_.stalled("running") >= 3 || coordinator_.count("fail") > 0; }));
  coordinator_.unstall();
  EXPECT_EQ(coordinator_.count("fail"), 0u) << coordinator_.received("fail").at(0).body;
  ASSERT_TRUE(wait_file(out(j) / "started"));
  write_file(out(j) / "go", "");
  ASSERT_EQ(wait_done(), 1) << all_events();
  EXPECT_EQ(coordinator_.count("complete"), 1u);
  EXPECT_EQ(read_file(out(j) / "exit_code"), "0\n");
  errno = 0;
  EXPECT_EQ(::kill(std::stoi(read_file(out(j) / "pid")), 0), -1) << "the trainer was not reaped";
  EXPECT_EQ(errno, ESRCH);
}

// A plateau (the real policy plugin, patience 0) sees val_loss stay flat over two evaluations: it
// lowers the learning rate once, 0.05 -> 0.005.
JobSpec with_plateau(JobSpec j, bool dry_run) {
  j.policies.push_back({"plateau", {{"patience", std::int64_t{0}}, {"dry_run", dry_run}}});
  return j;
}

TEST_F(HostDaemonTest, PolicyWritesGoToTheCoordinator) {
  const JobSpec j =
      with_plateau(job({{"hold", std::string("go")}, {"evals", std::int64_t{2}}}), false);
  coordinator_.offer(j, "lease-p");
  start(options());
  ASSERT_TRUE(coordinator_.wait([&] { return coordinator_.count("config") >= 1; })) << all_events();
  write_file(out(j) / "go", "");
  ASSERT_EQ(wait_done(), 1) << all_events();
  const Received w = coordinator_.received("config").at(0);
  EXPECT_EQ(w.path, "/v1/job/" + j.id + "/config");
  EXPECT_EQ(w.headers.at("x-host-credential"), "host-t:secret");
  const json b = w.json_body();
  EXPECT_EQ(b.at("policy"), "plateau");
  ASSERT_EQ(b.at("writes").size(), 1u) << b.dump();
  EXPECT_DOUBLE_EQ(b.at("writes").at("training/optimizer/learning_rate").get<double>(), 0.05 * 0.1);
  EXPECT_FALSE(b.at("reason").get<std::string>().empty());
}

TEST_F(HostDaemonTest, DryRunPolicyWritesNothing) {
  const JobSpec j =
      with_plateau(job({{"hold", std::string("go")}, {"evals", std::int64_t{2}}}), true);
  coordinator_.offer(j, "lease-d");
  start(options());
  // The policy decided (the daemon reports what it would have written) ...
  ASSERT_TRUE(coordinator_.wait([&] {
    return !events(HostEvent::Kind::kPolicy, "[not applied: dry run: not applied]").empty();
  })) << all_events();
  const HostEvent e = events(HostEvent::Kind::kPolicy, "dry run").at(0);
  EXPECT_NE(e.message.find("policy:plateau: training/optimizer/learning_rate -> 0.005"),
            std::string::npos)
      << e.message;
  write_file(out(j) / "go", "");
  ASSERT_EQ(wait_done(), 1) << all_events();
  // ... and nothing of it reached the coordinator's config hub.
  EXPECT_EQ(coordinator_.count("config"), 0u) << coordinator_.received("config").at(0).body;
}

// ---------------------------------------------------------------------------------------------
// Command jobs: a shell script in a host folder stands for the user's PyTorch script.

class CommandJobTest : public HostDaemonTest {
 protected:
  // A command job running `sh trainer.sh`, the script holding `body`, in a host_workdir.
  JobSpec command_job(const std::string& body, std::vector<std::string> argv = {}) {
    const fs::path workdir = dir_ / ("trainer-" + std::to_string(jobs_.size()));
    fs::create_directories(workdir);
    std::ofstream(workdir / "trainer.sh") << "set -e\n" << body;
    JobSpec s = job({});
    s.model = "";
    s.model_params.clear();
    s.command = CommandTrainer{argv.empty() ? std::vector<std::string>{"sh", "trainer.sh"} : argv,
                               "", workdir.string()};
    jobs_.back() = s;
    return s;
  }
  fs::path out_dir(const JobSpec& j) const { return out(j) / "out"; }

  // The one upload's files, unpacked.
  fs::path uploaded(const std::string& name) {
    const auto up = coordinator_.received("upload");
    if (up.size() != 1) return {};
    EXPECT_EQ(up[0].path.substr(up[0].path.rfind('/') + 1), name);
    write_file(dir_ / "upload.tar", up[0].body);
    unpack_archive(dir_ / "upload.tar", dir_ / "uploaded");
    return dir_ / "uploaded";
  }
};

TEST_F(CommandJobTest, RunsWithTheJobsEnvironmentAndUploadsItsOutputAsATar) {
  const JobSpec j = command_job(
      "env | grep '^TRAINVISOR_' | sort > \"$TRAINVISOR_OUT_DIR/env.txt\"\n"
      "pwd > \"$TRAINVISOR_OUT_DIR/cwd.txt\"\n"
      "mkdir -p \"$TRAINVISOR_OUT_DIR/model\" && echo weights > \"$TRAINVISOR_OUT_DIR/model/w\"\n");
  coordinator_.offer(j, "lease-py");
  // A host started with its token in the environment: the user's command must not get it.
  ::setenv("TRAINVISOR_WORKER_TOKEN", "wk-secret", 1);
  start(options());
  ASSERT_EQ(wait_done(), 1) << all_events();
  ::unsetenv("TRAINVISOR_WORKER_TOKEN");
  const fs::path got = uploaded("bundle.tar");
  ASSERT_FALSE(got.empty()) << all_events();
  EXPECT_EQ(read_file(got / "model" / "w"), "weights\n");
  EXPECT_EQ(read_file(got / "cwd.txt"), j.command->host_workdir + "\n");
  const std::string env = read_file(got / "env.txt");
  for (const std::string& line :
       {std::string("TRAINVISOR_ATTEMPT=1"), "TRAINVISOR_BLOCK=" + shm::block_name_for_job(j.id),
        "TRAINVISOR_JOB_ID=" + j.id, "TRAINVISOR_LEASE_DIGEST=" + lease_digest_hex("lease-py"),
        std::string("TRAINVISOR_SEED=7"), "TRAINVISOR_OUT_DIR=" + out_dir(j).string()}) {
    EXPECT_NE(env.find(line + "\n"), std::string::npos) << line << " not in\n" << env;
  }
  EXPECT_EQ(env.find("wk-secret"), std::string::npos) << env;
  const auto done = coordinator_.received("complete");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].json_body().at("artifact"),
            sha256_hex(coordinator_.received("upload")[0].body));
  EXPECT_EQ(read_file(out(j) / "exit_code"), "0\n");  // written by trainer-exec
}

TEST_F(CommandJobTest, ExitThreeIsAnEarlyStopAndStillDelivers) {
  const JobSpec j = command_job("echo m > \"$TRAINVISOR_OUT_DIR/m\"\nexit 3\n");
  coordinator_.offer(j, "lease-3");
  start(options());
  ASSERT_EQ(wait_done(), 1) << all_events();
  const auto done = coordinator_.received("complete");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0].json_body().value("early_stopped", false), true) << done[0].body;
}

TEST_F(CommandJobTest, ATrainerThatExitsAtOnceFailsTheJobWithItsCommandAndLog) {
  const JobSpec j = command_job("echo 'ImportError: no module named torchh' >&2\nexit 1\n");
  coordinator_.offer(j, "lease-1");
  start(options());
  ASSERT_EQ(wait_done(), 0) << all_events();
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].json_body().at("class"), "trainer_failure");
  const std::string reason = f[0].json_body().at("reason");
  EXPECT_NE(reason.find("trainer exited 1 (sh trainer.sh): "), std::string::npos) << reason;
  EXPECT_NE(reason.find("no module named torchh"), std::string::npos) << reason;
  EXPECT_EQ(coordinator_.count("upload"), 0u);
}

TEST_F(CommandJobTest, ACommandNotFoundFailsTheJobWithoutStartingAnything) {
  const JobSpec j = command_job("", {"no-such-trainer-xyz", "train.py"});
  coordinator_.offer(j, "lease-n");
  start(options());
  ASSERT_EQ(wait_done(), 0) << all_events();
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  const std::string reason = f[0].json_body().at("reason");
  EXPECT_NE(reason.find("host host-t: trainer command 'no-such-trainer-xyz' is not an executable "
                        "on this host's PATH"),
            std::string::npos)
      << reason;
  EXPECT_EQ(coordinator_.count("running"), 0u);
  // The block it made for the trainer is gone again.
  EXPECT_THROW(shm::ConfigBlockReader::attach(shm::block_name_for_job(j.id)), shm::ShmError);
}

TEST_F(CommandJobTest, ATrainerThatWritesNothingFailsTheJob) {
  const JobSpec j = command_job("exit 0\n");
  coordinator_.offer(j, "lease-e");
  start(options());
  ASSERT_EQ(wait_done(), 0) << all_events();
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  const std::string reason = f[0].json_body().at("reason");
  EXPECT_NE(reason.find("left nothing in its output directory"), std::string::npos) << reason;
}

TEST_F(CommandJobTest, CancelReachesTheCommandThroughTrainerExec) {
  const JobSpec j = command_job(
      "trap 'echo saved > \"$TRAINVISOR_OUT_DIR/checkpoint\"; exit 4' TERM\n"
      "touch \"$TRAINVISOR_OUT_DIR/started\"\n"
      "while :; do sleep 0.05; done\n");
  coordinator_.offer(j, "lease-c");
  start(options());
  ASSERT_TRUE(wait_file(out_dir(j) / "started")) << all_events();
  coordinator_.answer("heartbeat", 200, {{"ok", true}, {"cancel_requested", true}});
  ASSERT_EQ(wait_done(), 0) << all_events();
  EXPECT_EQ(read_file(out_dir(j) / "checkpoint"), "saved\n");
  EXPECT_EQ(read_file(out(j) / "exit_code"), "4\n");
  const auto f = coordinator_.received("fail");
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].json_body().at("class"), "cancelled");
}

// The lines of a log tail body, as the coordinator splits it.
std::vector<std::string> tail_lines(const std::string& body) {
  std::vector<std::string> lines;
  std::istringstream in(body);
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  return lines;
}

class LogTailTest : public CommandJobTest {
 protected:
  // The last tail the daemon sent of a command job that prints `lines` lines by `print` (a shell
  // command of $i) and completes.
  Received last_tail(int lines, const std::string& print) {
    const JobSpec j =
        command_job("i=0; while [ $i -lt " + std::to_string(lines) + " ]; do " + print +
                    "; i=$((i+1)); done\n" + "echo w > \"$TRAINVISOR_OUT_DIR/w\"\n");
    coordinator_.offer(j, "lease-l");
    start(options());
    EXPECT_EQ(wait_done(), 1) << all_events();
    const auto sent = coordinator_.received("log");
    return sent.empty() ? Received{} : sent.back();
  }
};

TEST_F(LogTailTest, ATailIsTheNewestLinesAtMost) {
  const Received last = last_tail(300, "echo \"line $i\"");
  const std::vector<std::string> lines = tail_lines(last.body);
  ASSERT_EQ(lines.size(), 200u) << last.body;
  EXPECT_EQ(lines.front(), "line 100");
  EXPECT_EQ(lines.back(), "line 299");
  EXPECT_EQ(last.query.at("truncated"), "1");
}

TEST_F(LogTailTest, ATailIsTheLast64KiBOfWholeLines) {
  // 100 lines of 1000 bytes: the last 64 KiB start inside a line, which is left out.
  const Received last = last_tail(100, "printf '%01000d\\n' $i");
  EXPECT_LE(last.body.size(), 64u * 1024);
  const std::vector<std::string> lines = tail_lines(last.body);
  ASSERT_EQ(lines.size(), 65u);  // 65 whole lines of 1001 bytes fit in 65536
  for (const std::string& line : lines)
    EXPECT_EQ(line.size(), 1000u) << line.substr(0, 20);
  EXPECT_EQ(lines.back(), std::string(998, '0') + "99");
  EXPECT_EQ(last.query.at("truncated"), "1");
}

// ---------------------------------------------------------------------------------------------
// The daemon against a real coordinator: what a dashboard reads of a job's trainer.

class LiveCoordinatorTest : public HostDaemonTest {
 protected:
  void TearDown() override {
    HostDaemonTest::TearDown();  // the daemon first: it may still be talking to the coordinator
    coordinator_live_.reset();
  }
  // A coordinator whose manifest has one command job, `sh trainer.sh` in `workdir`.
  void serve_command_job(const fs::path& workdir) {
    coordinator_live_ = std::make_unique<Coordinator>(test::coordinator_options(
        dir_ / "coordinator",
        "[[jobs]]\nname = \"printer\"\ntrainer = [\"sh\", \"trainer.sh\"]\n"
        "host_workdir = \"" +
            workdir.string() + "\"\n"));
    api::CoordinatorClientOptions reads;
    reads.http = {coordinator_live_->url(), {}, 10s};
    reader_ = std::make_unique<api::CoordinatorClient>(reads);
  }
  std::unique_ptr<Coordinator> coordinator_live_;
  std::unique_ptr<api::CoordinatorClient> reader_;
};

bool has_line(const api::JobLog& log, const std::string& line) {
  return std::find(log.lines.begin(), log.lines.end(), line) != log.lines.end();
}

TEST_F(LiveCoordinatorTest, TheTrainersLogLinesReachTheCoordinatorWhileItRunsAndAfterItEnds) {
  const fs::path workdir = dir_ / "printer";
  fs::create_directories(workdir);
  std::ofstream(workdir / "trainer.sh")
      << "printf '\\033[32mepoch 1\\033[0m loss 0.5\\n'\n"
         "echo '<b>bold?</b>'\n"
         "touch \"$TRAINVISOR_OUT_DIR/started\"\n"
         "while [ ! -f \"$TRAINVISOR_OUT_DIR/go\" ]; do sleep 0.02; done\n"
         "echo weights > \"$TRAINVISOR_OUT_DIR/w\"\n"
         "echo 'last words'\n";
  serve_command_job(workdir);
  const auto jobs = reader_->jobs();
  ASSERT_TRUE(jobs && jobs->size() == 1u);
  const std::string id = jobs->at(0).spec.id;
  HostDaemonOptions o = options();
  o.coordinator_url = coordinator_live_->url();
  o.worker_token = "wk";
  start(o);
  const fs::path out_dir = dir_ / "work" / id / "out";
  ASSERT_TRUE(wait_file(out_dir / "started")) << all_events();
  // While the trainer runs: its lines, cleaned of their colour codes, markup kept as text.
  api::JobLog log;
  ASSERT_TRUE(coordinator_.wait([&] {
    const auto r = reader_->job_log(id);
    if (r) log = *r;
    return r && has_line(*r, "epoch 1 loss 0.5") && has_line(*r, "<b>bold?</b>");
  })) << json(log).dump()
      << all_events();
  EXPECT_EQ(log.host, "host-t");
  EXPECT_FALSE(log.truncated);
  EXPECT_EQ(reader_->job(id)->status, JobStatus::kRunning);
  write_file(out_dir / "go", "");
  ASSERT_EQ(wait_done(), 1) << all_events();
  // After it ended: the last tail, sent after its exit, with its last line.
  const auto last = reader_->job_log(id);
  ASSERT_TRUE(last);
  EXPECT_TRUE(has_line(*last, "last words")) << json(*last).dump();
  EXPECT_TRUE(has_line(*last, "epoch 1 loss 0.5")) << json(*last).dump();
  EXPECT_EQ(reader_->job(id)->status, JobStatus::kCompleted);
}

}  // namespace
}  // namespace tv::fleet

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "train") return tv::fleet::fake_trainer::run(argc, argv);
  // argv: EXE trainer-exec --exit-code-file F -- COMMAND...
  if (argc > 5 && std::string(argv[1]) == "trainer-exec")
    return tv::fleet::run_trainer_command(argv[3], std::vector<std::string>(argv + 5, argv + argc));
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
