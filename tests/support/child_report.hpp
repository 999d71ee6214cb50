// Runs a piece of a test in a forked child and brings back what it reports: for what a test must
// not do in its own process (give up root, enter a mount namespace, fill a file system).
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <optional>
#include <string>

namespace tv::fleet::test {

// Runs `body` in a forked child and returns its report; nullopt when the child could not set
// up what the test needs (`body` returns nullopt there, before doing anything).
inline std::optional<std::string> in_child(
    const std::function<std::optional<std::string>()>& body) {
  int pipe_fds[2];
  if (::pipe(pipe_fds) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid < 0) return "fork failed";
  if (pid == 0) {
    ::close(pipe_fds[0]);
    const std::optional<std::string> msg = body();
    if (!msg) ::_exit(3);
    const bool sent =
        ::write(pipe_fds[1], msg->data(), msg->size()) == static_cast<ssize_t>(msg->size());
    ::_exit(sent ? 0 : 4);
  }
  ::close(pipe_fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;)
    msg.append(buf, n);
  ::close(pipe_fds[0]);
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
    return "the child died: status " + std::to_string(status);
  if (WEXITSTATUS(status) == 3) return std::nullopt;
  if (WEXITSTATUS(status) != 0) return "the child exited " + std::to_string(WEXITSTATUS(status));
  return msg;
}

}  // namespace tv::fleet::test
