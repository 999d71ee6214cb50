#include "trainvisor/fleet/host_daemon.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/fleet/capability.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

std::string tail_of(const std::string& path, std::size_t bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  in.seekg(static_cast<std::streamoff>(size > bytes ? size - bytes : 0));
  std::string s((std::istreambuf_iterator<char>(in)), {});
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

std::string arg_value(const plugin::ParamValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          return x;
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else {
          return param_value_text(x);
        }
      },
      v);
}

struct RunningJob {
  JobSpec spec;
  std::string lease;
  std::string out_dir;
  std::unique_ptr<BlockConfigSink> sink;
  std::unique_ptr<Supervisor> supervisor;
  pid_t pid = -1;
  Clock::time_point next_heartbeat;
  std::optional<Clock::time_point> kill_at;  // SIGTERM sent: SIGKILL at this time
  std::optional<int> exit_code;              // the trainer has exited; reporting may be pending
  enum class Ending { kNone, kCancelled, kLeaseLost, kShutdown } ending = Ending::kNone;
};

}  // namespace

struct HostDaemon::Impl {
  HostDaemonOptions o;
  http::Client client;
  HostCapability capability;
  PluginRegistry plugins;
  std::vector<std::unique_ptr<RunningJob>> jobs;
  std::atomic<bool> stopping{false};
  int completed = 0;

  explicit Impl(HostDaemonOptions opts)
      : o(std::move(opts)),
        client(http::ClientOptions{o.coordinator_url, o.ca_file, std::chrono::seconds(30)}) {
    if (o.slots < 1) throw std::invalid_argument("a host needs at least one slot");
    capability = o.capability ? *o.capability : detect_capability();
    if (o.name.empty()) o.name = capability.hostname;
    if (o.trainer_exe.empty()) o.trainer_exe = fs::read_symlink("/proc/self/exe").string();
    if (o.work_dir.empty())
      o.work_dir = (fs::temp_directory_path() / ("trainvisor-host-" + o.name)).string();
    fs::create_directories(o.work_dir);
    std::vector<std::string> dirs = o.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    plugins = PluginRegistry::load(dirs);
  }

  void emit(HostEvent::Kind kind, const RunningJob& j, std::string message) {
    if (!o.on_event) return;
    HostEvent e;
    e.kind = kind;
    e.job_id = j.spec.id;
    e.job_name = j.spec.name;
    e.message = std::move(message);
    o.on_event(e);
  }

  http::Response post(const std::string& target, const json& body) {
    return client.request("POST", target, body.dump(), {{"X-Worker-Token", o.worker_token}});
  }

  bool try_claim() {
    const http::Response r =
        post("/v1/job/claim", {{"worker", o.name}, {"capability", capability_json(capability)}});
    if (r.status != 200)
      throw std::runtime_error("claim refused (" + std::to_string(r.status) + "): " + r.body);
    const json j = r.json_body();
    if (j["job"].is_null()) return false;
    auto job = std::make_unique<RunningJob>();
    job->spec = job_spec_from_json(j["job"]);
    job->lease = j["lease_token"];
    emit(HostEvent::Kind::kClaimed, *job, "attempt " + std::to_string(j["attempt"].get<int>()));
    try {
      start(*job);
    } catch (const std::exception& e) {
      // The job could not even start here (a plugin this host lacks, a block it cannot create).
      post("/v1/job/" + job->spec.id + "/fail",
           {{"lease_token", job->lease},
            {"class", "trainer_failure"},
            {"reason", std::string("host ") + o.name + ": " + e.what()}});
      emit(HostEvent::Kind::kFailed, *job, e.what());
      return true;
    }
    jobs.push_back(std::move(job));
    return true;
  }

  void start(RunningJob& job) {
    job.out_dir = (fs::path(o.work_dir) / job.spec.id).string();
    fs::create_directories(job.out_dir);
    job.sink = std::make_unique<BlockConfigSink>(job.spec.id, job.spec.hyper);
    job.supervisor = std::make_unique<Supervisor>(
        shm::ConfigBlockReader::attach(job.sink->block_name(),
                                       shm::ConfigBlockReader::Access::kReadWrite),
        *job.sink);
    for (const PolicySpec& p : job.spec.policies) {
      plugin::PolicyPlugin& pp = plugins.policy(p.name);
      std::string error;
      auto policy = pp.create(
          resolve_params(pp.describe().params, p.params, "policy '" + p.name + "'"), error);
      if (!policy) throw std::runtime_error("policy '" + p.name + "': " + error);
      job.supervisor->add_policy(p.name, std::move(policy));
    }
    std::vector<std::string> args = {
        o.trainer_exe,  "train", "--job-id",  job.spec.id, "--model",
        job.spec.model, "--out", job.out_dir, "--seed",    std::to_string(job.spec.seed)};
    for (const auto& [k, v] : job.spec.model_params)
      args.insert(args.end(), {"--param", k + "=" + arg_value(v)});
    for (const auto& d : o.plugin_dirs)
      args.insert(args.end(), {"--plugin-dir", d});
    if (job.spec.data.max_train_samples > 0) {
      args.insert(args.end(),
                  {"--max-train-samples", std::to_string(job.spec.data.max_train_samples)});
    }
    if (job.spec.data.max_val_samples > 0) {
      args.insert(args.end(), {"--max-val-samples", std::to_string(job.spec.data.max_val_samples)});
    }
    const bool resume = fs::exists(fs::path(job.out_dir) / "checkpoint" / "state.json");
    if (resume) args.push_back("--resume");
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = (fs::path(job.out_dir) / "trainer.log").string();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      // A trainer must not outlive its host: a new holder of the job would find it still writing.
      // The daemon blocks SIGTERM for its signal thread; a blocked mask survives exec, and the
      // trainer must feel both its death signal and a cancel's SIGTERM.
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    job.pid = pid;
    job.next_heartbeat = Clock::now() + o.heartbeat_every;
    post("/v1/job/" + job.spec.id + "/running", {{"lease_token", job.lease}});
    emit(HostEvent::Kind::kStarted, job, resume ? "resuming from its checkpoint" : "started");
  }

  void terminate(RunningJob& job, RunningJob::Ending why) {
    if (job.kill_at) return;
    job.ending = why;
    ::kill(job.pid, SIGTERM);
    job.kill_at = Clock::now() + o.kill_grace;
  }

  // Returns true when the job is over and can be dropped.
  bool tend(RunningJob& job) {
    for (const SupervisorEvent& e : job.supervisor->poll()) {
      std::string msg = e.actor + ":";
      for (const auto& w : e.writes)
        msg += " " + w.path + " -> " + param_value_text(w.value) + " (" + w.reason + ")";
      if (!e.outcome.applied && !e.outcome.reason.empty())
        msg += " [not applied: " + e.outcome.reason + "]";
      emit(HostEvent::Kind::kPolicy, job, msg);
    }
    job.sink->heartbeat();
    const auto& h = job.supervisor->history();
    if (!h.empty() && o.on_event) {
      HostEvent e;
      e.kind = HostEvent::Kind::kProgress;
      e.job_id = job.spec.id;
      e.job_name = job.spec.name;
      e.step = h.back().step;
      e.epoch = h.back().epoch;
      e.loss = h.back().loss;
      e.learning_rate = h.back().learning_rate;
      e.revision = h.back().config_revision;
      for (auto it = h.rbegin(); it != h.rend(); ++it) {
        if (it->flags & plugin::kTelemetryEval) {
          e.val_accuracy = it->val_accuracy;
          break;
        }
      }
      o.on_event(e);
    }
    if (Clock::now() >= job.next_heartbeat && job.ending == RunningJob::Ending::kNone) {
      job.next_heartbeat = Clock::now() + o.heartbeat_every;
      try {
        const http::Response r =
            post("/v1/job/" + job.spec.id + "/heartbeat", {{"lease_token", job.lease}});
        if (r.status == 409 || r.status == 404) {
          emit(HostEvent::Kind::kLost, job, "the coordinator took the job back: " + r.body);
          terminate(job, RunningJob::Ending::kLeaseLost);
        } else if (r.status == 200 && r.json_body().value("cancel_requested", false)) {
          emit(HostEvent::Kind::kCancelled, job, "cancelled by an operator");
          terminate(job, RunningJob::Ending::kCancelled);
        }
      } catch (const std::exception&) {
        // The coordinator is away: the trainer keeps training; the next heartbeat tries again.
      }
    }
    if (!job.exit_code) {
      if (job.kill_at && Clock::now() >= *job.kill_at) ::kill(job.pid, SIGKILL);
      int status = 0;
      if (::waitpid(job.pid, &status, WNOHANG) != job.pid) return false;
      job.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      job.supervisor->poll();
    }
    // Throws while the coordinator is unreachable; the next round reports again.
    finish(job, *job.exit_code);
    job.sink->remove_block();
    return true;
  }

  void finish(RunningJob& job, int code) {
    const std::string base = "/v1/job/" + job.spec.id;
    if (job.ending == RunningJob::Ending::kLeaseLost) return;  // someone else holds it now
    if (job.ending == RunningJob::Ending::kCancelled) {
      post(base + "/fail", {{"lease_token", job.lease},
                            {"class", "cancelled"},
                            {"reason", "cancelled by an operator"}});
      return;
    }
    if (job.ending == RunningJob::Ending::kShutdown || code == 4) {
      post(base + "/fail", {{"lease_token", job.lease},
                            {"class", "host_lost"},
                            {"reason", "host " + o.name + " shut down"}});
      return;
    }
    if (code == 0 || code == 3) {
      const std::string bundle = (fs::path(job.out_dir) / "bundle.tvb").string();
      try {
        const std::string digest = sha256_file_hex(bundle);
        // Ask first: a bundle the store already has is not sent again.
        if (client.request("GET", "/v1/artifact/" + digest + "/stat").status != 200) {
          const http::Response up = client.send_file("PUT", base + "/artifact/bundle.tvb", bundle,
                                                     {{"X-Worker-Token", o.worker_token},
                                                      {"X-Lease-Token", job.lease},
                                                      {"X-Content-SHA256", digest}});
          if (up.status != 200)
            throw std::runtime_error("upload refused (" + std::to_string(up.status) +
                                     "): " + up.body);
        }
        const http::Response r =
            post(base + "/complete", {{"lease_token", job.lease}, {"artifact", digest}});
        if (r.status != 200)
          throw std::runtime_error("complete refused (" + std::to_string(r.status) +
                                   "): " + r.body);
        ++completed;
        emit(HostEvent::Kind::kFinished, job,
             code == 3 ? "early stop; bundle " + digest : "bundle " + digest);
      } catch (const std::exception& e) {
        post(base + "/fail",
             {{"lease_token", job.lease}, {"class", "trainer_failure"}, {"reason", e.what()}});
        emit(HostEvent::Kind::kFailed, job, e.what());
      }
      return;
    }
    const std::string reason = "trainer exited " + std::to_string(code) + ": " +
                               tail_of((fs::path(job.out_dir) / "trainer.log").string(), 600);
    post(base + "/fail",
         {{"lease_token", job.lease}, {"class", "trainer_failure"}, {"reason", reason}});
    emit(HostEvent::Kind::kFailed, job, reason);
  }

  int run() {
    auto next_poll = Clock::now();
    while (true) {
      if (stopping.load()) {
        for (auto& j : jobs)
          terminate(*j, RunningJob::Ending::kShutdown);
      } else if (static_cast<int>(jobs.size()) < o.slots && Clock::now() >= next_poll) {
        bool claimed = false;
        try {
          claimed = try_claim();
        } catch (const std::exception& e) {
          if (o.on_event)
            o.on_event({HostEvent::Kind::kFailed, "", "", std::string("coordinator: ") + e.what()});
        }
        if (!claimed) {
          next_poll = Clock::now() + o.poll_every;
          if (o.exit_when_idle && jobs.empty()) return completed;
        }
      }
      for (auto it = jobs.begin(); it != jobs.end();) {
        bool done = false;
        try {
          done = tend(**it);
        } catch (const std::exception& e) {
          emit(HostEvent::Kind::kFailed, **it, e.what());
        }
        it = done ? jobs.erase(it) : it + 1;
      }
      if (stopping.load() && jobs.empty()) return completed;
      std::this_thread::sleep_for(o.supervise_every);
    }
  }
};

HostDaemon::HostDaemon(HostDaemonOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
HostDaemon::~HostDaemon() = default;
int HostDaemon::run() {
  return impl_->run();
}
void HostDaemon::stop() {
  impl_->stopping.store(true);
}

}  // namespace tv::fleet
