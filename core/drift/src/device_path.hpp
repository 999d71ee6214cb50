// The GPU path's entry points, implemented by device_cuda.cu in a CUDA build and by
// device_none.cpp otherwise. Private to tv_drift.
//
// The MMD's device path mirrors the CPU path of mmd.cpp step by step: the reference side (rows,
// norms, kernel block Kxx with a zero diagonal, its row sums, the membership matrices of the last
// permutation set) stays on the device, and a test reduces the current side to the sums of
// PooledSums, from which mmd.cpp computes every statistic on the host as it does for the CPU.
// Only mmd.cpp calls these, and only after backend() chose Device::kCuda; device_none.cpp's
// MMD functions throw std::logic_error (a broken invariant, never a user's error). Errors of the
// CUDA runtime or cuBLAS throw std::runtime_error naming the call.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

namespace tv::drift {

// What a test's current side reduces to, on either path. With Kxy (n x m) and Kyy (m x m) the
// current side of the pooled kernel matrix, r the pooled row sums, and a_b, c_b the 0/1
// membership of permutation b's reference-sized side over reference and current rows:
struct PooledSums {
  double t_xy = 0, t_yy = 0;       // 1' Kxy 1, 1' Kyy 1
  std::vector<double> q_xy, q_yy;  // per permutation: a_b' Kxy c_b, c_b' Kyy c_b
  std::vector<double> p_x, p_y;    // per permutation: a_b' r_x, c_b' r_y
};

namespace device {

// True when this build has the CUDA path.
bool built();
// True when a CUDA device answers and runs this build's kernels; `about` is then its name, else
// why there is none (in words). Never throws or aborts.
bool available(std::string& about);

// The reference side of an MMD test, resident on the device.
struct Reference;
struct ReferenceDeleter {
  void operator()(Reference* reference) const;
};
using ReferenceHandle = std::unique_ptr<Reference, ReferenceDeleter>;

// Uploads `n` rows of `dims` floats (row-major) and computes their squared norms and Gram
// matrix X X^T.
ReferenceHandle upload_reference(const float* x, std::size_t n, std::size_t dims);

// The Gram matrix and the norms at the `s` evenly spaced rows k n / s, k < s (row-major s x s,
// and s norms): the sample the median heuristic reads, copied to the host.
void sampled_gram(const Reference& reference, std::size_t s, std::vector<float>& gram,
                  std::vector<float>& norms);

// Turns the Gram matrix into the kernel block Kxx for this bandwidth (zero diagonal) and keeps
// its row sums. Returns 1' Kxx 1.
double finish_reference(Reference& reference, float inv_2sigma2);

// Makes `a` (n x count) and `c` (m x count), row-major 0/1, the permutation set of the tests
// that follow, and returns q_xx[b] = a_b' Kxx a_b.
std::vector<double> set_permutations(Reference& reference, const std::vector<float>& a,
                                     const std::vector<float>& c, std::size_t m, std::size_t count);

// The sums of a test of `m` rows `y` (row-major, the reference's dims) against the permutation
// set last given to set_permutations, which must have been for `m` current rows.
PooledSums pooled_sums(const Reference& reference, const float* y, std::size_t m);

}  // namespace device
}  // namespace tv::drift
