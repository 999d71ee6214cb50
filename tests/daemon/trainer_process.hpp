// `trainvisor train` as a child process for tests: its own process group, killed and reaped on
// any exit (and by the kernel if the test process dies), stdout and stderr in files, every wait
// on a deadline; and a temporary directory per test. Shared by the trainer tests.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace tv {
namespace test_process {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Long enough for a loaded two-core machine, short enough to fail inside ctest's timeout.
constexpr auto kDeadline = 45s;

inline std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

struct TempDir {
  TempDir() {
    static int n = 0;
    path = fs::temp_directory_path() /
           ("tv-trainer-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  operator const fs::path&() const { return path; }
  fs::path operator/(const std::string& name) const { return path / name; }
  fs::path path;
};

// A child process leading its own process group. stdout and stderr go to files; stdin is
// /dev/null. The kernel sends it SIGKILL if the test process dies; the destructor kills the
// group and reaps the child, whatever the test's outcome.
class ProcessGroup {
 public:
  ProcessGroup(const std::vector<std::string>& args, const fs::path& log_dir) {
    static int serial = 0;
    const std::string n = std::to_string(serial++);
    out_path_ = log_dir / ("stdout." + n);
    err_path_ = log_dir / ("stderr." + n);
    std::vector<char*> argv;
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed: " + std::string(std::strerror(errno)));
    if (pid_ == 0) {
      // Only async-signal-safe calls between fork and exec.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (in < 0 || out < 0 || err < 0) ::_exit(127);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also here, so that the group exists before fork returns to us
  }
  ~ProcessGroup() {
    ::kill(-pid_, SIGKILL);
    if (!code_) {
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
  }
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int sig) const { ::kill(-pid_, sig); }

  // The exit code (128 + signal when killed) once the child has exited; never blocks.
  std::optional<int> exit_code() {
    if (code_) return code_;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return code_;
  }

  // Waits for the exit; nothing when the deadline passes first.
  std::optional<int> wait_exit(Clock::duration timeout = kDeadline) {
    const auto deadline = Clock::now() + timeout;
    while (!exit_code() && Clock::now() < deadline)
      std::this_thread::sleep_for(1ms);
    return exit_code();
  }

  // SIGSTOP to the group, and waits until the child is stopped: from then on everything it
  // wrote (files, block) stays as it is until cont().
  ::testing::AssertionResult stop() {
    signal(SIGSTOP);
    const auto deadline = Clock::now() + kDeadline;
    while (Clock::now() < deadline) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG | WUNTRACED);
      if (r == pid_ && WIFSTOPPED(status)) return ::testing::AssertionSuccess();
      if (r == pid_) {
        code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return ::testing::AssertionFailure()
               << "the trainer exited (" << *code_ << ") instead of stopping; stderr:\n"
               << err();
      }
      std::this_thread::sleep_for(1ms);
    }
    return ::testing::AssertionFailure() << "the trainer did not stop within the deadline";
  }
  void cont() const { signal(SIGCONT); }

  std::string out() const { return read_text(out_path_); }
  std::string err() const { return read_text(err_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> code_;
  fs::path out_path_;
  fs::path err_path_;
};

inline std::vector<std::string> operator+(std::vector<std::string> a,
                                          const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

struct Finished {
  int code = -1;
  std::string out;  // stdout: the summary line on success
  std::string err;
};

// Runs a command to its exit (logs in `log_dir`); code -1 when it overran the deadline.
inline Finished run(const std::vector<std::string>& args, const fs::path& log_dir) {
  ProcessGroup p(args, log_dir);
  const auto code = p.wait_exit();
  return {code.value_or(-1), p.out(), p.err()};
}

}  // namespace test_process
}  // namespace tv
