// Turns process signals (SIGTERM, SIGINT, SIGHUP) into values one thread of ours waits for.
// A handler, not a blocked mask and sigwait: threads that libraries start before main (OpenBLAS's
// pool in libtorch) carry no mask of ours, and the kernel may hand a process-directed signal to
// any of them, whose default action would kill the process without a clean stop.
//
// One SignalWatch per process at a time. wait() belongs to one thread; release() may be called
// from any thread.
#pragma once

#include <initializer_list>
#include <vector>

namespace tv::cli {

class SignalWatch {
 public:
  // Installs the handler for `signals` (with SA_RESTART). Throws std::runtime_error when the
  // pipe cannot be made or another SignalWatch exists.
  explicit SignalWatch(std::initializer_list<int> signals);
  ~SignalWatch();  // restores the default dispositions
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

  // Blocks until one of the signals arrives and returns it, or returns 0 after release().
  int wait();
  // Wakes wait() with 0.
  void release();

 private:
  std::vector<int> signals_;
};

}  // namespace tv::cli
