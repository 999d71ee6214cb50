// Racing claimers: threads with their own connections, threads sharing one JobQueue, and
// separate processes. Every job must be claimed exactly once and none lost.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <latch>
#include <map>
#include <sstream>
#include <thread>

#include "test_support.hpp"

extern char** environ;

namespace tv::fleet {
namespace {

using test::make_job;

constexpr int kJobs = 200;

std::vector<JobSpec> many_jobs() {
  std::vector<JobSpec> jobs;
  for (int i = 0; i < kJobs; ++i)
    jobs.push_back(make_job("job-" + std::to_string(i)));
  return jobs;
}

// Checks that `won` (worker -> ids) covers all jobs exactly once and that the database agrees
// on who holds each job.
void expect_each_job_claimed_once(const std::map<std::string, std::vector<std::string>>& won,
                                  const JobQueue& q) {
  std::map<std::string, std::string> holder;
  for (const auto& [worker, ids] : won) {
    for (const auto& id : ids) {
      auto [it, inserted] = holder.emplace(id, worker);
      EXPECT_TRUE(inserted) << id << " claimed by both " << it->second << " and " << worker;
    }
  }
  EXPECT_EQ(holder.size(), static_cast<std::size_t>(kJobs));
  for (const auto& row : q.list()) {
    EXPECT_EQ(row.status, JobStatus::kClaimed) << row.spec.id;
    EXPECT_EQ(row.attempt, 1) << row.spec.id;
    auto it = holder.find(row.spec.id);
    ASSERT_NE(it, holder.end()) << row.spec.id << " was never reported as claimed";
    EXPECT_EQ(row.worker, it->second) << row.spec.id;
  }
  EXPECT_EQ(q.counts().at(JobStatus::kClaimed), kJobs);
  EXPECT_EQ(q.counts().at(JobStatus::kPending), 0);
}

// A queue file holding kJobs pending jobs, and the test's own connection to it.
class QueueRace : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(q.upsert_manifest(many_jobs()).added, kJobs); }

  test::TempDir dir;
  const std::string path = dir.file("jobs.db");
  JobQueue q = JobQueue::open(path);
};

TEST_F(QueueRace, EightThreadsWithTheirOwnConnections) {
  constexpr int kThreads = 8;
  std::map<std::string, std::vector<std::string>> won;
  std::vector<std::vector<std::string>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        auto mine = JobQueue::open(path);
        const std::string worker = "thread-" + std::to_string(t);
        start.arrive_and_wait();  // all connections open before the first claim
        while (auto c = mine.claim_next(worker, test::cpu_host())) {
          got[t].push_back(c->spec.id);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
      }
    });
  }
  for (auto& th : threads)
    th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(errors[t], "") << "thread " << t;
    won["thread-" + std::to_string(t)] = got[t];
  }
  expect_each_job_claimed_once(won, q);
}

TEST_F(QueueRace, ThreadsSharingOneQueueClaimAndComplete) {
  constexpr int kThreads = 4;
  std::vector<int> completed(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string worker = "shared-" + std::to_string(t);
      while (auto c = q.claim_next(worker, test::cpu_host())) {
        if (q.mark_running(c->spec.id, c->lease_token) != QueueResult::kOk) return;
        if (q.heartbeat(c->spec.id, c->lease_token).result != QueueResult::kOk) return;
        if (q.complete(c->spec.id, c->lease_token) != QueueResult::kOk) return;
        ++completed[t];
      }
    });
  }
  for (auto& th : threads)
    th.join();
  int total = 0;
  for (int n : completed)
    total += n;
  EXPECT_EQ(total, kJobs);
  EXPECT_EQ(q.counts().at(JobStatus::kCompleted), kJobs);
}

// A claimer process with its stdin and stdout on pipes.
struct Claimer {
  pid_t pid = -1;
  int to_child = -1;    // closing it starts the child's claiming
  int from_child = -1;  // its stdout
  std::string output;
  bool eof = false;
};

Claimer spawn_claimer(const std::string& db, const std::string& worker) {
  int in[2];
  int out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2 failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  std::string exe = TV_QUEUE_CLAIMER;
  std::vector<char*> argv{exe.data(), const_cast<char*>(db.c_str()),
                          const_cast<char*>(worker.c_str()), nullptr};
  Claimer c;
  int rc = ::posix_spawn(&c.pid, exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  if (rc != 0) throw std::runtime_error("posix_spawn " + exe + " failed: " + std::to_string(rc));
  c.to_child = in[1];
  c.from_child = out[0];
  return c;
}

// Reads every child's stdout until `done(child)` holds for all of them or the deadline passes.
// Polling all pipes at once means no child can block on a full pipe while we wait on another.
bool pump(std::vector<Claimer>& children, const std::function<bool(const Claimer&)>& done,
          std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    bool all = true;
    std::vector<pollfd> fds;
    std::vector<Claimer*> owners;
    for (auto& c : children) {
      if (!done(c)) all = false;
      if (!c.eof) {
        fds.push_back({c.from_child, POLLIN, 0});
        owners.push_back(&c);
      }
    }
    if (all) return true;
    if (fds.empty() || std::chrono::steady_clock::now() > deadline) return false;
    if (::poll(fds.data(), fds.size(), 100) < 0) return false;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      char buf[4096];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        owners[i]->output.append(buf, static_cast<std::size_t>(n));
      } else {
        owners[i]->eof = true;
      }
    }
  }
}

TEST_F(QueueRace, SixteenProcessesRaceForTwoHundredJobs) {
  constexpr int kProcesses = 16;
  std::vector<Claimer> children;
  for (int i = 0; i < kProcesses; ++i) {
    children.push_back(spawn_claimer(path, "proc-" + std::to_string(i)));
  }
  // Every process has its connection open before any of them claims.
  const bool ready = pump(
      children, [](const Claimer& c) { return c.output.find("ready\n") != std::string::npos; },
      std::chrono::seconds(120));
  for (auto& c : children)
    ::close(c.to_child);
  const bool finished =
      ready && pump(
                   children, [](const Claimer& c) { return c.eof; }, std::chrono::seconds(240));
  if (!finished) {
    for (auto& c : children)
      ::kill(c.pid, SIGKILL);
  }
  std::map<std::string, std::vector<std::string>> won;
  for (int i = 0; i < kProcesses; ++i) {
    Claimer& c = children[i];
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    ::close(c.from_child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "claimer " << i << " status " << status << "\n"
        << c.output;
    std::istringstream lines(c.output);
    std::string word;
    std::string id;
    std::vector<std::string>& ids = won["proc-" + std::to_string(i)];
    int reported = -1;
    while (lines >> word) {
      if (word == "claimed" && lines >> id) ids.push_back(id);
      if (word == "done") lines >> reported;
    }
    EXPECT_EQ(reported, static_cast<int>(ids.size())) << c.output;
  }
  ASSERT_TRUE(ready) << "not every claimer opened the queue";
  ASSERT_TRUE(finished) << "claimers did not finish in time";
  expect_each_job_claimed_once(won, q);
}

}  // namespace
}  // namespace tv::fleet
