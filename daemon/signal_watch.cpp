#include "signal_watch.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tv::cli {
namespace {

// The write end is all the handler touches: write(2) is async-signal-safe.
int g_pipe[2] = {-1, -1};

extern "C" void on_signal(int sig) {
  const int saved = errno;
  const unsigned char b = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &b, 1);
  errno = saved;
}

}  // namespace

SignalWatch::SignalWatch(std::initializer_list<int> signals) : signals_(signals) {
  if (g_pipe[0] != -1) throw std::runtime_error("a signal watch is already installed");
  if (::pipe2(g_pipe, O_CLOEXEC) != 0)
    throw std::runtime_error(std::string("cannot make the signal pipe: ") + std::strerror(errno));
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (const int sig : signals_)
    ::sigaction(sig, &sa, nullptr);
}

SignalWatch::~SignalWatch() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (const int sig : signals_)
    ::sigaction(sig, &sa, nullptr);
  ::close(g_pipe[0]);
  ::close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

int SignalWatch::wait() {
  unsigned char b = 0;
  while (true) {
    const ssize_t n = ::read(g_pipe[0], &b, 1);
    if (n == 1) return b;
    if (n < 0 && errno == EINTR) continue;
    return 0;  // the pipe is gone: nothing more will arrive
  }
}

void SignalWatch::release() {
  const unsigned char b = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &b, 1);
}

}  // namespace tv::cli
