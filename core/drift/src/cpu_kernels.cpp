#include "cpu_kernels.hpp"

#include <cblas.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/system/omp/execution_policy.h>

#include <algorithm>

#include "rbf_math.hpp"

namespace tv::drift::cpu {
namespace {

using Index = thrust::counting_iterator<std::size_t>;

// The vector-width clones of the per-row loops below. Under ThreadSanitizer there are none: the
// ifunc resolver that picks a clone runs while the dynamic loader relocates the program, before
// the sanitizer's runtime exists, and the sanitizer instruments it all the same (a crash at
// start, in every program that links tv_drift).
#if defined(__SANITIZE_THREAD__)
#define TV_VECTOR_CLONES
#else
#define TV_VECTOR_CLONES gnu::target_clones("arch=x86-64-v3", "default"),
#endif

// Runs f(i) for i in [0, n) on the OpenMP backend's threads.
template <class F>
void for_each_index(std::size_t n, F f) {
  thrust::for_each(thrust::omp::par, Index(0), Index(n), f);
}

// One row of the kernel matrix; cloned for x86-64-v3 (AVX2 + FMA) so that a baseline x86-64
// build still runs the row at full vector width where the CPU has it. The clone is named by the
// ISA level, not by a CPU: "arch=haswell" dispatches on the CPU model, so it is never taken on
// AMD or on later Intel models. `flatten`: GCC does not inline a default-target function into
// a clone of another target on its own, and a call per element keeps the loop scalar. The loop
// vectorizes only with this file's -fno-trapping-math (floorf) and dynamic vector cost model (a
// loop of unknown length needs an epilogue), set in CMakeLists.txt.
[[TV_VECTOR_CLONES gnu::flatten]] void rbf_row(float* __restrict g, float norm_a,
                                               const float* __restrict norms_b, std::size_t cols,
                                               float scale) {
  for (std::size_t j = 0; j < cols; ++j)
    g[j] = rbf::rbf_from_gram(norm_a, norms_b[j], g[j], scale);
}

// The sum in double, in vector-wide partial sums (`omp simd` allows the reordering).
[[TV_VECTOR_CLONES]] double dot_sum(const float* row, std::size_t n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (std::size_t j = 0; j < n; ++j)
    s += row[j];
  return s;
}

// |row|^2 in float, in vector-wide partial sums like dot_sum.
[[TV_VECTOR_CLONES]] float sum_of_squares(const float* row, std::size_t n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (std::size_t j = 0; j < n; ++j)
    s += row[j] * row[j];
  return s;
}

// Runs row(i) for every row of an n x n triangle, pairing row p with row n-1-p so that each
// task does about the same work whatever the threads' share of the rows.
template <class F>
void for_each_triangle_row(std::size_t n, F row) {
  for_each_index((n + 1) / 2, [=](std::size_t p) {
    row(p);
    if (n - 1 - p != p) row(n - 1 - p);
  });
}

}  // namespace

void gram_upper(const float* a, std::size_t rows, std::size_t dims, float* out) {
  // SYRK computes one triangle: half the multiply-adds of A A^T as a GEMM.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(dims), 1.0f, a, static_cast<int>(dims), 0.0f, out,
              static_cast<int>(rows));
}

void gram_cross(const float* a, std::size_t rows_a, const float* b, std::size_t rows_b,
                std::size_t dims, float* out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows_a),
              static_cast<int>(rows_b), static_cast<int>(dims), 1.0f, a, static_cast<int>(dims), b,
              static_cast<int>(dims), 0.0f, out, static_cast<int>(rows_b));
}

void multiply(const float* k, std::size_t rows, std::size_t inner, const float* u, std::size_t cols,
              float* out) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(cols), static_cast<int>(inner), 1.0f, k, static_cast<int>(inner), u,
              static_cast<int>(cols), 0.0f, out, static_cast<int>(cols));
}

void row_norms(const float* z, std::size_t rows, std::size_t dims, float* out) {
  for_each_index(rows, [=](std::size_t i) { out[i] = sum_of_squares(z + i * dims, dims); });
}

void rbf_in_place(float* g, const float* norms_a, std::size_t rows, const float* norms_b,
                  std::size_t cols, float inv_2sigma2) {
  for_each_index(
      rows, [=](std::size_t i) { rbf_row(g + i * cols, norms_a[i], norms_b, cols, inv_2sigma2); });
}

void rbf_upper_in_place(float* g, const float* norms, std::size_t n, float inv_2sigma2) {
  for_each_triangle_row(n, [=](std::size_t i) {
    rbf_row(g + i * n + i + 1, norms[i], norms + i + 1, n - i - 1, inv_2sigma2);
    g[i * n + i] = 0.0f;
  });
}

std::vector<double> symmetric_row_sums(const float* k, std::size_t n) {
  // Row i of the whole matrix: its part right of the diagonal (row i of the triangle) plus its
  // part left of it (column i of the triangle, summed in blocks of columns as in column_sums).
  constexpr std::size_t kBlock = 256;
  std::vector<double> out(n, 0.0);
  double* o = out.data();
  for_each_index((n + kBlock - 1) / kBlock, [=](std::size_t b) {
    const std::size_t begin = b * kBlock, end = std::min(n, begin + kBlock);
    for (std::size_t i = 0; i + 1 < end; ++i) {
      const float* row = k + i * n;
      for (std::size_t j = std::max(begin, i + 1); j < end; ++j)
        o[j] += row[j];
    }
  });
  for_each_triangle_row(n, [=](std::size_t i) { o[i] += dot_sum(k + i * n + i + 1, n - i - 1); });
  return out;
}

void upper_times(const float* k, std::size_t n, const float* u, std::size_t cols, float* out) {
  // TRMM reads one triangle: half the multiply-adds of the GEMM with the whole matrix.
  std::copy(u, u + n * cols, out);
  cblas_strmm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, static_cast<int>(n),
              static_cast<int>(cols), 1.0f, k, static_cast<int>(n), out, static_cast<int>(cols));
}

std::vector<double> row_sums(const float* k, std::size_t rows, std::size_t cols) {
  std::vector<double> out(rows);
  double* o = out.data();
  for_each_index(rows, [=](std::size_t i) { o[i] = dot_sum(k + i * cols, cols); });
  return out;
}

std::vector<double> column_sums(const float* k, std::size_t rows, std::size_t cols) {
  // Blocks of columns, each summed down the rows: every thread reads whole cache lines.
  constexpr std::size_t kBlock = 256;
  std::vector<double> out(cols, 0.0);
  double* o = out.data();
  for_each_index((cols + kBlock - 1) / kBlock, [=](std::size_t b) {
    const std::size_t begin = b * kBlock, end = std::min(cols, begin + kBlock);
    for (std::size_t i = 0; i < rows; ++i) {
      const float* row = k + i * cols;
      for (std::size_t j = begin; j < end; ++j)
        o[j] += row[j];
    }
  });
  return out;
}

double total(const std::vector<double>& v) {
  return thrust::reduce(thrust::omp::par, v.begin(), v.end(), 0.0);
}

std::vector<double> column_dots(const float* a, const float* b, std::size_t rows,
                                std::size_t cols) {
  std::vector<double> out(cols);
  double* o = out.data();
  for_each_index(cols, [=](std::size_t c) {
    double s = 0;
    for (std::size_t i = 0; i < rows; ++i)
      s += static_cast<double>(a[i * cols + c]) * b[i * cols + c];
    o[c] = s;
  });
  return out;
}

std::vector<double> weighted_column_sums(const float* a, const std::vector<double>& v,
                                         std::size_t rows, std::size_t cols) {
  std::vector<double> out(cols);
  double* o = out.data();
  const double* w = v.data();
  for_each_index(cols, [=](std::size_t c) {
    double s = 0;
    for (std::size_t i = 0; i < rows; ++i)
      s += a[i * cols + c] * w[i];
    o[c] = s;
  });
  return out;
}

}  // namespace tv::drift::cpu
