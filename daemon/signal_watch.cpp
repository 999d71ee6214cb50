#include "signal_watch.hpp"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
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
  return wait_ms(-1);
}

int SignalWatch::wait_for(std::chrono::milliseconds timeout) {
  return wait_ms(static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
}

int SignalWatch::wait_ms(int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  ::pthread_sigmask(SIG_UNBLOCK, &set_, nullptr);
  unsigned char b = 0;
  int got = 0;
  while (true) {
    int left = timeout_ms;
    if (timeout_ms >= 0) {
      const auto ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      left = static_cast<int>(std::max<std::int64_t>(0, ms.count()));
    }
    pollfd readable{g_pipe[0], POLLIN, 0};
    const int n = ::poll(&readable, 1, left);
    if (n < 0 && errno == EINTR) continue;  // the handler ran: its byte is next
    // poll() found a byte (read() does not block), or an error: nothing more will arrive.
    if (n > 0 && ::read(g_pipe[0], &b, 1) == 1) got = b;
    break;  // also the timeout
  }
  ::pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  return got;
}

void SignalWatch::release() {
  const unsigned char b = 0;
  [[maybe_unused]] const ssize_t n = ::write(g_pipe[1], &b, 1);
}

}  // namespace tv::cli
