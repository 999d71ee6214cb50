// Turns process signals (SIGTERM, SIGINT, SIGHUP) into values the main thread waits for.
//
// - The handler writes the signal to a pipe that wait() reads. A handler, not sigwait alone:
//   threads that libraries start before main (OpenBLAS's pool in libtorch) carry no mask of ours,
//   and a signal the kernel hands to one of them must not take its default action.
// - The constructor blocks the signals in the calling thread, so every thread it creates later
//   inherits the block and never sees them; wait() unblocks them while it waits. The kernel gives
//   a process-directed signal to the main thread first when it does not block it, so wait()
//   belongs on the main thread.
// - No SA_RESTART: the main thread's poll() returns EINTR, which lets ThreadSanitizer, which
//   defers handlers to the next intercepted call, run the handler at once.
//
// One SignalWatch per process at a time. release() may be called from any thread.
#pragma once

#include <signal.h>

#include <chrono>
#include <initializer_list>
#include <vector>

namespace tv::cli {

class SignalWatch {
 public:
  // Installs the handler for `signals` and blocks them in the calling thread. Throws
  // std::runtime_error when the pipe cannot be made or another SignalWatch exists.
  explicit SignalWatch(std::initializer_list<int> signals);
  ~SignalWatch();  // restores the default dispositions and the calling thread's mask
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  // Blocks until one of the signals arrives and returns it, or returns 0 after release().
  // Call it on the thread that constructed the watch.
  int wait();
  // Like wait(), but returns 0 once `timeout` has passed with no signal: for a main thread that
  // has periodic work of its own (`trainvisor local`'s supervision loop).
  int wait_for(std::chrono::milliseconds timeout);
  // Wakes wait() with 0.
  void release();

 private:
  // wait() and wait_for(): `timeout_ms` < 0 waits without end.
  int wait_ms(int timeout_ms);

  std::vector<int> signals_;
  sigset_t set_;
  sigset_t previous_;
};

}  // namespace tv::cli
