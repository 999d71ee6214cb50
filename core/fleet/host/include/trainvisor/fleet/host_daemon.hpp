// The host daemon: claims the jobs this host can run from the coordinator, up to its slot count,
// and for each one is the config agent (the single writer of the job's shared-memory block) and
// the supervisor (it runs the job's policies on the trainer's telemetry), spawns
// `trainvisor train`, heartbeats the lease, uploads the bundle and completes or fails the job.
//
// - A cancel (seen in a heartbeat reply) or a lost lease (409) sends the trainer SIGTERM, which
//   makes it checkpoint; SIGKILL follows after kill_grace.
// - Failures are classed: the trainer's own failure (exit 1, a crash) counts against the job's
//   max_attempts; bad input (exit 2) too, since retrying it elsewhere cannot help; an interrupted
//   trainer on a host that is shutting down is a lost host; a cancelled one is cancelled.
// - A coordinator that cannot be reached (or times out) delays what the daemon reports, never
//   changes it: the trainer keeps training, and its start, its bundle and its completion are
//   sent again each round until the coordinator answers.
// - Each job has a ConfigAgent (config_agent.hpp), the single writer of its block, fed by the
//   coordinator's config stream. Policies run here on the trainer's telemetry; their writes go
//   to the coordinator as `policy:NAME` (validation, freezes and the audit log apply) and come
//   back through the stream like any other write.
// - Telemetry goes to the coordinator in batches, every telemetry_every.
// - The tail of each trainer's log (work_dir/<job id>/trainer.log) goes to the coordinator at most
//   once per heartbeat_every while it grows, and once more when the trainer exits; a log that
//   cannot be read or sent fails nothing.
// - Trainers outlive a daemon that dies: they keep training on their block's last values. A
//   daemon started again on the same work_dir adopts the trainers whose leases it still holds
//   (their blocks repaired, the stream resumed from the block's revision); a trainer whose host
//   does not come back sees its block's heartbeat go stale and checkpoints and stops after
//   orphan_after, by when the coordinator has given the job to another host.
// - A claim of a job requeued to start over (a new generation, ClaimReply::generation) empties
//   the job's folder first: the trainer resumes only checkpoints of the claim's generation.
// - Identity: every call carries this host's credential (X-Host-Credential). run() takes it from
//   the options, else from credential_file, else enrols the host's name with the worker token
//   (retrying while the coordinator cannot be reached) and keeps what it got in credential_file
//   (0600). The work directory is made owner-only (0700): it holds the credential and leases.
// - A worker token or credential the coordinator refuses (a claim's 401/403, a refused
//   enrolment) ends run() with WorkerTokenRefused: no later poll could succeed.
// - stop(): no more claims, every trainer gets SIGTERM (a checkpoint), jobs are handed back as
//   host_lost, then run() returns.
//
// Threading: run() is a loop on the caller's thread; stop() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// What the daemon reports as it works, for logs and `trainvisor up`'s progress view.
struct HostEvent {
  enum class Kind {
    kClaimed,
    kStarted,
    kProgress,
    kPolicy,
    kConfig,       // the config agent: a revision refused, a stream gap, a reconnect
    kCoordinator,  // a report the coordinator refused, or could not be reached for (once per
                   // outage and job: every round retries)
    kFinished,
    kFailed,
    kCancelled,
    kLost
  };
  Kind kind = Kind::kProgress;
  std::string job_id;
  std::string job_name;
  std::string message;
  // Progress (kProgress): the latest telemetry.
  std::uint64_t step = 0;
  std::uint32_t epoch = 0;
  double loss = 0, val_accuracy = 0, learning_rate = 0;
  std::uint64_t revision = 0;
  // kFinished: the trainer ended early (training/control/early_stop), so the job is stopped,
  // not completed.
  bool early_stopped = false;
};

struct HostDaemonOptions {
  std::string coordinator_url;
  std::string worker_token;     // enrols this host when it has no credential yet
  std::string host_credential;  // "NAME:SECRET"; empty: credential_file's, or enrol
  std::string credential_file;  // default: work_dir/host-credential
  std::string ca_file;
  std::string name;         // the worker name (default: the hostname)
  int slots = 1;            // jobs run at once
  std::string work_dir;     // each job's trainer writes into work_dir/<job id>/
  std::string trainer_exe;  // default: this executable
  // Put before PYTHONPATH for a command job's trainer, so that `import trainvisor` finds the
  // Python trainer API (the build or install tree's); empty: the environment's as it is.
  std::string python_path;
  std::vector<std::string> plugin_dirs;
  std::chrono::milliseconds poll_every{std::chrono::seconds(2)};
  // A sixth of the coordinator's default stale_after (30 s): a few late heartbeats on a loaded
  // host do not cost it its job.
  std::chrono::milliseconds heartbeat_every{std::chrono::seconds(5)};
  std::chrono::milliseconds supervise_every{std::chrono::milliseconds(200)};
  std::chrono::milliseconds kill_grace{std::chrono::seconds(20)};
  std::chrono::milliseconds telemetry_every{std::chrono::seconds(1)};
  std::chrono::milliseconds orphan_after{std::chrono::seconds(60)};  // passed to trainers
  // The most one coordinator call may wait (an upload: without progress). A hung coordinator
  // slows the daemon's loop down by this much per call; it never stops it.
  std::chrono::milliseconds coordinator_timeout{std::chrono::seconds(10)};
  // After stop(), how long the daemon keeps trying to hand its stopped jobs back to a coordinator
  // that does not answer. Past it the daemon exits without reporting them: their leases expire
  // and the coordinator's sweep requeues them, from the checkpoints the trainers wrote.
  std::chrono::milliseconds shutdown_report_grace{std::chrono::seconds(15)};
  std::optional<HostCapability> capability;  // default: detected
  std::function<void(const HostEvent&)> on_event;
  // Called once, on run()'s thread, when the coordinator first answers a claim: the host is
  // enrolled and its credential accepted (a service manager's readiness).
  std::function<void()> on_connected;
  bool exit_when_idle = false;  // return once no job is running and none can be claimed
  // GET /metrics (Prometheus text format) on metrics_bind:metrics_port, listening from the
  // daemon's construction; 0: any free port (see HostDaemon::metrics_port); unset: no listener.
  // Loopback by default: the metrics name jobs, and the listener asks for no token.
  std::optional<std::uint16_t> metrics_port;
  std::string metrics_bind = "127.0.0.1";
};

// The coordinator refused the worker token or this host's credential, or the credential file is
// unusable; the message says which and what to do.
class WorkerTokenRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class HostDaemon {
 public:
  // Throws std::invalid_argument for bad options, std::runtime_error when the metrics listener
  // cannot listen.
  explicit HostDaemon(HostDaemonOptions options);
  ~HostDaemon();
  // Works until stop() (or, with exit_when_idle, until nothing is left to do). Returns the number
  // of jobs this host completed. Throws WorkerTokenRefused (see the top of this file).
  int run();
  void stop();
  // The metrics listener's port; nullopt without one.
  std::optional<std::uint16_t> metrics_port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
