#include "signal_watch.hpp"

#include <fcntl.h>
#include <pthread.h>
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
  sigemptyset(&set_);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (const int sig : signals_) {
    sigaddset(&set_, sig);
    ::sigaction(sig, &sa, nullptr);
  }
  ::pthread_sigmask(SIG_BLOCK, &set_, &previous_);
}

SignalWatch::~SignalWatch() {
  struct sigaction sa {};
  sa.sa_handler = SIG_DFL;
  for (const int sig : signals_)
    ::sigaction(sig, &sa, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
  ::close(g_pipe[0]);
  ::close(g_pipe[1]);
  g_pipe[0] = g_pipe[1] = -1;
}

int SignalWatch::wait() {
  ::pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  unsigned char b = 0;
  int got = 0;
  while (true) {
    const ssize_t n = ::read(g_pipe[0], &b, 1);
    if (n == 1) {
      got = b;
      break;
    }
    if (n < 0 && errno == EINTR) continue;  // the handler ran: its byte is next
    break;                                  // the pipe is gone: nothing more will arrive
  }
  ::pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  return got;
}

void SignalWatch::release() {
  const unsigned char b = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &b, 1);
}

}  // namespace tv::cli
