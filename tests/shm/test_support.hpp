// Helpers for shm tests: unique block names that clean up after themselves, and child
// processes whose stdout the test reads.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "trainvisor/shm/config_block.hpp"

extern char** environ;

// Expects `haystack` (a message) to contain `needle`, printing the message when it does not.
#define EXPECT_CONTAINS(haystack, needle)                               \
  do {                                                                  \
    const std::string h_ = (haystack);                                  \
    EXPECT_NE(h_.find(needle), std::string::npos) << "message: " << h_; \
  } while (0)

namespace tv::shm::test {

// A block name unique to this process and call; the block is removed when this goes away.
class ScopedBlockName {
 public:
  explicit ScopedBlockName(const std::string& tag) {
    static std::atomic<int> counter{0};
    name_ = "trainvisor.test-" + tag + "-" + std::to_string(::getpid()) + "-" +
            std::to_string(counter++);
    try {
      ConfigBlockWriter::remove(name_);
    } catch (...) {
    }
  }
  ~ScopedBlockName() {
    try {
      ConfigBlockWriter::remove(name_);
    } catch (...) {
    }
  }
  const std::string& str() const { return name_; }
  operator const std::string&() const { return name_; }
  operator std::string_view() const { return name_; }

 private:
  std::string name_;
};

// A child process started with posix_spawn; its stdout comes back through a pipe and its stdin
// is a pipe the test may close.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args) {
    int out[2], in[2];
    if (::pipe(out) != 0 || ::pipe(in) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    std::vector<char*> argv;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    ::close(in[0]);
    if (rc != 0) throw std::runtime_error("cannot spawn " + args[0]);
    out_ = ::fdopen(out[0], "r");
    stdin_fd_ = in[1];
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      wait();
    }
    if (out_) std::fclose(out_);
    close_stdin();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }

  // Next line of stdout without its newline; empty at EOF.
  std::string read_line() {
    char buf[512];
    if (std::fgets(buf, sizeof buf, out_) == nullptr) return {};
    std::string s(buf);
    if (!s.empty() && s.back() == '\n') s.pop_back();
    return s;
  }

  // Reads stdout to EOF and collects "key=value" lines.
  std::map<std::string, std::string> read_facts() {
    std::map<std::string, std::string> facts;
    for (std::string line = read_line(); !line.empty() || !std::feof(out_); line = read_line()) {
      const auto eq = line.find('=');
      if (eq != std::string::npos) facts[line.substr(0, eq)] = line.substr(eq + 1);
      all_ += line + "\n";
    }
    return facts;
  }
  const std::string& transcript() const { return all_; }

  void close_stdin() {
    if (stdin_fd_ >= 0) ::close(stdin_fd_);
    stdin_fd_ = -1;
  }

  // The exit status, or 128+signal.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Waits until the child is stopped (SIGSTOP); false if it exited instead.
  bool wait_stopped() {
    int status = 0;
    ::waitpid(pid_, &status, WUNTRACED);
    if (WIFSTOPPED(status)) return true;
    reaped_ = true;
    return false;
  }

 private:
  pid_t pid_ = -1;
  FILE* out_ = nullptr;
  int stdin_fd_ = -1;
  bool reaped_ = false;
  std::string all_;
};

inline std::string helper() {
  return TV_SHM_TEST_PROCESS;
}

// The message of the ShmError `f` throws, or "no error".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const ShmError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace tv::shm::test
