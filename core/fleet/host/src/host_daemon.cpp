#include "trainvisor/fleet/host_daemon.hpp"

#include "stream_inputs.hpp"

#include <signal.h>

#include <deque>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "host_credential.hpp"
#include "host_metrics.hpp"
#include "log_tail.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/capability.hpp"
#include "trainvisor/fleet/config_agent.hpp"
#include "trainvisor/fleet/folder_archive.hpp"
#include "trainvisor/fleet/names.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/trainer_process.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"

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

// Policies' writes go to the coordinator's hub and return through the job's config stream. A
// write made while the coordinator is unreachable is kept, in order, and sent when it is back:
// a policy's decision is not lost to an outage (a refusal, though, is final).
class CoordinatorSink final : public ConfigSink {
  // The config route's answers to a policy's write under a frozen prefix, and to one decided
  // before a human's later write to one of its keys (the others are 400/404).
  static constexpr int kFrozenStatus = 409;
  static constexpr int kSupersededStatus = 412;

 public:
  CoordinatorSink(api::CoordinatorClient& client, std::string job_id, const ConfigAgent& agent)
      : client_(client), job_(std::move(job_id)), agent_(agent) {
    refresh();
  }
  WriteOutcome apply(const std::vector<plugin::ProposedWrite>& writes,
                     const std::string& actor) override {
    Pending p{actor, {}, "", view_revision_};
    for (const auto& w : writes) {
      p.writes[w.path] = w.value;
      if (!w.reason.empty()) p.reason += (p.reason.empty() ? "" : "; ") + w.reason;
    }
    if (!pending_.empty()) {  // earlier writes wait: this one goes after them
      queue(std::move(p));
      WriteOutcome out;
      out.fate = plugin::WriteFate::kQueued;
      out.reason = "queued behind " + std::to_string(pending_.size() - 1) +
                   " write(s) the coordinator has not received yet";
      return out;
    }
    WriteOutcome out;
    if (!send(p, out)) {
      out.fate = plugin::WriteFate::kQueued;
      out.reason = "queued: the coordinator is unreachable (" + out.reason +
                   "); it is sent when the coordinator is back";
      queue(std::move(p));
    }
    return out;
  }
  // Sends the queued writes, oldest first, until one cannot be sent. Returns what happened to
  // each one that left the queue.
  std::vector<std::string> flush() {
    std::vector<std::string> done;
    while (!pending_.empty()) {
      WriteOutcome out;
      if (!send(pending_.front(), out)) break;
      done.push_back(pending_.front().actor + ": queued write " +
                     (out.applied ? "applied as revision " + std::to_string(out.revision)
                                  : "refused: " + out.reason));
      pending_.pop_front();
    }
    return done;
  }
  const plugin::ConfigView& config() const override { return view_; }
  std::uint64_t revision() const override { return agent_.revision(); }
  const KeyWriters& writers() const override { return writers_; }
  // The values the policies see: what the block holds now, and who wrote each key.
  void refresh() {
    view_ = agent_.config();
    writers_ = agent_.writers();
    view_revision_ = agent_.revision();
  }

 private:
  struct Pending {
    std::string actor;  // policy:NAME
    plugin::Params writes;
    std::string reason;
    // The revision of the view the policy decided from: the coordinator refuses the write if a
    // human wrote one of its keys since, even when it was queued through an outage.
    std::uint64_t decided_from = 0;
  };
  static constexpr std::size_t kMaxPending = 1000;

  void queue(Pending p) {
    if (pending_.size() == kMaxPending) pending_.pop_front();  // the oldest decision is stalest
    pending_.push_back(std::move(p));
  }

  // False when the coordinator could not be reached (out.reason says why).
  bool send(const Pending& p, WriteOutcome& out) {
    api::ConfigWriteRequest request;
    const auto actor = api::Actor::parse(p.actor);
    request.policy = actor ? actor->name : p.actor;
    request.writes = p.writes;
    request.reason = api::bounded_text(p.reason);  // merged policy reasons can grow long
    request.decided_from = p.decided_from;
    std::optional<api::Reply<api::ConfigWriteReply>> r;
    try {
      r = client_.write_config(job_, request);
    } catch (const std::exception& e) {
      out.reason = e.what();
      return false;
    }
    if (r->status() >= 500) {
      out.reason = "HTTP " + std::to_string(r->status());
      return false;
    }
    if (*r) {
      out.applied = true;
      out.fate = plugin::WriteFate::kApplied;
      out.revision = (*r)->revision;
      return true;
    }
    out.fate = r->status() == kFrozenStatus       ? plugin::WriteFate::kFrozen
               : r->status() == kSupersededStatus ? plugin::WriteFate::kHeld
                                                  : plugin::WriteFate::kInvalid;
    out.reason =
        "the coordinator refused it (" + std::to_string(r->status()) + "): " + r->error().error;
    return true;
  }

  api::CoordinatorClient& client_;
  std::string job_;
  const ConfigAgent& agent_;
  plugin::ConfigView view_;
  KeyWriters writers_;
  std::uint64_t view_revision_ = 0;
  std::deque<Pending> pending_;
};

// A batch for the coordinator: every point where the applied revision changed (so the step it
// took effect at is exact) and the last one, plus the others thinned evenly, evaluations and
// training steps each to at most kPerBatch: a fast trainer makes thousands of steps a second.
std::vector<const plugin::TelemetryPoint*> thin(const std::vector<plugin::TelemetryPoint>& h,
                                                std::size_t first, std::uint64_t revision) {
  constexpr std::size_t kPerBatch = 120;
  std::size_t evals = 0, steps = 0;
  for (std::size_t i = first; i < h.size(); ++i)
    ((h[i].flags & plugin::kTelemetryEval) ? evals : steps)++;
  const std::size_t eval_stride = std::max<std::size_t>(1, (evals + kPerBatch - 1) / kPerBatch);
  const std::size_t step_stride = std::max<std::size_t>(1, (steps + kPerBatch - 1) / kPerBatch);
  std::vector<const plugin::TelemetryPoint*> out;
  std::size_t e = 0, s = 0;
  for (std::size_t i = first; i < h.size(); ++i) {
    const bool eval = (h[i].flags & plugin::kTelemetryEval) != 0;
    const bool keep = h[i].config_revision != revision || i + 1 == h.size() ||
                      (eval ? e++ % eval_stride == 0 : s++ % step_stride == 0);
    revision = h[i].config_revision;
    if (keep) out.push_back(&h[i]);
  }
  return out;
}

// A command job's output directory (TRAINVISOR_OUT_DIR), kept across attempts on this host
// like a checkpoint, emptied with the folder when a requeue starts the job over.
fs::path command_out_dir(const JobFolder& folder) {
  return folder.root / "out";
}

// The generation (see ClaimReply) the checkpoint in a job's folder was written in, kept beside
// it by this daemon; a folder without the file is generation 0.
fs::path generation_file(const JobFolder& folder) {
  return folder.root / "generation";
}

// Readies a job's folder for a claim of `generation`: a folder left by another generation (the
// job was requeued to start over) is emptied, so the trainer starts from step 0 instead of
// resuming a checkpoint of the earlier run. Returns true when it was emptied.
bool prepare_folder(const JobFolder& folder, std::int64_t generation) {
  std::int64_t stored = 0;
  if (std::ifstream in(generation_file(folder)); in) in >> stored;
  const bool stale = stored != generation && fs::exists(folder.root);
  if (stale) fs::remove_all(folder.root);
  fs::create_directories(folder.root);
  std::ofstream(generation_file(folder)) << generation << "\n";
  return stale;
}

api::CoordinatorClientOptions worker_client_options(const HostDaemonOptions& o) {
  api::CoordinatorClientOptions c;
  c.http = http::ClientOptions{o.coordinator_url, o.ca_file, o.coordinator_timeout};
  c.worker_token = o.worker_token;
  return c;
}

struct RunningJob {
  JobSpec spec;
  std::string lease;
  std::int64_t attempt = 0;     // the claim's: with the lease, what the block and trainer carry
  std::int64_t generation = 0;  // the claim's: which checkpoints may be resumed
  JobFolder folder;
  std::unique_ptr<ConfigAgent> agent;
  std::unique_ptr<CoordinatorSink> sink;
  std::unique_ptr<Supervisor> supervisor;
  TrainerProcess process;
  bool running_reported = false;     // the coordinator has been told that the trainer runs
  std::uint64_t telemetry_sent = 0;  // points (counted from the first) the coordinator has
  std::uint64_t last_sent_revision = 0;
  std::uint64_t missed_sent = 0;
  std::vector<AgentRefusal> refusals_unsent;
  std::string last_unreachable;  // the last coordinator error reported for this job
  Clock::time_point next_telemetry;
  Clock::time_point next_heartbeat;
  Clock::time_point next_log;
  std::uintmax_t log_sent_size = 0;  // the trainer log's size when its tail was last sent
  bool log_final_tried = false;      // the tail after the trainer's exit has been tried once
  std::optional<int> exit_code;      // the trainer has exited; reporting may be pending
  std::string block_broken;          // why the job's block cannot be used (kBlockBroken)
  ConfigAgentStats agent_counted;    // what the metrics have of the agent's stats
  enum class Ending {
    kNone,
    kCancelled,
    kLeaseLost,
    kShutdown,
    kBlockBroken
  } ending = Ending::kNone;
};

}  // namespace

struct HostDaemon::Impl {
  HostDaemonOptions o;
  api::CoordinatorClient client;
  HostCapability capability;
  PluginRegistry plugins;
  std::vector<std::unique_ptr<RunningJob>> jobs;
  std::atomic<bool> stopping{false};
  bool stop_seen = false;  // run()'s thread only: when it first saw `stopping`
  Clock::time_point stop_seen_at;
  bool connected = false;  // a claim has been answered (run()'s thread only)
  int completed = 0;
  struct AgentLog {
    std::string job_id, job_name, message;
  };
  std::mutex agent_log_mu;
  std::vector<AgentLog> agent_log;
  HostMetrics metrics;
  std::unique_ptr<http::Server> metrics_server;  // set with o.metrics_port

  explicit Impl(HostDaemonOptions opts) : o(std::move(opts)), client(worker_client_options(o)) {
    if (o.slots < 1) throw std::invalid_argument("a host needs at least one slot");
    capability = o.capability ? *o.capability : detect_capability();
    if (o.name.empty()) o.name = capability.hostname;
    if (o.trainer_exe.empty()) o.trainer_exe = fs::read_symlink("/proc/self/exe").string();
    if (const std::string why = host_name_problem(o.name); !why.empty())
      throw std::invalid_argument(why + " (give --name)");
    if (o.work_dir.empty())
      o.work_dir = (fs::temp_directory_path() / ("trainvisor-host-" + o.name)).string();
    fs::create_directories(o.work_dir);
    // The credential and the jobs' lease tokens live here.
    fs::permissions(o.work_dir, fs::perms::owner_all);
    if (o.credential_file.empty())
      o.credential_file = (fs::path(o.work_dir) / "host-credential").string();
    std::vector<std::string> dirs = o.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    plugins = PluginRegistry::load(dirs);
    if (o.metrics_port) metrics_server = serve_metrics(metrics, o.metrics_bind, *o.metrics_port);
  }

  void emit(HostEvent::Kind kind, const RunningJob& j, std::string message,
            bool early_stopped = false) {
    if (!o.on_event) return;
    HostEvent e;
    e.kind = kind;
    e.job_id = j.spec.id;
    e.job_name = j.spec.name;
    e.message = std::move(message);
    e.early_stopped = early_stopped;
    o.on_event(e);
  }

  // A coordinator call that could not get through: said once per job until the error changes
  // (each round retries; an outage must not flood the log).
  void note_unreachable(RunningJob& job, const char* what, const std::exception& e) {
    const std::string why = std::string(what) + ": " + e.what();
    if (why == job.last_unreachable) return;
    job.last_unreachable = why;
    emit(HostEvent::Kind::kCoordinator, job, "coordinator unreachable (" + why + "); retrying");
  }

  // Fails the job with `failure`; a refusal is reported, an unreachable coordinator throws.
  void fail(const RunningJob& job, FailureClass failure, const std::string& reason) {
    const auto r = client.fail(job.spec.id, {job.lease, failure, api::bounded_text(reason)});
    if (!r)
      emit(HostEvent::Kind::kCoordinator, job,
           "the coordinator refused the failure report (" + std::to_string(r.status()) +
               "): " + r.error().error);
  }

  bool try_claim() {
    metrics.claims_attempted.inc();
    const auto r = client.claim({o.name, capability});
    if (r.status() == 401 || r.status() == 403) {
      // No later poll can succeed: say so once and stop, rather than retry forever.
      throw WorkerTokenRefused("host " + o.name + "'s credential refused by the coordinator at " +
                               o.coordinator_url + " (HTTP " + std::to_string(r.status()) + ": " +
                               r.error().error +
                               "); an operator can enrol it again (trainvisor "
                               "hosts enrol " +
                               o.name + ") and give it with --credential-file");
    }
    if (!r) {
      throw std::runtime_error("claim refused (" + std::to_string(r.status()) +
                               "): " + r.error().error);
    }
    if (!connected) {
      connected = true;
      if (o.on_connected) o.on_connected();
    }
    if (!r->job) return false;
    metrics.claims_granted.inc();
    auto job = std::make_unique<RunningJob>();
    job->spec = *r->job;
    job->lease = r->lease_token;
    job->attempt = r->attempt;
    job->generation = r->generation;
    emit(HostEvent::Kind::kClaimed, *job, "attempt " + std::to_string(r->attempt));
    try {
      start(*job);
    } catch (const std::exception& e) {
      // The job could not even start here (a plugin this host lacks, a block it cannot create).
      fail(*job, FailureClass::kTrainerFailure, std::string("host ") + o.name + ": " + e.what());
      emit(HostEvent::Kind::kFailed, *job, e.what());
      return true;
    }
    jobs.push_back(std::move(job));
    return true;
  }

  // The agent, the policies' sink and the supervisor of a job (new, or adopted after a restart).
  void supervise(RunningJob& job) {
    ConfigAgentOptions ao;
    ao.coordinator = http::ClientOptions{o.coordinator_url, o.ca_file, o.coordinator_timeout};
    ao.host_credential = client.options().host_credential;
    ao.job_id = job.spec.id;
    ao.initial = job.spec.hyper;
    ao.lease_attempt = static_cast<std::uint64_t>(job.attempt);
    ao.lease_digest = lease_digest_hex(job.lease);
    ao.log = [this, name = job.spec.name, id = job.spec.id](const std::string& m) {
      // Runs on the agent's thread: events are queued for the loop's thread.
      std::lock_guard lock(agent_log_mu);
      agent_log.push_back({id, name, m});
    };
    job.agent = std::make_unique<ConfigAgent>(std::move(ao));
    job.sink = std::make_unique<CoordinatorSink>(client, job.spec.id, *job.agent);
    job.supervisor = std::make_unique<Supervisor>(
        shm::ConfigBlockReader::attach(job.agent->block_name(),
                                       shm::ConfigBlockReader::Access::kReadWrite),
        *job.sink);
    for (const PolicySpec& p : job.spec.policies) {
      plugin::PolicyPlugin& pp = plugins.policy(p.name);
      // The grace keys are the framework's, beside the plugin's own (manifest.hpp).
      std::vector<plugin::ParamSpec> schema = pp.describe().params;
      for (plugin::ParamSpec& g : human_grace_params())
        schema.push_back(std::move(g));
      plugin::Params params = resolve_params(schema, p.params, "policy '" + p.name + "'");
      const HumanGrace grace = take_human_grace(params);
      std::string error;
      auto policy = pp.create(params, error);
      if (!policy) throw std::runtime_error("policy '" + p.name + "': " + error);
      job.supervisor->add_policy(p.name, std::move(policy), grace);
    }
    job.next_telemetry = Clock::now() + o.telemetry_every;
  }

  // A command job's working directory on this host: its shipped archive unpacked afresh into the
  // job's folder, the host's own folder, or the output directory when it names neither.
  fs::path command_workdir(const RunningJob& job, const fs::path& out_dir) {
    const CommandTrainer& c = *job.spec.command;
    if (!c.host_workdir.empty()) {
      std::error_code ec;
      if (!fs::is_directory(c.host_workdir, ec))
        throw std::runtime_error("host_workdir " + c.host_workdir +
                                 " is not a folder on this host");
      return c.host_workdir;
    }
    if (c.workdir.empty()) return out_dir;
    const std::string archive = fetch_artifact(client, c.workdir, "working directory",
                                               (fs::path(o.work_dir) / "cache").string());
    const fs::path dir = job.folder.root / "workdir";
    fs::remove_all(dir);
    unpack_archive(archive, dir);
    return dir;
  }

  // Starts a command job's trainer through trainer-exec (trainer_process.hpp, CommandSetup).
  // Returns whether it resumes (its output directory holds files of an earlier attempt).
  bool start_command(RunningJob& job) {
    const fs::path out_dir = command_out_dir(job.folder);
    const bool resume = fs::exists(out_dir) && !fs::is_empty(out_dir);
    fs::create_directories(out_dir);
    CommandSetup s;
    s.executable = o.trainer_exe;
    s.block = job.agent->block_name();
    s.workdir = command_workdir(job, out_dir);
    s.out_dir = out_dir;
    s.exit_code_file = job.folder.exit_code();
    s.log = job.folder.log();
    s.lease_attempt = static_cast<std::uint64_t>(job.attempt);
    s.lease_digest = lease_digest_hex(job.lease);
    s.orphan_after = o.orphan_after;
    s.python_path = o.python_path;
    const std::string& program = job.spec.command->argv[0];
    if (!find_program(program, s.workdir)) {
      throw std::runtime_error("trainer command '" + program + "' is not an executable " +
                               (program.find('/') == std::string::npos
                                    ? "on this host's PATH"
                                    : "file in " + s.workdir.string()));
    }
    fs::remove(job.folder.exit_code());
    job.process = TrainerProcess::spawn(command_launch(job.spec, s));
    return resume;
  }

  void start(RunningJob& job) {
    job.folder = JobFolder{fs::path(o.work_dir) / job.spec.id};
    const bool started_over = prepare_folder(job.folder, job.generation);
    supervise(job);
    if (job.spec.command) {
      bool resume = false;
      try {
        resume = start_command(job);
      } catch (const std::exception&) {
        job.agent->remove_block();  // no trainer will read it; the caller fails the job
        throw;
      }
      after_start(job, resume, started_over);
      return;
    }
    TrainerCommand command = TrainerCommand::for_job(o.trainer_exe, job.spec, job.folder);
    if (job.spec.pipeline) {
      try {
        command.stream = fetch_stream_inputs(client, *job.spec.pipeline,
                                             (fs::path(o.work_dir) / "cache").string());
      } catch (const std::exception&) {
        job.agent->remove_block();  // no trainer will read it; the caller fails the job
        throw;
      }
    }
    command.plugin_dirs = o.plugin_dirs;
    command.orphan_after = o.orphan_after;
    command.lease_attempt = static_cast<std::uint64_t>(job.attempt);
    command.lease_digest = lease_digest_hex(job.lease);
    fs::remove(job.folder.exit_code());
    // Its own session: a terminal's Ctrl-C or a signal to the daemon's process group is the
    // daemon's to handle, and the trainer may outlive it.
    try {
      TrainerLaunch launch;
      launch.argv = command.argv();
      launch.own_session = true;
      launch.log = job.folder.log();
      job.process = TrainerProcess::spawn(launch);
    } catch (const std::exception&) {
      job.agent->remove_block();  // no trainer will read it; the caller fails the job
      throw;
    }
    after_start(job, command.resume, started_over);
  }

  void after_start(RunningJob& job, bool resume, bool started_over) {
    job.next_heartbeat = Clock::now() + o.heartbeat_every;
    write_holder(job);
    report_running(job);
    emit(HostEvent::Kind::kStarted, job,
         resume         ? "resuming from its checkpoint"
         : started_over ? "started from step 0 (requeued: the earlier run's files were removed)"
                        : "started");
  }

  // Tells the coordinator that the trainer runs. The lease's heartbeats and its completion do
  // not need it, so a call that does not get through is tried again next round; it is never a
  // reason to give up a job whose trainer already runs.
  void report_running(RunningJob& job) {
    try {
      client.mark_running(job.spec.id, job.lease);
      job.running_reported = true;
    } catch (const std::exception& e) {
      // The coordinator is away or hung; the next round tries again.
      note_unreachable(job, "running", e);
    }
  }

  void terminate(RunningJob& job, RunningJob::Ending why) {
    if (job.process.terminating()) return;
    job.ending = why;
    job.process.terminate(o.kill_grace);
  }

  // A block truncated under the job (by any process of this user) ends that job alone: its
  // trainer is stopped and the job handed back with the reason. Other jobs go on.
  void check_block(RunningJob& job) {
    if (job.ending != RunningJob::Ending::kNone) return;
    std::optional<std::string> why = job.agent->block_damage();
    if (!why) return;
    job.block_broken = *why;
    emit(HostEvent::Kind::kFailed, job, *why + "; stopping its trainer");
    terminate(job, RunningJob::Ending::kBlockBroken);
  }

  // Returns true when the job is over and can be dropped.
  bool tend(RunningJob& job) {
    // A trainer that ended before its block was cut needs it no more: its outcome stands.
    if (!job.exit_code) check_block(job);
    for (const std::string& m : job.sink->flush())
      emit(HostEvent::Kind::kPolicy, job, m);
    job.sink->refresh();
    for (const SupervisorEvent& e : job.supervisor->poll()) {
      std::string msg = e.actor + ":";
      for (const auto& w : e.writes)
        msg += " " + w.path + " -> " + param_value_text(w.value) + " (" + w.reason + ")";
      if (!e.outcome.applied && !e.outcome.reason.empty())
        msg += " [not applied: " + e.outcome.reason + "]";
      else if (!e.outcome.reason.empty())
        msg += " [partly applied: " + e.outcome.reason + "]";
      if (!e.note.empty()) msg += " " + e.note;
      if (!e.stop_reason.empty() && e.writes.empty()) msg += " " + e.stop_reason;
      emit(HostEvent::Kind::kPolicy, job, msg + " [at step " + std::to_string(e.step) + "]");
    }
    send_telemetry(job, false);
    count_progress(job);
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
    if (!job.running_reported && job.ending == RunningJob::Ending::kNone) report_running(job);
    if (Clock::now() >= job.next_heartbeat && job.ending == RunningJob::Ending::kNone) {
      job.next_heartbeat = Clock::now() + o.heartbeat_every;
      try {
        const auto r = client.heartbeat(job.spec.id, job.lease);
        (r ? metrics.heartbeats_sent : metrics.heartbeats_failed).inc();
        if (r.lease_lost()) {
          emit(HostEvent::Kind::kLost, job,
               "the coordinator took the job back: " + r.error().error);
          terminate(job, RunningJob::Ending::kLeaseLost);
        } else if (r && r->cancel_requested) {
          emit(HostEvent::Kind::kCancelled, job, "cancelled by an operator");
          terminate(job, RunningJob::Ending::kCancelled);
        }
      } catch (const std::exception& e) {
        // The coordinator is away: the trainer keeps training; the next heartbeat tries again.
        metrics.heartbeats_failed.inc();
        note_unreachable(job, "heartbeat", e);
      }
    }
    if (!job.exit_code) {
      send_log(job);
      job.exit_code = job.process.poll();
      if (!job.exit_code) return false;
      check_block(job);  // it may have stopped because its block was cut: that is the reason
      job.supervisor->poll();
    }
    // Throws while the coordinator is unreachable; the next round reports again, until a
    // shutdown's grace is over.
    try {
      send_telemetry(job, true);
      send_log(job);
      finish(job, *job.exit_code);
    } catch (const std::exception& e) {
      if (!shutdown_report_given_up()) throw;
      emit(HostEvent::Kind::kCoordinator, job,
           std::string("not handed back: the coordinator did not answer within the shutdown "
                       "grace (") +
               e.what() + "); its lease expires and the coordinator requeues it");
    }
    metrics.trainer_exits.with({exit_class(job, *job.exit_code)}).inc();
    metrics.job_ended(job.spec.id);
    job.agent->remove_block();
    fs::remove(job.folder.holder());
    return true;
  }

  // The job's progress and its agent's revisions since the last round, in the metrics.
  void count_progress(RunningJob& job) {
    const ConfigAgentStats now = job.agent->stats();
    metrics.config_applied.inc(now.deltas - std::min(now.deltas, job.agent_counted.deltas));
    metrics.config_refused.inc(now.refused - std::min(now.refused, job.agent_counted.refused));
    job.agent_counted = now;
    if (!job.exit_code) metrics.job_progress(job.spec.id, job.supervisor->history());
  }

  // How a finished job ended here, for trainvisor_host_trainer_exits_total.
  static std::string_view exit_class(const RunningJob& job, int code) {
    switch (job.ending) {
      case RunningJob::Ending::kLeaseLost:
        return "lease_lost";
      case RunningJob::Ending::kBlockBroken:
        return "block_broken";
      case RunningJob::Ending::kCancelled:
        return "cancelled";
      case RunningJob::Ending::kShutdown:
        return "host_lost";
      case RunningJob::Ending::kNone:
        break;
    }
    switch (outcome_of_exit(code)) {
      case TrainerOutcome::kCompleted:
        return code == exit_status(TrainerExitCode::kEarlyStopped) ? "early_stopped" : "completed";
      case TrainerOutcome::kHostLost:
        return "host_lost";
      case TrainerOutcome::kTrainerFailure:
        break;
    }
    return "trainer_failure";
  }

  // Sends the telemetry the coordinator lacks (about every telemetry_every, or now when `flush`)
  // with the agent's refusals. Failures keep the batch for the next round.
  void send_telemetry(RunningJob& job, bool flush) {
    if (!flush && Clock::now() < job.next_telemetry) return;
    job.next_telemetry = Clock::now() + o.telemetry_every;
    for (auto& r : job.agent->take_refusals())
      job.refusals_unsent.push_back(std::move(r));
    const auto& h = job.supervisor->history();
    const std::uint64_t missed = job.supervisor->missed();
    const std::uint64_t total = job.supervisor->dropped() + h.size();
    if (job.telemetry_sent == total && job.refusals_unsent.empty() && missed == job.missed_sent)
      return;
    const std::size_t first = static_cast<std::size_t>(
        std::max(job.telemetry_sent, job.supervisor->dropped()) - job.supervisor->dropped());
    api::TelemetryBatch batch;
    batch.host = o.name;
    batch.missed = missed - job.missed_sent;
    // A record out of the wire's ranges (a broken trainer's) is left out: the coordinator would
    // refuse the whole batch, again at every retry.
    for (const plugin::TelemetryPoint* p : thin(h, first, job.last_sent_revision))
      if (api::point_in_range(*p)) batch.points.push_back(*p);
    for (const auto& r : job.refusals_unsent)
      batch.refusals.push_back({r.revision, api::bounded_text(r.reason)});
    try {
      const auto r = client.send_telemetry(job.spec.id, batch);
      if (!r) {
        emit(HostEvent::Kind::kConfig, job,
             "telemetry refused (" + std::to_string(r.status()) + "): " + r.error().error);
        return;
      }
      job.telemetry_sent = total;
      metrics.telemetry_forwarded.inc(batch.points.size());
      metrics.telemetry_lost.inc(batch.missed);
      if (!h.empty()) job.last_sent_revision = h.back().config_revision;
      job.missed_sent = missed;
      job.refusals_unsent.clear();
    } catch (const std::exception& e) {
      // The coordinator is away; the batch waits for the next round.
      note_unreachable(job, "telemetry", e);
    }
  }

  // The tail of the trainer's log, for the dashboard (api/job_log.hpp), when the log changed
  // since the last send: at most once per heartbeat_every, and once more as soon as the trainer
  // has exited (its last lines say why it ended). Its own call, not a heartbeat's field: the
  // heartbeat keeps the lease and stays small and certain, a tail refused or unread costs
  // nothing but the tail, and the last tail is sent when heartbeats have stopped. A tail
  // refused is not sent again; one the coordinator could not be reached for is, next time.
  void send_log(RunningJob& job) {
    if (job.ending == RunningJob::Ending::kLeaseLost) return;  // another host's job now
    const bool last = job.exit_code && !job.log_final_tried;
    if (!last && Clock::now() < job.next_log) return;
    job.next_log = Clock::now() + o.heartbeat_every;
    job.log_final_tried = job.exit_code.has_value();
    std::error_code ec;
    const std::uintmax_t size = fs::file_size(job.folder.log(), ec);
    if (ec || size == job.log_sent_size) return;
    const std::optional<LogTail> tail =
        read_log_tail(job.folder.log(), api::kMaxLogTailBytes, api::kMaxLogTailLines);
    if (!tail) return;
    try {
      const auto r = client.send_log(job.spec.id, job.lease, tail->text, tail->truncated);
      if (!r)
        emit(HostEvent::Kind::kCoordinator, job,
             "log tail refused (" + std::to_string(r.status()) + "): " + r.error().error);
      job.log_sent_size = tail->size;
    } catch (const std::exception& e) {
      note_unreachable(job, "log tail", e);  // sent again at the next interval
    }
  }

  // What a restarted daemon needs to adopt the job's trainer.
  void write_holder(RunningJob& job) {
    const json j = {{"spec", job_spec_json(job.spec)},
                    {"lease_token", job.lease},
                    {"attempt", job.attempt},
                    {"pid", job.process.pid()},
                    {"start_ticks", job.process.start_ticks()},
                    {"coordinator", o.coordinator_url}};
    const fs::path tmp = JobFolder::staging(job.folder.holder());
    std::ofstream(tmp) << j.dump();
    fs::rename(tmp, job.folder.holder());
  }

  // At start: the trainers an earlier daemon on this work_dir left running. Those whose lease the
  // coordinator still honours are adopted; the others are stopped (another host holds the job).
  void adopt_orphans() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(o.work_dir, ec)) {
      const JobFolder folder{entry.path()};
      const fs::path holder = folder.holder();
      if (!fs::exists(holder)) continue;
      auto job = std::make_unique<RunningJob>();
      try {
        std::ifstream in(holder);
        const json j = json::parse(in);
        job->spec = job_spec_from_json(j.at("spec"));
        job->lease = j.at("lease_token");
        job->attempt = j.value("attempt", std::int64_t{0});
        job->folder = folder;
        job->process = TrainerProcess::adopt(
            j.at("pid").get<pid_t>(), j.at("start_ticks").get<std::uint64_t>(), folder.exit_code());
        job->running_reported = true;  // by the daemon that started it
      } catch (const std::exception& e) {
        if (o.on_event)
          o.on_event(
              {HostEvent::Kind::kFailed, "", "", "ignoring " + holder.string() + ": " + e.what()});
        fs::remove(holder, ec);
        continue;
      }
      const bool alive = job->process.running();
      bool lease_lost = false;
      try {
        lease_lost = client.heartbeat(job->spec.id, job->lease).lease_lost();
      } catch (const std::exception& e) {
        // The coordinator is away: adopt; the next heartbeat settles it.
        note_unreachable(*job, "adopting", e);
      }
      if (lease_lost) {
        job->process.signal(SIGTERM);
        emit(HostEvent::Kind::kLost, *job,
             "left by an earlier daemon; the coordinator gave it away");
        fs::remove(holder, ec);
        // Only if it is still this lease's: the job's new holder may run on this machine too.
        shm::ConfigBlockWriter::remove_if_lease(
            shm::block_name_for_job(job->spec.id),
            shm::BlockLease::from_hex(static_cast<std::uint64_t>(job->attempt),
                                      lease_digest_hex(job->lease)));
        continue;
      }
      try {
        supervise(*job);
      } catch (const std::exception& e) {
        emit(HostEvent::Kind::kFailed, *job, std::string("cannot adopt: ") + e.what());
        job->process.signal(SIGTERM);
        continue;
      }
      job->next_heartbeat = Clock::now() + o.heartbeat_every;
      emit(HostEvent::Kind::kStarted, *job,
           alive ? "adopted its running trainer (pid " + std::to_string(job->process.pid()) +
                       ") at revision " + std::to_string(job->agent->revision())
                 : "adopted: its trainer has ended meanwhile");
      jobs.push_back(std::move(job));
    }
  }

  void finish(RunningJob& job, int code) {
    if (job.ending == RunningJob::Ending::kLeaseLost) return;  // someone else holds it now
    if (job.ending == RunningJob::Ending::kBlockBroken) {
      // Not the trainer's failure: the job goes back to the queue with the reason.
      fail(job, FailureClass::kHostLost, "host " + o.name + ": " + job.block_broken);
      return;
    }
    if (job.ending == RunningJob::Ending::kCancelled) {
      fail(job, FailureClass::kCancelled, "cancelled by an operator");
      return;
    }
    const TrainerOutcome outcome = outcome_of_exit(code);
    if (job.ending == RunningJob::Ending::kShutdown || outcome == TrainerOutcome::kHostLost) {
      fail(job, FailureClass::kHostLost, "host " + o.name + " shut down");
      return;
    }
    if (outcome == TrainerOutcome::kCompleted) {
      deliver(job, code);
      return;
    }
    const std::string command =
        job.spec.command ? " (" + job.spec.command->text().substr(0, 200) + ")" : "";
    const std::string reason = "trainer exited " + std::to_string(code) + command + ": " +
                               tail_of(job.folder.log().string(), 600);
    fail(job, FailureClass::kTrainerFailure, reason);
    emit(HostEvent::Kind::kFailed, job, reason);
  }

  // A trainer that succeeded: its bundle goes to the store (unless the store has it already) and
  // the job is completed. A missing bundle or a refusal fails the job. A coordinator that cannot
  // be reached (or times out) throws, and the next round delivers again: finished training is
  // not reported as the trainer's failure because of an outage.
  void deliver(RunningJob& job, int code) {
    std::string bundle = job.folder.bundle().string(), digest, refusal;
    try {
      if (job.spec.command) bundle = bundle_output(job);
      digest = sha256_file_hex(bundle);
    } catch (const std::exception& e) {
      refusal = e.what();
    }
    // A pipeline's training reports its evaluation as an artifact of the job, before the bundle,
    // so that the coordinator judges it when the job completes (and again after a crash).
    if (refusal.empty() && job.spec.pipeline) refusal = upload_evaluation(job);
    // Ask first: a bundle the store already has is not sent again.
    if (refusal.empty() && !client.artifact_stat(digest)) {
      const auto up = client.upload(job.spec.id, fs::path(bundle).filename().string(), bundle,
                                    digest, job.lease);
      if (!up)
        refusal = "upload refused (" + std::to_string(up.status()) + "): " + up.error().error;
    }
    const bool early_stopped = code == exit_status(TrainerExitCode::kEarlyStopped);
    if (refusal.empty()) {
      const auto r = client.complete(job.spec.id, {job.lease, digest, early_stopped});
      if (!r) refusal = "complete refused (" + std::to_string(r.status()) + "): " + r.error().error;
    }
    if (!refusal.empty()) {
      fail(job, FailureClass::kTrainerFailure, refusal);
      emit(HostEvent::Kind::kFailed, job, refusal);
      return;
    }
    ++completed;
    emit(HostEvent::Kind::kFinished, job,
         early_stopped ? "early stop; bundle " + digest : "bundle " + digest, early_stopped);
  }

  // A command job's output directory as its bundle (folder_archive.hpp): bundle.tar beside it.
  // Throws when the trainer left nothing there.
  std::string bundle_output(const RunningJob& job) {
    const fs::path out_dir = command_out_dir(job.folder);
    std::error_code ec;
    if (!fs::is_directory(out_dir, ec) || fs::is_empty(out_dir, ec))
      throw std::runtime_error("the trainer exited " + std::to_string(*job.exit_code) +
                               " but left nothing in its output directory " + out_dir.string() +
                               " (TRAINVISOR_OUT_DIR)");
    const fs::path bundle = job.folder.root / "bundle.tar";
    // As large as the coordinator's store takes by default (its --max-artifact-bytes).
    pack_folder_to_file(out_dir, bundle, {"__pycache__"},
                        ArchiveLimits{std::uint64_t{8} << 30, 1'000'000});
    return bundle.string();
  }

  // Uploads the trainer's evaluation.json; the refusal's words, or "" when it went through.
  std::string upload_evaluation(RunningJob& job) {
    const std::string path = job.folder.evaluation().string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return "the trainer wrote no " + path;
    const std::string digest = sha256_file_hex(path);
    const auto up = client.upload(job.spec.id, job.folder.evaluation().filename().string(), path,
                                  digest, job.lease);
    if (!up)
      return "evaluation upload refused (" + std::to_string(up.status()) + "): " + up.error().error;
    return "";
  }

  void drain_agent_log() {
    std::vector<AgentLog> logs;
    {
      std::lock_guard lock(agent_log_mu);
      logs.swap(agent_log);
    }
    if (!o.on_event) return;
    for (auto& l : logs)
      o.on_event({HostEvent::Kind::kConfig, l.job_id, l.job_name, l.message});
  }

  // The credential every call carries (see host_daemon.hpp), enrolling once if need be; an
  // unreachable coordinator is retried every poll. False when stopped first.
  bool obtain_credential() {
    if (!o.host_credential.empty()) {
      client.set_host_credential(o.host_credential);
      return true;
    }
    while (!stopping.load()) {
      try {
        client.set_host_credential(load_or_enrol_credential(o.name, o.credential_file, client));
        return true;
      } catch (const WorkerTokenRefused&) {
        throw;
      } catch (const std::exception& e) {
        if (o.on_event)
          o.on_event(
              {HostEvent::Kind::kCoordinator, "", "", std::string("enrolment: ") + e.what()});
        std::this_thread::sleep_for(o.poll_every);
      }
    }
    return false;
  }

  // Whether a stopping daemon has tried long enough to reach the coordinator.
  bool shutdown_report_given_up() const {
    return stop_seen && Clock::now() >= stop_seen_at + o.shutdown_report_grace;
  }

  int run() {
    auto next_poll = Clock::now();
    if (!obtain_credential()) return completed;
    adopt_orphans();
    while (true) {
      drain_agent_log();
      if (stopping.load()) {
        if (!stop_seen) stop_seen_at = Clock::now();
        stop_seen = true;
        for (auto& j : jobs)
          terminate(*j, RunningJob::Ending::kShutdown);
      } else if (static_cast<int>(jobs.size()) < o.slots && Clock::now() >= next_poll) {
        bool claimed = false;
        try {
          claimed = try_claim();
        } catch (const WorkerTokenRefused&) {
          throw;  // the caller's to report: nothing here can fix it
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
      metrics.jobs_running.set(static_cast<double>(jobs.size()));
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
std::optional<std::uint16_t> HostDaemon::metrics_port() const {
  if (!impl_->metrics_server) return std::nullopt;
  return impl_->metrics_server->port();
}

}  // namespace tv::fleet
