#include "trainvisor/drift/backend.hpp"

#include <dlfcn.h>
#include <omp.h>

#include <cstdio>
#include <mutex>

#include "device_path.hpp"

namespace tv::drift {
namespace {

// OpenBLAS's own setter, looked up at run time: libblas.so.3 may be another BLAS (the reference
// one has no threads to set).
void set_blas_threads(int threads) {
  using Setter = void (*)(int);
  if (auto* set = reinterpret_cast<Setter>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set(threads);
}

std::string cpu_description() {
  const bool openblas = dlsym(RTLD_DEFAULT, "openblas_set_num_threads") != nullptr;
  return "CPU: " + std::to_string(omp_get_max_threads()) + " OpenMP threads, " +
         (openblas ? "OpenBLAS" : "the system BLAS");
}

}  // namespace

const Backend& backend() {
  static const Backend chosen = [] {
    Backend b;
    std::string why;
    if (device::available(why)) {
      b.device = Device::kCuda;
      b.description = "CUDA: " + why;
      return b;
    }
    b.description = cpu_description();
    if (device::built()) {
      std::fprintf(stderr, "tv_drift: no usable CUDA device (%s); drift statistics run on the %s\n",
                   why.c_str(), b.description.c_str());
    }
    return b;
  }();
  return chosen;
}

void set_cpu_threads(int threads) {
  const int n = threads > 0 ? threads : omp_get_num_procs();
  omp_set_num_threads(n);
  set_blas_threads(n);
}

}  // namespace tv::drift
