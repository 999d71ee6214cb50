#include "trainvisor/fleet/trainer_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <system_error>
#include <type_traits>
#include <variant>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/shm/config_block.hpp"

extern char** environ;

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A model parameter as `--param KEY=VALUE` gives it: strings bare, the rest as the manifest
// wrote them.
std::string arg_value(const plugin::ParamValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  return param_value_text(v);
}

int exit_code_of(int wait_status) {
  return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

// posix_spawn's actions and attributes, released on every path out of spawn().
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  ~SpawnSetup() {
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

// The spawner's environment without the variables in `unset`, with each KEY=VALUE of `extra`
// set over it.
std::vector<std::string> environment_with(const std::vector<std::string>& extra,
                                          const std::vector<std::string>& unset) {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string key = entry.substr(0, entry.find('=') + 1);
    const bool replaced = std::any_of(extra.begin(), extra.end(), [&](const std::string& x) {
      return x.compare(0, key.size(), key) == 0;
    });
    const bool dropped =
        std::find(unset.begin(), unset.end(), key.substr(0, key.size() - 1)) != unset.end();
    if (!replaced && !dropped) out.push_back(entry);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

}  // namespace

namespace {

std::string joined(const std::vector<std::int64_t>& v) {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i)
    out += (i ? "," : "") + std::to_string(v[i]);
  return out;
}

void append_stream_args(const TrainerCommand::StreamArgs& s, std::vector<std::string>& a) {
  for (const std::string& f : s.segment_files)
    a.insert(a.end(), {"--segment", f});
  a.insert(a.end(),
           {"--stream-first-sample", std::to_string(s.first_sample), "--window",
            std::to_string(s.window_begin) + ":" + std::to_string(s.window_end), "--sample-shape",
            joined(s.sample_shape), "--classes", std::to_string(s.num_classes), "--holdout",
            arg_value(s.holdout), "--stream-epochs", std::to_string(s.epochs)});
  if (!s.eval_set_file.empty()) a.insert(a.end(), {"--eval-set", s.eval_set_file});
  if (!s.initial_weights.empty()) a.insert(a.end(), {"--initial-weights", s.initial_weights});
  if (!s.baseline.empty()) a.insert(a.end(), {"--baseline", s.baseline});
}

}  // namespace

TrainerCommand TrainerCommand::for_job(std::string executable, const JobSpec& spec,
                                       const JobFolder& folder) {
  TrainerCommand c;
  c.executable = std::move(executable);
  c.job_id = spec.id;
  c.model = spec.model;
  c.out_dir = folder.root.string();
  c.seed = spec.seed;
  for (const auto& [k, v] : spec.model_params)
    c.params.push_back(k + "=" + arg_value(v));
  c.max_train_samples = spec.data.max_train_samples;
  c.max_val_samples = spec.data.max_val_samples;
  c.resume = fs::exists(folder.checkpoint_state());
  return c;
}

std::vector<std::string> TrainerCommand::argv() const {
  std::vector<std::string> a = {executable, "train", "--job-id", job_id, "--model", model};
  if (!out_dir.empty()) a.insert(a.end(), {"--out", out_dir});
  a.insert(a.end(), {"--seed", std::to_string(seed)});
  for (const auto& p : params)
    a.insert(a.end(), {"--param", p});
  for (const auto& d : plugin_dirs)
    a.insert(a.end(), {"--plugin-dir", d});
  if (orphan_after) {
    a.insert(a.end(),
             {"--orphan-after", std::to_string(static_cast<double>(orphan_after->count()) / 1000)});
  }
  if (lease_attempt != 0 || !lease_digest.empty()) {
    a.insert(a.end(),
             {"--lease-attempt", std::to_string(lease_attempt), "--lease-digest", lease_digest});
  }
  const auto count = [&](const char* flag, std::int64_t n) {
    if (n > 0) a.insert(a.end(), {flag, std::to_string(n)});
  };
  count("--steps", steps);
  count("--max-epochs", max_epochs);
  count("--max-train-samples", max_train_samples);
  count("--max-val-samples", max_val_samples);
  if (resume) a.push_back("--resume");
  if (quiet) a.push_back("--quiet");
  if (stream) append_stream_args(*stream, a);
  return a;
}

TrainerOutcome outcome_of_exit(int exit_code) {
  switch (exit_code) {
    case exit_status(TrainerExitCode::kCompleted):
    case exit_status(TrainerExitCode::kEarlyStopped):
      return TrainerOutcome::kCompleted;
    case exit_status(TrainerExitCode::kInterrupted):
      return TrainerOutcome::kHostLost;
    default:
      return TrainerOutcome::kTrainerFailure;
  }
}

TrainerProcess TrainerProcess::spawn(const TrainerLaunch& launch) {
  if (launch.argv.empty()) throw std::invalid_argument("a trainer needs a command line");
  SpawnSetup s;
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&s.attr, &none);
  short flags = POSIX_SPAWN_SETSIGMASK;
  if (launch.own_session) flags |= POSIX_SPAWN_SETSID;
  posix_spawnattr_setflags(&s.attr, flags);
  if (launch.log.empty()) {
    posix_spawn_file_actions_adddup2(&s.actions, launch.stdout_fd >= 0 ? launch.stdout_fd : 2, 1);
  } else {
    posix_spawn_file_actions_addopen(&s.actions, 1, launch.log.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&s.actions, 1, 2);
  }
  // The spawner's sockets and databases are not the trainer's.
  posix_spawn_file_actions_addclosefrom_np(&s.actions, 3);
  if (!launch.cwd.empty()) posix_spawn_file_actions_addchdir_np(&s.actions, launch.cwd.c_str());
  std::vector<std::string> args = launch.argv;
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = environment_with(launch.env, launch.unset);
  std::vector<char*> envp;
  for (auto& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  TrainerProcess p;
  if (const int rc = ::posix_spawn(&p.pid_, argv[0], &s.actions, &s.attr, argv.data(), envp.data()))
    throw std::system_error(rc, std::generic_category(), "cannot start the trainer " + args[0]);
  p.start_ticks_ = shm::process_start_ticks(p.pid_);
  return p;
}

TrainerProcess TrainerProcess::adopt(pid_t pid, std::uint64_t start_ticks,
                                     std::filesystem::path exit_code_file) {
  TrainerProcess p;
  p.pid_ = pid;
  p.start_ticks_ = start_ticks;
  p.adopted_ = true;
  p.exit_code_file_ = std::move(exit_code_file);
  return p;
}

bool TrainerProcess::running() const {
  if (exit_code_) return false;
  return !adopted_ || shm::process_start_ticks(pid_) == start_ticks_;
}

std::optional<int> TrainerProcess::poll() {
  if (exit_code_) return exit_code_;
  // The whole group: a command job's trainer is the child of trainer-exec, which leads it.
  if (kill_at_ && Clock::now() >= *kill_at_) {
    if (running() && ::getpgid(pid_) == pid_) {
      ::kill(-pid_, SIGKILL);
    } else {
      signal(SIGKILL);
    }
  }
  if (adopted_) {
    if (shm::process_start_ticks(pid_) == start_ticks_) return std::nullopt;
    std::ifstream in(exit_code_file_);
    int code = 0;
    exit_code_ = (in >> code) ? code : 128 + SIGKILL;
    return exit_code_;
  }
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == 0 || (r < 0 && errno == EINTR)) return std::nullopt;
  if (r < 0)
    throw std::system_error(errno, std::generic_category(),
                            "cannot wait for the trainer (pid " + std::to_string(pid_) + ")");
  exit_code_ = exit_code_of(status);
  return exit_code_;
}

void TrainerProcess::terminate(std::chrono::milliseconds grace) {
  if (kill_at_) return;
  signal(SIGTERM);
  kill_at_ = Clock::now() + grace;
}

void TrainerProcess::signal(int sig) {
  // A reaped child's pid, or an adopted trainer's that another process now holds, is not ours.
  if (running()) ::kill(pid_, sig);
}

}  // namespace tv::fleet
