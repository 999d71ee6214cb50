#include "up_command.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "coordinator_command.hpp"
#include "host_command.hpp"
#include "signal_watch.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/host_daemon.hpp"
#include "trainvisor/fleet/names.hpp"
#include "trainvisor/fleet/private_file.hpp"
#include "up_board.hpp"

namespace tv::cli {
namespace {

namespace fs = std::filesystem;

struct UpOptions {
  std::string manifest;
  std::string data_dir = "trainvisor-data";
  int slots = 0;  // 0: one per two cores, at least one
  std::uint16_t port = 0;
  std::vector<std::string> plugin_dirs;
  double orphan_after_s = 60;
  std::string web_root = default_web_root();
};

// This machine's host name, as the host daemon would take it, or "local" when the hostname
// cannot name a host.
std::string local_host_name() {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return fleet::valid_host_name(host) ? std::string(host) : std::string("local");
}

// The in-process host's credential: `up` holds the operator token, so it enrols the host itself
// (a new credential each run) rather than trusting a first enrolment with the worker token.
std::string enrol_local_host(const fleet::Coordinator& coordinator,
                             const fleet::CoordinatorOptions& c, const std::string& name) {
  fleet::api::CoordinatorClientOptions co;
  co.http = http::ClientOptions{coordinator.url(), {}, std::chrono::seconds(10)};
  co.operator_token = c.operator_token;
  fleet::api::CoordinatorClient client(co);
  const auto r = client.enrol(name);
  if (!r) throw std::runtime_error("cannot enrol the local host " + name + ": " + r.error().error);
  return r->credential;
}

int run_up(const UpOptions& u) {
  SignalWatch watch({SIGTERM, SIGINT, SIGHUP});  // a closed terminal stops the fleet cleanly too
  ::umask(077);  // the state, the tokens and the trainers' files are this user's alone
  fleet::CoordinatorOptions c;
  c.data_dir = u.data_dir;
  c.manifest_path = u.manifest;
  c.operator_token = fleet::random_token();
  c.worker_token = fleet::random_token();
  c.plugin_dirs = u.plugin_dirs;
  c.web_root = u.web_root;
  c.http.bind = "127.0.0.1";
  c.http.port = u.port;
  c.queue.prefer_cuda_grace = std::chrono::seconds(0);  // the only host is this one
  c.make_embedder = model_embedder_maker();
  fleet::Coordinator coordinator(c);
  // Operators on this machine can use the CLI against it for the run's duration.
  const fs::path env = fs::path(u.data_dir) / "coordinator.env";
  fleet::write_private_file(env.string(), "TRAINVISOR_COORDINATOR=" + coordinator.url() +
                                              "\nTRAINVISOR_OPERATOR_TOKEN=" + c.operator_token +
                                              "\n");
  std::fprintf(stderr, "up: coordinator on %s (operator token in %s)\n", coordinator.url().c_str(),
               env.c_str());
  if (!u.web_root.empty()) {
    std::fprintf(stderr,
                 "up: dashboard at %s/ (sign in with the operator token to change things)\n",
                 coordinator.url().c_str());
  }

  UpBoard board;
  fleet::HostDaemonOptions h;
  h.coordinator_url = coordinator.url();
  h.name = local_host_name();
  h.host_credential = enrol_local_host(coordinator, c, h.name);
  h.slots = u.slots > 0 ? u.slots
                        : std::max(1, static_cast<int>(std::thread::hardware_concurrency() / 2));
  h.work_dir = (fs::path(u.data_dir) / "work").string();
  h.plugin_dirs = u.plugin_dirs;
  h.python_path = python_package_path();
  h.poll_every = std::chrono::milliseconds(300);
  // Lease timing: the fleet's defaults (heartbeat 5 s, stale_after 30 s, sweep every 5 s).
  h.exit_when_idle = true;
  h.orphan_after = std::chrono::milliseconds(static_cast<std::int64_t>(u.orphan_after_s * 1000));
  h.on_event = [&](const fleet::HostEvent& e) { board.on_event(e); };

  fleet::HostDaemon daemon(h);
  std::atomic<bool> done{false};
  std::thread runner([&] {
    daemon.run();
    done = true;
    watch.release();
  });
  const bool tty = ::isatty(2);
  std::thread drawer([&] {
    while (!done) {
      std::fputs(board.frame(tty, false, std::chrono::steady_clock::now()).c_str(), stderr);
      for (int i = 0; i < 10 && !done; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  if (watch.wait() != 0) {
    fleet::HostEvent stopping;  // an event line: above the live table, not under it
    stopping.message = "up: stopping: trainers checkpoint, jobs go back to the queue";
    board.on_event(stopping);
    daemon.stop();
  }
  runner.join();
  drawer.join();
  std::fputs(board.frame(tty, true, std::chrono::steady_clock::now()).c_str(), stderr);

  // The final table, from the coordinator's own records.
  fleet::api::CoordinatorClientOptions co;
  co.http = http::ClientOptions{coordinator.url(), {}, std::chrono::seconds(10)};
  fleet::api::CoordinatorClient client(co);
  const auto jobs = client.jobs();
  if (!jobs) throw std::runtime_error("the coordinator's job list: " + jobs.error().error);
  std::printf("\n%-22s %-10s %8s %-14s %s\n", "JOB", "STATUS", "ATTEMPTS", "ARTIFACT", "NOTE");
  int unfinished = 0;
  for (const auto& j : *jobs) {
    std::string note = j.last_error;
    if (j.status == fleet::JobStatus::kPending)
      note = "no host here can run it (see its constraints)";
    if (j.status == fleet::JobStatus::kStopped)
      note = "stopped by " + j.stopped_by + ": " + j.stop_reason;
    if (j.status != fleet::JobStatus::kCompleted && j.status != fleet::JobStatus::kStopped)
      ++unfinished;
    std::printf("%-22.22s %-10s %8lld %-14.14s %s\n", j.spec.name.c_str(),
                std::string(fleet::to_string(j.status)).c_str(), static_cast<long long>(j.attempt),
                j.artifact.c_str(), note.substr(0, 100).c_str());
  }
  std::printf("\nbundles: %s/artifacts/objects; state: %s/coordinator.sqlite\n", u.data_dir.c_str(),
              u.data_dir.c_str());
  coordinator.stop();
  return unfinished == 0 ? 0 : 1;
}

}  // namespace

void add_up_command(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "up", "Run a manifest on this machine: coordinator and host daemon in one process");
  auto u = std::make_shared<UpOptions>();
  cmd->add_option("MANIFEST", u->manifest, "The manifest (TOML)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--data-dir", u->data_dir, "Queue, artifacts and trainer work directories");
  cmd->add_option("--slots", u->slots, "Jobs trained at once (default: one per two cores)");
  cmd->add_option("--port", u->port, "Coordinator port on 127.0.0.1 (default: any free one)");
  cmd->add_option("--plugin-dir", u->plugin_dirs, "Extra plugin directory");
  cmd->add_option("--web-root", u->web_root,
                  "The dashboard's bundle served at / (default: the build's or the install's)");
  cmd->add_option("--orphan-after", u->orphan_after_s,
                  "Seconds trainers keep training after this process dies before they checkpoint "
                  "and stop (`up` again on the same --data-dir sooner adopts them)")
      ->check(CLI::PositiveNumber);
  cmd->callback([u] {
    const int code = run_up(*u);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace tv::cli
