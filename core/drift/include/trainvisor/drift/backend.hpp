// Where tv_drift computes: CPU threads (Thrust's OpenMP backend and OpenBLAS), or a GPU when
// the library was built with CUDA (TV_DRIFT_CUDA) and the process finds a device. The choice is
// made once, at the first test, and logged once to stderr when a CUDA build falls back to the
// CPU (no driver, no device: a normal case on CPU-only hosts).
#pragma once

#include <string>

namespace tv::drift {

enum class Device { kCpu, kCuda };

struct Backend {
  Device device = Device::kCpu;
  std::string description;  // e.g. "CPU: 2 OpenMP threads, OpenBLAS" or "CUDA: NVIDIA H100"
};

// The backend every test of this process uses. Thread-safe.
const Backend& backend();

// Threads of the CPU path (OpenMP and OpenBLAS) for the calling process; 0 leaves the libraries'
// defaults (every core). Benchmarks pin it to 1 to compare one thread with one thread.
void set_cpu_threads(int threads);

}  // namespace tv::drift
