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

// Runs f(i) for i in [0, n) on the OpenMP backend's threads.
template <class F>
void for_each_index(std::size_t n, F f) {
  thrust::for_each(thrust::omp::par, Index(0), Index(n), f);
}

// One row of the kernel matrix; cloned for AVX2 + FMA so that a baseline x86-64 build still
// runs the row at full vector width where the CPU has it.
[[gnu::target_clones("arch=haswell", "default")]] void rbf_row(float* g, float norm_a,
                                                               const float* norms_b,
                                                               std::size_t cols, float scale) {
  for (std::size_t j = 0; j < cols; ++j)
    g[j] = rbf::rbf_from_gram(norm_a, norms_b[j], g[j], scale);
}

[[gnu::target_clones("arch=haswell", "default")]] double dot_sum(const float* row, std::size_t n) {
  double s = 0;
  for (std::size_t j = 0; j < n; ++j)
    s += row[j];
  return s;
}

// Copies the upper triangle of a square matrix into its lower one, in tiles so that the
// strided side stays in cache.
void mirror_upper(float* m, std::size_t n) {
  constexpr std::size_t kTile = 64;
  const std::size_t tiles = (n + kTile - 1) / kTile;
  for_each_index(tiles, [=](std::size_t ti) {
    for (std::size_t tj = ti; tj < tiles; ++tj) {
      for (std::size_t i = ti * kTile; i < std::min(n, (ti + 1) * kTile); ++i) {
        for (std::size_t j = std::max(i + 1, tj * kTile); j < std::min(n, (tj + 1) * kTile); ++j)
          m[j * n + i] = m[i * n + j];
      }
    }
  });
}

}  // namespace

void gram_self(const float* a, std::size_t rows, std::size_t dims, float* out) {
  // SYRK computes one triangle: half the multiply-adds of A A^T as a GEMM.
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<int>(rows),
              static_cast<int>(dims), 1.0f, a, static_cast<int>(dims), 0.0f, out,
              static_cast<int>(rows));
  mirror_upper(out, rows);
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
  for_each_index(rows, [=](std::size_t i) { out[i] = rbf::squared_norm(z + i * dims, dims); });
}

void rbf_in_place(float* g, const float* norms_a, std::size_t rows, const float* norms_b,
                  std::size_t cols, float inv_2sigma2, bool zero_diagonal) {
  for_each_index(rows, [=](std::size_t i) {
    rbf_row(g + i * cols, norms_a[i], norms_b, cols, inv_2sigma2);
    if (zero_diagonal && i < cols) g[i * cols + i] = 0.0f;
  });
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
