#include "host_command.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include <signal.h>

#include <cmath>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <thread>

#include "plugins_command.hpp"
#include "secret_flags.hpp"
#include "service_notify.hpp"
#include "signal_watch.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/capability.hpp"
#include "trainvisor/fleet/host_daemon.hpp"
#include "trainvisor/fleet/log.hpp"
#include "trainvisor/fleet/trainer_process.hpp"

namespace tv::cli {

namespace {

const char* kind_word(fleet::HostEvent::Kind k) {
  switch (k) {
    case fleet::HostEvent::Kind::kClaimed:
      return "claimed";
    case fleet::HostEvent::Kind::kStarted:
      return "started";
    case fleet::HostEvent::Kind::kProgress:
      return "progress";
    case fleet::HostEvent::Kind::kPolicy:
      return "policy";
    case fleet::HostEvent::Kind::kConfig:
      return "config";
    case fleet::HostEvent::Kind::kCoordinator:
      return "coordinator";
    case fleet::HostEvent::Kind::kFinished:
      return "finished";
    case fleet::HostEvent::Kind::kFailed:
      return "failed";
    case fleet::HostEvent::Kind::kCancelled:
      return "cancelled";
    case fleet::HostEvent::Kind::kLost:
      return "lost";
  }
  return "?";
}

namespace fs = std::filesystem;
namespace log = fleet::log;

// One line of the host's log (trainvisor/fleet/log.hpp).
void say(log::Level level, std::string message, log::Fields fields = {}) {
  log::emit({level, "host", std::move(message), "", std::move(fields)});
}

// A job's event: "claimed mlp (3f2a...) attempt 1", with the job's id and the event's kind as
// fields; a failure is an error, a lost job or an unreachable coordinator a warning.
void log_event(const fleet::HostEvent& e) {
  using Kind = fleet::HostEvent::Kind;
  const log::Level level = e.kind == Kind::kFailed ? log::Level::kError
                           : e.kind == Kind::kLost || e.kind == Kind::kCoordinator
                               ? log::Level::kWarn
                               : log::Level::kInfo;
  std::string message = std::string(kind_word(e.kind)) + " " + e.job_name + " (" +
                        e.job_id.substr(0, 12) + ") " + e.message;
  log::Fields fields = {{"event", kind_word(e.kind)}, {"job_name", e.job_name}};
  if (e.kind == Kind::kFinished) fields.emplace_back("early_stopped", e.early_stopped);
  log::emit({level, "host", std::move(message), e.job_id, std::move(fields)});
}

// Runs the host daemon until SIGTERM or SIGINT. A hangup (the terminal closed) stops the daemon
// like SIGTERM rather than killing it with its trainers left to the orphan timeout; a host has
// no configuration to re-read, so under systemd `reload` is not offered for it. Under systemd
// (Type=notify) it says READY=1 once the coordinator first answers a claim (enrolled, credential
// accepted), pings the watchdog while it runs and says STOPPING=1 before it checkpoints.
int run_daemon(fleet::HostDaemonOptions o) {
  const ServiceNotifier notifier = ServiceNotifier::take_from_environment();
  log::set_format(log::format_from_env());  // a bad TRAINVISOR_LOG_FORMAT is refused at start
  o.on_event = [](const fleet::HostEvent& e) {
    if (e.kind == fleet::HostEvent::Kind::kProgress) return;  // the coordinator has the curves
    log_event(e);
  };
  o.on_connected = [&notifier, url = o.coordinator_url] {
    say(log::Level::kInfo, "connected to " + url, {{"coordinator", url}});
    log_notify_failure("host", notifier.ready("claiming jobs from " + url));
  };
  // Before any thread of ours: they inherit the block.
  SignalWatch watch({SIGTERM, SIGINT, SIGHUP});
  WatchdogPinger pinger(notifier);
  const std::string metrics_bind = o.metrics_bind;
  fleet::HostDaemon daemon(std::move(o));
  if (const auto port = daemon.metrics_port()) {
    // Said with the port a 0 got, so that a scraper (or a test) can find it.
    const std::string url = "http://" + metrics_bind + ":" + std::to_string(*port) + "/metrics";
    say(log::Level::kInfo, "metrics at " + url, {{"metrics_url", url}});
  }
  int completed = 0;
  std::exception_ptr failure;  // a refused worker token: the exit code must say so
  std::thread runner([&] {
    try {
      completed = daemon.run();
    } catch (...) {
      failure = std::current_exception();
    }
    watch.release();
  });
  if (watch.wait() != 0) {
    log_notify_failure("host", notifier.stopping());
    say(log::Level::kInfo, "stopping: no more claims, checkpointing running trainers");
    daemon.stop();
  }
  runner.join();
  pinger.stop();
  if (failure) std::rethrow_exception(failure);
  say(log::Level::kInfo, "done, " + std::to_string(completed) + " job(s) completed here",
      {{"jobs_completed", completed}});
  return 0;
}

}  // namespace

void add_host_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "host", "Run the host daemon: claim jobs from a coordinator and train them");
  auto print = std::make_shared<bool>(false);
  auto output = std::make_shared<std::string>("text");
  auto d = std::make_shared<fleet::HostDaemonOptions>();
  auto heartbeat_s = std::make_shared<double>(5), poll_s = std::make_shared<double>(2);
  auto exit_idle = std::make_shared<bool>(false);
  auto orphan_s = std::make_shared<double>(60);
  cmd->add_flag(
      "--print-capability", *print,
      "Print what this host can run (cores, RAM under its cgroup limit, CUDA, VRAM) and exit");
  cmd->add_option("-o,--output", *output, "Output format of --print-capability")
      ->check(CLI::IsMember({"text", "json"}));
  cmd->add_option("--coordinator", d->coordinator_url,
                  "Coordinator URL, e.g. http://127.0.0.1:8700");
  auto worker_token = std::make_shared<SecretFlag>("--worker-token", "TRAINVISOR_WORKER_TOKEN");
  add_secret_flags(*cmd, *worker_token,
                   "Worker token: enrols this host on its first start, when it has no credential");
  cmd->add_option("--credential-file", d->credential_file,
                  "This host's credential (NAME:SECRET, mode 0600): read when it exists, else "
                  "written by the first start's enrolment (default: WORK_DIR/host-credential); "
                  "or $TRAINVISOR_HOST_CREDENTIAL");
  cmd->add_option("--ca-file", d->ca_file, "CA certificate to verify an https coordinator");
  cmd->add_option("--python-path", d->python_path,
                  "Put before PYTHONPATH for command jobs' trainers (default: the build tree's "
                  "Python package when run from a build tree)");
  cmd->add_option("--name", d->name, "Worker name (default: the hostname)");
  cmd->add_option("--slots", d->slots, "Jobs to run at once")->check(CLI::Range(1, 256));
  cmd->add_option("--work-dir", d->work_dir, "Where trainers write checkpoints and bundles");
  cmd->add_option("--heartbeat-every", *heartbeat_s,
                  "Seconds between lease heartbeats (default 5: the coordinator's default "
                  "--stale-after of 30 s then allows six missed heartbeats before it takes a job "
                  "back; keep it well under the coordinator's --stale-after)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--poll-every", *poll_s, "Seconds between claims while idle");
  cmd->add_flag("--exit-when-idle", *exit_idle,
                "Exit once nothing is running and nothing can be claimed");
  cmd->add_option("--orphan-after", *orphan_s,
                  "Seconds a trainer keeps training without this daemon's heartbeat before it "
                  "checkpoints and stops (a daemon restarted sooner adopts it)")
      ->check(CLI::PositiveNumber);
  cmd->add_option_function<int>(
         "--metrics-port",
         [d](const int& port) { d->metrics_port = static_cast<std::uint16_t>(port); },
         "Serve Prometheus metrics at GET /metrics on this port (0: any free one, logged at "
         "start); off unless given")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--metrics-bind", d->metrics_bind,
                  "Address of the metrics listener (default 127.0.0.1: the metrics name jobs "
                  "and need no token)");
  add_plugin_dir_option(*cmd, d->plugin_dirs);
  cmd->callback([print, output, d, heartbeat_s, poll_s, exit_idle, orphan_s, worker_token] {
    if (!*print) {
      d->worker_token = secret_of(*worker_token, true);
      if (const char* c = std::getenv("TRAINVISOR_HOST_CREDENTIAL");
          c && d->credential_file.empty())
        d->host_credential = c;
      if (d->coordinator_url.empty()) {
        if (const char* url = std::getenv("TRAINVISOR_COORDINATOR")) d->coordinator_url = url;
      }
      if (d->coordinator_url.empty()) {
        throw std::invalid_argument(
            "host: give --coordinator URL or TRAINVISOR_COORDINATOR (or --print-capability)");
      }
      d->heartbeat_every =
          std::chrono::milliseconds(static_cast<std::int64_t>(*heartbeat_s * 1000));
      d->poll_every = std::chrono::milliseconds(static_cast<std::int64_t>(*poll_s * 1000));
      d->exit_when_idle = *exit_idle;
      d->orphan_after = std::chrono::milliseconds(static_cast<std::int64_t>(*orphan_s * 1000));
      if (d->python_path.empty()) d->python_path = python_package_path();
      run_daemon(*d);
      return;
    }
    const fleet::HostCapability c = fleet::detect_capability();
    const fleet::CudaProbe cuda = fleet::probe_cuda();
    if (*output == "json") {
      nlohmann::json j = fleet::capability_json(c);
      j["cuda_detail"] = cuda.detail;
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("hostname    %s\ncores       %lld\nram         %.2f GiB\ncuda        %s\n",
                c.hostname.c_str(), static_cast<long long>(c.cores), c.ram_gib,
                c.cuda ? (std::to_string(c.cuda_devices) + " device(s), " +
                          std::to_string(c.vram_gib) + " GiB, " + cuda.detail)
                             .c_str()
                       : ("no (" + cuda.detail + ")").c_str());
    std::printf("libtorch    %s\ntrainvisor  %s\n", c.torch_version.c_str(),
                c.trainvisor_version.c_str());
  });
}

std::string python_package_path() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  // BUILD/bin/trainvisor: the package the build assembles in BUILD/python, else the sources'.
  for (const fs::path& dir : {exe.parent_path().parent_path() / "python",
                              exe.parent_path().parent_path().parent_path() / "python"}) {
    if (fs::is_regular_file(dir / "trainvisor" / "__init__.py", ec)) return dir.string();
  }
  return "";
}

void add_trainer_exec_command(CLI::App& app) {
  auto exit_code_file = std::make_shared<std::string>();
  auto command = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = app.add_subcommand("trainer-exec", "Run a command job's trainer (for hosts)");
  cmd->group("");  // the host's own: not listed in --help
  cmd->add_option("--exit-code-file", *exit_code_file, "Where its exit code is written")
      ->required();
  cmd->add_option("command", *command, "The trainer command and its arguments, after --")
      ->required();
  cmd->callback([exit_code_file, command] {
    const int code = fleet::run_trainer_command(*exit_code_file, *command);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace tv::cli
