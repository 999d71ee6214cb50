// The trainer-process module with real children (/bin/sh stands in for the trainer): the job
// folder's names, the trainer's command line, exit code -> outcome, spawn and reap, SIGTERM then
// SIGKILL after the grace, and adoption of a trainer that is not our child.
#include "trainvisor/fleet/trainer_process.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "temp_dir.hpp"
#include "trainvisor/fleet/config_agent.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Polls until the child ends (10 s at most, then the test fails).
std::optional<int> wait_for(TrainerProcess& p) {
  const auto until = Clock::now() + 10s;
  while (Clock::now() < until) {
    if (auto code = p.poll()) return code;
    std::this_thread::sleep_for(5ms);
  }
  ADD_FAILURE() << "pid " << p.pid() << " did not end";
  p.signal(SIGKILL);
  return std::nullopt;
}

bool wait_until(const std::function<bool()>& ready) {
  const auto until = Clock::now() + 10s;
  while (Clock::now() < until) {
    if (ready()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

TrainerLaunch shell(const std::string& script, fs::path log = {}, bool own_session = false) {
  TrainerLaunch launch;
  launch.argv = {"/bin/sh", "-c", script};
  launch.own_session = own_session;
  launch.log = std::move(log);
  return launch;
}

class TrainerProcessTest : public ::testing::Test {
 protected:
  test::TempDir tmp_;
  const fs::path& dir_ = tmp_.path();
};

TEST(JobFolder, NamesTheFilesOfAJob) {
  const JobFolder f{"/w/job1"};
  EXPECT_EQ(f.bundle(), fs::path("/w/job1/bundle.tvb"));
  EXPECT_EQ(f.checkpoint(), fs::path("/w/job1/checkpoint"));
  EXPECT_EQ(f.checkpoint_state(), fs::path("/w/job1/checkpoint/state.json"));
  EXPECT_EQ(f.checkpoint_staging(), fs::path("/w/job1/checkpoint.tmp"));
  EXPECT_EQ(f.exit_code(), fs::path("/w/job1/exit_code"));
  EXPECT_EQ(f.log(), fs::path("/w/job1/trainer.log"));
  EXPECT_EQ(f.holder(), fs::path("/w/job1/holder.json"));
  EXPECT_EQ(JobFolder::staging(f.holder()), fs::path("/w/job1/holder.json.tmp"));
}

TEST_F(TrainerProcessTest, CommandForAJobNamesItsFolderParamsAndSamples) {
  JobSpec spec;
  spec.id = "abc";
  spec.model = "mlp";
  spec.seed = 7;
  spec.model_params = {
      {"depth", std::int64_t{3}}, {"act", std::string("relu")}, {"bias", true}, {"scale", 0.5}};
  spec.data.max_train_samples = 100;
  TrainerCommand c = TrainerCommand::for_job("/bin/tv", spec, JobFolder{dir_});
  c.plugin_dirs = {"/p"};
  c.orphan_after = 2500ms;
  EXPECT_FALSE(c.resume);
  const std::vector<std::string> expected = {"/bin/tv",
                                             "train",
                                             "--job-id",
                                             "abc",
                                             "--model",
                                             "mlp",
                                             "--out",
                                             dir_.string(),
                                             "--seed",
                                             "7",
                                             "--param",
                                             "act=relu",
                                             "--param",
                                             "bias=true",
                                             "--param",
                                             "depth=3",
                                             "--param",
                                             "scale=0.5",
                                             "--plugin-dir",
                                             "/p",
                                             "--orphan-after",
                                             "2.500000",
                                             "--max-train-samples",
                                             "100"};
  EXPECT_EQ(c.argv(), expected);

  // A folder with a complete checkpoint resumes.
  fs::create_directories(JobFolder{dir_}.checkpoint());
  std::ofstream(JobFolder{dir_}.checkpoint_state()) << "{}";
  EXPECT_TRUE(TrainerCommand::for_job("/bin/tv", spec, JobFolder{dir_}).resume);
  EXPECT_EQ(TrainerCommand::for_job("/bin/tv", spec, JobFolder{dir_}).argv().back(), "--resume");
}

TEST(TrainerCommand, UnsetOptionsAreLeftOut) {
  TrainerCommand c;
  c.executable = "/bin/tv";
  c.job_id = "local-1";
  c.model = "tiny";
  c.params = {"width=4"};
  c.steps = 5;
  c.max_epochs = 2;
  c.quiet = true;
  const std::vector<std::string> expected = {
      "/bin/tv", "train",   "--job-id", "local-1", "--model",      "tiny", "--seed", "0",
      "--param", "width=4", "--steps",  "5",       "--max-epochs", "2",    "--quiet"};
  EXPECT_EQ(c.argv(), expected);
}

TEST(TrainerCommand, TheLeaseGoesByAttemptAndDigestNeverByToken) {
  TrainerCommand c;
  c.executable = "/bin/tv";
  c.job_id = "j";
  c.model = "tiny";
  c.lease_attempt = 3;
  c.lease_digest = lease_digest_hex("secret-token");
  const std::vector<std::string> argv = c.argv();
  const std::vector<std::string> expected = {
      "/bin/tv", "train", "--job-id",        "j", "--model",        "tiny",
      "--seed",  "0",     "--lease-attempt", "3", "--lease-digest", c.lease_digest};
  EXPECT_EQ(argv, expected);
  EXPECT_EQ(c.lease_digest.size(), 64u);
  for (const std::string& a : argv)
    EXPECT_EQ(a.find("secret-token"), std::string::npos) << a;
}

TEST(TrainerOutcome, ExitCodesMapToTheirOutcome) {
  EXPECT_EQ(outcome_of_exit(exit_status(TrainerExitCode::kCompleted)), TrainerOutcome::kCompleted);
  EXPECT_EQ(outcome_of_exit(exit_status(TrainerExitCode::kEarlyStopped)),
            TrainerOutcome::kCompleted);
  EXPECT_EQ(outcome_of_exit(exit_status(TrainerExitCode::kFailed)),
            TrainerOutcome::kTrainerFailure);
  EXPECT_EQ(outcome_of_exit(exit_status(TrainerExitCode::kBadInput)),
            TrainerOutcome::kTrainerFailure);
  EXPECT_EQ(outcome_of_exit(exit_status(TrainerExitCode::kInterrupted)), TrainerOutcome::kHostLost);
  EXPECT_EQ(outcome_of_exit(128 + SIGABRT), TrainerOutcome::kTrainerFailure);
  EXPECT_EQ(outcome_of_exit(128 + SIGKILL), TrainerOutcome::kTrainerFailure);
  EXPECT_EQ(outcome_of_exit(127), TrainerOutcome::kTrainerFailure);  // exec failed
  EXPECT_EQ(0, exit_status(TrainerExitCode::kCompleted));
  EXPECT_EQ(4, exit_status(TrainerExitCode::kInterrupted));
}

TEST_F(TrainerProcessTest, SpawnAndReapGiveTheExitCode) {
  TrainerProcess p = TrainerProcess::spawn(shell("exit 4"));
  EXPECT_GT(p.pid(), 0);
  EXPECT_EQ(wait_for(p), 4);
  EXPECT_FALSE(p.running());
  EXPECT_EQ(p.poll(), 4);  // reaped once; the code stays
}

TEST_F(TrainerProcessTest, DeathBySignalIs128PlusTheSignal) {
  TrainerProcess p = TrainerProcess::spawn(shell("kill -ABRT $$"));
  EXPECT_EQ(wait_for(p), 128 + SIGABRT);
}

TEST_F(TrainerProcessTest, LogGetsStdoutAndStderrAppended) {
  const fs::path log = dir_ / "trainer.log";
  std::ofstream(log) << "earlier\n";
  TrainerProcess p = TrainerProcess::spawn(shell("echo out; echo err >&2", log));
  EXPECT_EQ(wait_for(p), 0);
  EXPECT_EQ(read_file(log), "earlier\nout\nerr\n");
}

TEST_F(TrainerProcessTest, OwnSessionOnlyWhenAsked) {
  TrainerProcess own = TrainerProcess::spawn(shell("exec sleep 10", {}, true));
  TrainerProcess same = TrainerProcess::spawn(shell("exec sleep 10"));
  // The session is set before exec, so it is there as soon as the pid exists.
  EXPECT_EQ(::getsid(own.pid()), own.pid());
  EXPECT_EQ(::getsid(same.pid()), ::getsid(0));
  own.signal(SIGKILL);
  same.signal(SIGKILL);
  EXPECT_EQ(wait_for(own), 128 + SIGKILL);
  EXPECT_EQ(wait_for(same), 128 + SIGKILL);
}

TEST_F(TrainerProcessTest, ChildFeelsSigtermThatTheSpawnerBlocks) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  TrainerProcess p = TrainerProcess::spawn(shell("exec sleep 10"));
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  p.terminate(10s);
  EXPECT_EQ(wait_for(p), 128 + SIGTERM);
}

TEST_F(TrainerProcessTest, SpawnersDescriptorsAreNotInherited) {
  const int fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
  ASSERT_GE(fd, 3);
  TrainerProcess p = TrainerProcess::spawn(
      shell("test -e /proc/$$/fd/" + std::to_string(fd) + " && exit 1; exit 0"));
  EXPECT_EQ(wait_for(p), 0);
  ::close(fd);
}

TEST_F(TrainerProcessTest, SigtermThenSigkillAfterTheGrace) {
  const fs::path log = dir_ / "log";
  TrainerProcess p = TrainerProcess::spawn(
      shell("trap 'echo term' TERM; echo ready; while :; do sleep 0.02; done", log));
  ASSERT_TRUE(wait_until([&] { return read_file(log).find("ready") != std::string::npos; }));
  const auto sent = Clock::now();
  p.terminate(300ms);
  EXPECT_TRUE(p.terminating());
  p.terminate(0ms);  // a second call changes nothing: the grace stays
  ASSERT_TRUE(wait_until([&] { return read_file(log).find("term") != std::string::npos; }));
  EXPECT_EQ(p.poll(), std::nullopt);  // it felt SIGTERM and goes on
  EXPECT_EQ(wait_for(p), 128 + SIGKILL);
  EXPECT_GE(Clock::now() - sent, 300ms);
}

TEST_F(TrainerProcessTest, StartFailureThrows) {
  TrainerLaunch launch;
  launch.argv = {(dir_ / "no-such-trainer").string(), "train"};
  EXPECT_THROW(TrainerProcess::spawn(launch), std::system_error);
}

TEST_F(TrainerProcessTest, AdoptedTrainerEndsWithTheCodeItLeft) {
  const JobFolder folder{dir_};
  TrainerProcess child =
      TrainerProcess::spawn(shell("sleep 0.2; echo 3 > " + folder.exit_code().string()));
  TrainerProcess adopted =
      TrainerProcess::adopt(child.pid(), child.start_ticks(), folder.exit_code());
  EXPECT_TRUE(adopted.running());
  EXPECT_EQ(adopted.poll(), std::nullopt);
  EXPECT_EQ(wait_for(child), 0);  // reaped here: its pid names no process now
  EXPECT_EQ(wait_for(adopted), 3);

  // One that was killed left no code.
  TrainerProcess killed = TrainerProcess::spawn(shell("exec sleep 10"));
  TrainerProcess adopted_killed =
      TrainerProcess::adopt(killed.pid(), killed.start_ticks(), dir_ / "none");
  adopted_killed.terminate(0ms);
  EXPECT_EQ(wait_for(killed), 128 + SIGTERM);
  EXPECT_EQ(wait_for(adopted_killed), 128 + SIGKILL);
  // A pid that another process holds now is not signalled.
  adopted_killed.signal(SIGKILL);
}

}  // namespace
}  // namespace tv::fleet
