// The CPU path's building blocks of the kernel two-sample tests: GEMM-shaped products through
// CBLAS (OpenBLAS at run time: a blocked, vectorized GEMM is several times faster than anything
// written as a Thrust transform on the CPU), and the elementwise kernel, row sums and
// per-permutation reductions as Thrust algorithms over the OpenMP backend (one loop per row or
// column, so that each inner loop vectorizes). Matrices are row-major float. Private to tv_drift.
#pragma once

#include <cstddef>
#include <vector>

namespace tv::drift::cpu {

// The upper triangle (diagonal included) of out (rows x rows) = A A^T; the strict lower triangle
// is not written. The kernel block of a window with itself is kept as this triangle only.
void gram_upper(const float* a, std::size_t rows, std::size_t dims, float* out);
// out (rows_a x rows_b) = A B^T.
void gram_cross(const float* a, std::size_t rows_a, const float* b, std::size_t rows_b,
                std::size_t dims, float* out);
// out (rows x cols) = K (rows x inner) * U (inner x cols).
void multiply(const float* k, std::size_t rows, std::size_t inner, const float* u, std::size_t cols,
              float* out);

// out[i] = |row i|^2.
void row_norms(const float* z, std::size_t rows, std::size_t dims, float* out);
// In place: g[i][j] (a dot product) becomes exp(-|a_i - b_j|^2 * inv_2sigma2).
void rbf_in_place(float* g, const float* norms_a, std::size_t rows, const float* norms_b,
                  std::size_t cols, float inv_2sigma2);
// The same on the strict upper triangle of a gram_upper result (n x n); the diagonal becomes 0
// (the unbiased statistic leaves out pairs of a row with itself).
void rbf_upper_in_place(float* g, const float* norms, std::size_t n, float inv_2sigma2);
// Row sums, in double, of the symmetric matrix whose strict upper triangle `k` (n x n) holds,
// its diagonal 0.
std::vector<double> symmetric_row_sums(const float* k, std::size_t n);
// out (n x cols) = T U, T the upper triangle of `k` (n x n, diagonal included). For a symmetric
// K with a zero diagonal held as its upper triangle, u' K u = 2 u' T u: half the multiply-adds.
void upper_times(const float* k, std::size_t n, const float* u, std::size_t cols, float* out);
// Row sums and column sums in double.
std::vector<double> row_sums(const float* k, std::size_t rows, std::size_t cols);
std::vector<double> column_sums(const float* k, std::size_t rows, std::size_t cols);
double total(const std::vector<double>& v);
// out[c] = sum_i a[i][c] * b[i][c] in double, for rows x cols matrices.
std::vector<double> column_dots(const float* a, const float* b, std::size_t rows, std::size_t cols);
// out[c] = sum_i a[i][c] * v[i].
std::vector<double> weighted_column_sums(const float* a, const std::vector<double>& v,
                                         std::size_t rows, std::size_t cols);

}  // namespace tv::drift::cpu
