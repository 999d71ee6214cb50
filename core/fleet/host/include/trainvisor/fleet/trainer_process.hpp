// The trainer process as its spawner sees it: the arguments of `trainvisor train` for a job, its
// start, its end (a non-blocking reap, or for a trainer an earlier daemon started, its pid going
// away), SIGTERM then SIGKILL after a grace, and what its exit code means for the job. Used by
// the host daemon and by `trainvisor local`; the job folder's file names are
// trainvisor/core/job_folder.hpp, the exit codes trainvisor/core/trainer_exit_code.hpp.
//
// Errors: a trainer that cannot be started, or a reap that fails, throws std::system_error (the
// caller's process table is not what it believes). Threading: a TrainerProcess belongs to the
// thread that spawned or adopted it; the free functions may be called from any thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/core/trainer_exit_code.hpp"
#include "trainvisor/fleet/job_spec.hpp"

namespace tv::fleet {

// The command line of one `trainvisor train`. Zero and empty mean "not given".
struct TrainerCommand {
  std::string executable;  // a path, run without a PATH search
  std::string job_id;
  std::string model;
  std::string out_dir;
  std::uint64_t seed = 0;
  std::vector<std::string> params;  // KEY=VALUE, the model plugin's parameters
  std::vector<std::string> plugin_dirs;
  std::optional<std::chrono::milliseconds> orphan_after;
  // The lease the trainer runs for (--lease-attempt, --lease-digest): it stops once its block
  // carries another. The digest is of the token (lease_digest_hex), never the token.
  std::uint64_t lease_attempt = 0;
  std::string lease_digest;
  std::int64_t steps = 0;
  std::int64_t max_epochs = 0;
  std::int64_t max_train_samples = 0;
  std::int64_t max_val_samples = 0;
  bool resume = false;
  bool quiet = false;
  // A pipeline training's inputs as local files (the host fetched them by digest): the trainer
  // trains on this window of the stream instead of its model plugin's data set.
  struct StreamArgs {
    std::vector<std::string> segment_files;  // in stream order
    std::int64_t first_sample = 0, window_begin = 0, window_end = 0;
    std::vector<std::int64_t> sample_shape;
    std::int64_t num_classes = 0;
    double holdout = 0.1;
    std::string eval_set_file, initial_weights, baseline;
    std::int64_t epochs = 1;
  };
  std::optional<StreamArgs> stream;

  // What a host runs for `spec` in `folder`: resumed when the folder holds a checkpoint.
  static TrainerCommand for_job(std::string executable, const JobSpec& spec,
                                const JobFolder& folder);
  // argv[0] is the executable, argv[1] "train".
  std::vector<std::string> argv() const;
};

// How the trainer is started.
struct TrainerLaunch {
  std::vector<std::string> argv;
  // Its own session: a terminal's Ctrl-C or a signal to the spawner's process group is the
  // spawner's to handle, and the trainer may outlive the spawner.
  bool own_session = false;
  // Its stdout and stderr are appended to this file; empty: its stdout joins the spawner's
  // stderr (the spawner's stdout stays its own) and its stderr is the spawner's.
  std::filesystem::path log;
  // With no log: a descriptor of the spawner's (a pipe's write end) that becomes its stdout, so
  // that the spawner reads its summary line; -1: as above.
  int stdout_fd = -1;
  // Its working directory; empty: the spawner's.
  std::filesystem::path cwd;
  // KEY=VALUE entries set over the spawner's environment.
  std::vector<std::string> env;
  // Variables of the spawner's environment the trainer does not get (the fleet's secrets).
  std::vector<std::string> unset;
};

// A command job's trainer (job_spec.hpp, CommandTrainer) as the host starts it: through
// `EXE trainer-exec --exit-code-file F -- ARGV...` (run_trainer_command below), in its working
// directory, with the job's block and folders in its environment:
//   TRAINVISOR_BLOCK, TRAINVISOR_JOB_ID, TRAINVISOR_SEED (the job's), TRAINVISOR_OUT_DIR (bundled
//   and uploaded after exit 0 or 3; kept for a retry on this host, so a checkpoint there is
//   resumed), TRAINVISOR_ATTEMPT and TRAINVISOR_LEASE_DIGEST (the lease the block is stamped with:
//   a trainer stops once its block carries another), TRAINVISOR_ORPHAN_AFTER_S when the host gives
//   one, and `python_path` before PYTHONPATH (where `import trainvisor` finds the trainer API).
//   The user's command does not get the fleet's secrets from the host's environment
//   (kFleetSecretVariables).
struct CommandSetup {
  std::string executable;  // the trainvisor binary, which runs trainer-exec
  std::string block;
  std::filesystem::path workdir, out_dir, exit_code_file, log;
  std::uint64_t lease_attempt = 0;
  std::string lease_digest;
  std::optional<std::chrono::milliseconds> orphan_after;
  std::string python_path;
};
TrainerLaunch command_launch(const JobSpec& spec, const CommandSetup& setup);

// The environment variables that carry the fleet's tokens and a host's credential.
inline const std::vector<std::string> kFleetSecretVariables = {
    "TRAINVISOR_OPERATOR_TOKEN", "TRAINVISOR_WORKER_TOKEN", "TRAINVISOR_READ_TOKEN",
    "TRAINVISOR_INGEST_TOKEN", "TRAINVISOR_HOST_CREDENTIAL"};

// The file `program` names as execvp would find it (on $PATH unless it holds a '/', relative to
// `cwd` then); nullopt when there is none that can be executed.
std::optional<std::filesystem::path> find_program(const std::string& program,
                                                  const std::filesystem::path& cwd);

// `trainvisor trainer-exec`: runs `argv` (a PATH search for argv[0]) as its child, passes it
// SIGTERM, SIGINT and SIGHUP, and when it ends writes its exit code (128 + N for signal N) to
// `exit_code_file` (for a host daemon that restarted and is not its parent) and returns it. A
// command that cannot be started is said on stderr, naming it and the reason, and returns 2 (bad
// input). Blocks until the child ends.
int run_trainer_command(const std::filesystem::path& exit_code_file,
                        const std::vector<std::string>& argv);

// What a trainer's exit code means for its job.
enum class TrainerOutcome {
  kCompleted,       // 0, 3: the bundle is to be delivered
  kTrainerFailure,  // 1, 2, a signal, anything else: counts against the job's max_attempts
  kHostLost,        // 4: interrupted (its host shut down or went silent) after a checkpoint
};
TrainerOutcome outcome_of_exit(int exit_code);

class TrainerProcess {
 public:
  // Starts the trainer with the spawner's environment, no blocked signals (it must feel a
  // cancel's SIGTERM even when the spawner blocks it for a signal thread) and no descriptor of
  // the spawner's but 0, 1 and 2.
  static TrainerProcess spawn(const TrainerLaunch& launch);
  // A trainer an earlier daemon started, identified by pid and start time (a reused pid is
  // another process). It is not this process's child: it has ended once its pid names another
  // process or none, with the code it left in `exit_code_file` (128 + SIGKILL if it left none).
  static TrainerProcess adopt(pid_t pid, std::uint64_t start_ticks,
                              std::filesystem::path exit_code_file);

  pid_t pid() const { return pid_; }
  // The process's start time (/proc/PID/stat), which tells it from a later holder of its pid.
  std::uint64_t start_ticks() const { return start_ticks_; }
  // True while it has not been seen to end.
  bool running() const;

  // Its exit code once it has ended (128 + N when signal N ended it); nullopt while it runs.
  // Never blocks. Sends SIGKILL first when a terminate()'s grace has passed.
  std::optional<int> poll();
  // SIGTERM now (the trainer checkpoints and exits 4), SIGKILL from poll() once `grace` has
  // passed. Later calls change nothing.
  void terminate(std::chrono::milliseconds grace);
  bool terminating() const { return kill_at_.has_value(); }
  // Sends `sig` while it runs; nothing once it has ended.
  void signal(int sig);

 private:
  pid_t pid_ = -1;
  std::uint64_t start_ticks_ = 0;
  bool adopted_ = false;
  std::filesystem::path exit_code_file_;  // adopted only
  std::optional<int> exit_code_;
  std::optional<std::chrono::steady_clock::time_point> kill_at_;
};

}  // namespace tv::fleet
