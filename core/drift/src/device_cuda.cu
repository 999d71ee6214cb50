// The CUDA build's device path (see device_path.hpp). It mirrors the CPU path step by step:
// device_kernels below are cpu_kernels.cpp's functions on device memory, and upload_reference,
// finish_reference, set_permutations and pooled_sums are mmd.cpp's prepare_on_cpu,
// permutations_for and current_sums_on_cpu with the same calls in the same order.
// GEMM-shaped products (the Gram matrices and the products with the membership matrices) go
// through cuBLAS's SGEMM: on a GPU it is what a GEMM should be written with, and one call form
// for all of them keeps the row-major bookkeeping in one place (the Gram matrices use the full
// SGEMM rather than SSYRK plus a mirror step: simpler, and the GEMM is not where a test's time
// goes on a GPU). Elementwise work and reductions are Thrust algorithms on the CUDA backend
// (thrust::cuda::par, synchronous), one thread per row or column, accumulating in double like
// the CPU path.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/reduce.h>
#include <thrust/system/cuda/execution_policy.h>

#include <stdexcept>
#include <string>

#include "device_path.hpp"
#include "rbf_math.hpp"

namespace tv::drift::device {
namespace {

using Index = thrust::counting_iterator<std::size_t>;

template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}
template <class T>
const T* raw(const thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

template <class T>
std::vector<T> to_host(const thrust::device_vector<T>& v) {
  std::vector<T> out(v.size());
  thrust::copy(v.begin(), v.end(), out.begin());
  return out;
}

// The runtime's name for the error, then in words: ours for the common reasons, its own else.
std::string words(cudaError_t e) {
  const std::string name = cudaGetErrorName(e);
  switch (e) {
    case cudaErrorInsufficientDriver:
      return name + ": no CUDA driver, or one older than this build's CUDA runtime";
    case cudaErrorNoDevice:
      return name + ": the CUDA driver sees no device (see CUDA_VISIBLE_DEVICES)";
    case cudaErrorNoKernelImageForDevice:
      return name +
             ": the device's architecture is not among this build's "
             "CMAKE_CUDA_ARCHITECTURES";
    default:
      return name + ": " + cudaGetErrorString(e);
  }
}

void check(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("tv_drift: ") + call + ": " + cublasGetStatusName(s) +
                             " (" + cublasGetStatusString(s) + ")");
  }
}

// One cuBLAS handle per reference: a handle is not to be shared by threads, and distinct
// references may be tested in parallel. It runs on the default stream, as Thrust does, so the
// two stay ordered.
class Blas {
 public:
  Blas() { check(cublasCreate(&handle_), "cublasCreate"); }
  ~Blas() { cublasDestroy(handle_); }
  Blas(const Blas&) = delete;
  Blas& operator=(const Blas&) = delete;
  cublasHandle_t get() const { return handle_; }

 private:
  cublasHandle_t handle_ = nullptr;
};

// CBLAS's row-major C (rows x cols) = A (rows x inner) * op(B) in cuBLAS, which is column-major:
// a row-major matrix is its transpose in column-major, so C^T = op(B)^T A^T is the same call
// with the operands swapped and the dimensions read the other way.
void gemm_row_major(const Blas& blas, bool trans_b, std::size_t rows, std::size_t cols,
                    std::size_t inner, const float* a, std::size_t lda, const float* b,
                    std::size_t ldb, float* c, std::size_t ldc) {
  const float one = 1.0f, zero = 0.0f;
  check(
      cublasSgemm(blas.get(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, CUBLAS_OP_N,
                  static_cast<int>(cols), static_cast<int>(rows), static_cast<int>(inner), &one, b,
                  static_cast<int>(ldb), a, static_cast<int>(lda), &zero, c, static_cast<int>(ldc)),
      "cublasSgemm");
}

// cpu_kernels.cpp's functions on device memory, same names, same contracts.
namespace device_kernels {

template <class F>
void for_each_index(std::size_t n, F f) {
  thrust::for_each(thrust::cuda::par, Index(0), Index(n), f);
}

// out (rows x rows) = A A^T.
void gram_self(const Blas& blas, const float* a, std::size_t rows, std::size_t dims, float* out) {
  gemm_row_major(blas, true, rows, rows, dims, a, dims, a, dims, out, rows);
}

// out (rows_a x rows_b) = A B^T.
void gram_cross(const Blas& blas, const float* a, std::size_t rows_a, const float* b,
                std::size_t rows_b, std::size_t dims, float* out) {
  gemm_row_major(blas, true, rows_a, rows_b, dims, a, dims, b, dims, out, rows_b);
}

// out (rows x cols) = K (rows x inner) * U (inner x cols).
void multiply(const Blas& blas, const float* k, std::size_t rows, std::size_t inner, const float* u,
              std::size_t cols, float* out) {
  gemm_row_major(blas, false, rows, cols, inner, k, inner, u, cols, out, cols);
}

void row_norms(const float* z, std::size_t rows, std::size_t dims, float* out) {
  for_each_index(rows,
                 [=] __device__(std::size_t i) { out[i] = rbf::squared_norm(z + i * dims, dims); });
}

void rbf_in_place(float* g, const float* norms_a, std::size_t rows, const float* norms_b,
                  std::size_t cols, float inv_2sigma2, bool zero_diagonal) {
  for_each_index(rows * cols, [=] __device__(std::size_t k) {
    const std::size_t i = k / cols, j = k % cols;
    g[k] = zero_diagonal && i == j ? 0.0f
                                   : rbf::rbf_from_gram(norms_a[i], norms_b[j], g[k], inv_2sigma2);
  });
}

// The sum in double of `count` floats `stride` apart: a row (stride 1) or a column.
__device__ double strided_sum(const float* k, std::size_t count, std::size_t stride) {
  double s = 0;
  for (std::size_t i = 0; i < count; ++i)
    s += k[i * stride];
  return s;
}

void row_sums(const float* k, std::size_t rows, std::size_t cols, double* out) {
  for_each_index(rows,
                 [=] __device__(std::size_t i) { out[i] = strided_sum(k + i * cols, cols, 1); });
}

void column_sums(const float* k, std::size_t rows, std::size_t cols, double* out) {
  for_each_index(cols, [=] __device__(std::size_t j) { out[j] = strided_sum(k + j, rows, cols); });
}

double total(const thrust::device_vector<double>& v) {
  return thrust::reduce(thrust::cuda::par, v.begin(), v.end(), 0.0);
}

// out[c] = sum_i a[i][c] * b[i][c] in double.
void column_dots(const float* a, const float* b, std::size_t rows, std::size_t cols, double* out) {
  for_each_index(cols, [=] __device__(std::size_t c) {
    double s = 0;
    for (std::size_t i = 0; i < rows; ++i)
      s += static_cast<double>(a[i * cols + c]) * b[i * cols + c];
    out[c] = s;
  });
}

// out[c] = sum_i a[i][c] * v[i].
void weighted_column_sums(const float* a, const double* v, std::size_t rows, std::size_t cols,
                          double* out) {
  for_each_index(cols, [=] __device__(std::size_t c) {
    double s = 0;
    for (std::size_t i = 0; i < rows; ++i)
      s += a[i * cols + c] * v[i];
    out[c] = s;
  });
}

// v += w, elementwise.
void add_to(thrust::device_vector<double>& v, const thrust::device_vector<double>& w) {
  double* out = raw(v);
  const double* in = raw(w);
  for_each_index(v.size(), [=] __device__(std::size_t i) { out[i] += in[i]; });
}

}  // namespace device_kernels

// Runs one Thrust algorithm on the device: the first kernel launch of the process, which fails
// when no kernel image of this build fits the device.
void probe_kernels() {
  thrust::device_vector<float> one(1, 1.0f);
  if (thrust::reduce(thrust::cuda::par, one.begin(), one.end(), 0.0f) != 1.0f)
    throw std::runtime_error("a one-element reduction on the device gave a wrong sum");
}

}  // namespace

namespace k = device_kernels;

struct Reference {
  std::size_t n = 0, dims = 0;
  Blas blas;
  thrust::device_vector<float> x, norms, kxx;  // the rows, |x|^2, the Gram matrix then Kxx
  thrust::device_vector<double> kxx_rows;
  float inv_2sigma2 = 0;
  // The last permutation set: membership of reference rows (n x B) and current rows (m x B).
  std::size_t m = 0, permutations = 0;
  thrust::device_vector<float> a, c;
};

bool built() {
  return true;
}

bool available(std::string& about) {
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    about = words(e);
    return false;
  }
  if (count == 0) {
    about = "the CUDA driver sees no device";
    return false;
  }
  // The runtime creates its context lazily: make it now, so that a broken driver shows here
  // and not in the middle of a test.
  if (const cudaError_t e = cudaFree(nullptr); e != cudaSuccess) {
    about = words(e);
    return false;
  }
  cudaDeviceProp properties{};
  if (const cudaError_t e = cudaGetDeviceProperties(&properties, 0); e != cudaSuccess) {
    about = words(e);
    return false;
  }
  try {
    probe_kernels();
  } catch (const std::exception& e) {
    about = std::string(properties.name) + " does not run this build's kernels: " + e.what();
    return false;
  }
  about = std::string(properties.name) + " (compute capability " +
          std::to_string(properties.major) + "." + std::to_string(properties.minor) + ")";
  return true;
}

void ReferenceDeleter::operator()(Reference* reference) const {
  delete reference;
}

ReferenceHandle upload_reference(const float* x, std::size_t n, std::size_t dims) {
  ReferenceHandle r(new Reference);
  r->n = n;
  r->dims = dims;
  r->x.assign(x, x + n * dims);
  r->norms.resize(n);
  k::row_norms(raw(r->x), n, dims, raw(r->norms));
  r->kxx.resize(n * n);
  k::gram_self(r->blas, raw(r->x), n, dims, raw(r->kxx));
  return r;
}

void sampled_gram(const Reference& r, std::size_t s, std::vector<float>& gram,
                  std::vector<float>& norms) {
  thrust::device_vector<float> sample(s * s), sample_norms(s);
  const float* g = raw(r.kxx);
  const float* nn = raw(r.norms);
  float* out = raw(sample);
  float* out_norms = raw(sample_norms);
  const std::size_t n = r.n;
  k::for_each_index(s * s, [=] __device__(std::size_t e) {
    const std::size_t i = (e / s) * n / s, j = (e % s) * n / s;
    out[e] = g[i * n + j];
    if (e % s == 0) out_norms[e / s] = nn[i];
  });
  gram = to_host(sample);
  norms = to_host(sample_norms);
}

double finish_reference(Reference& r, float inv_2sigma2) {
  r.inv_2sigma2 = inv_2sigma2;
  k::rbf_in_place(raw(r.kxx), raw(r.norms), r.n, raw(r.norms), r.n, inv_2sigma2, true);
  r.kxx_rows.resize(r.n);
  k::row_sums(raw(r.kxx), r.n, r.n, raw(r.kxx_rows));
  return k::total(r.kxx_rows);
}

std::vector<double> set_permutations(Reference& r, const std::vector<float>& a,
                                     const std::vector<float>& c, std::size_t m,
                                     std::size_t count) {
  r.permutations = 0;  // until the new set is complete
  r.a.assign(a.begin(), a.end());
  r.c.assign(c.begin(), c.end());
  thrust::device_vector<float> product(r.n * count);
  k::multiply(r.blas, raw(r.kxx), r.n, r.n, raw(r.a), count, raw(product));
  thrust::device_vector<double> q_xx(count);
  k::column_dots(raw(r.a), raw(product), r.n, count, raw(q_xx));
  r.m = m;
  r.permutations = count;
  return to_host(q_xx);
}

PooledSums pooled_sums(const Reference& r, const float* y_host, std::size_t m) {
  if (r.permutations == 0 || r.m != m) {
    throw std::logic_error("tv_drift: pooled_sums for " + std::to_string(m) +
                           " current rows without a permutation set for them");
  }
  const std::size_t n = r.n, d = r.dims, B = r.permutations;
  const thrust::device_vector<float> y(y_host, y_host + m * d);

  // The current side of the pooled kernel matrix: Kxy (n x m) and Kyy (m x m).
  thrust::device_vector<float> y_norms(m), kxy(n * m), kyy(m * m);
  k::row_norms(raw(y), m, d, raw(y_norms));
  k::gram_cross(r.blas, raw(r.x), n, raw(y), m, d, raw(kxy));
  k::rbf_in_place(raw(kxy), raw(r.norms), n, raw(y_norms), m, r.inv_2sigma2, false);
  k::gram_self(r.blas, raw(y), m, d, raw(kyy));
  k::rbf_in_place(raw(kyy), raw(y_norms), m, raw(y_norms), m, r.inv_2sigma2, true);

  // Pooled row sums r = K 1 and the totals.
  PooledSums sums;
  thrust::device_vector<double> r_x(n), r_y(m), kyy_rows(m);
  k::row_sums(raw(kxy), n, m, raw(r_x));
  k::column_sums(raw(kxy), n, m, raw(r_y));
  sums.t_xy = k::total(r_x);
  k::row_sums(raw(kyy), m, m, raw(kyy_rows));
  sums.t_yy = k::total(kyy_rows);
  k::add_to(r_x, r.kxx_rows);
  k::add_to(r_y, kyy_rows);

  thrust::device_vector<float> kxy_c(n * B), kyy_c(m * B);
  k::multiply(r.blas, raw(kxy), n, m, raw(r.c), B, raw(kxy_c));
  k::multiply(r.blas, raw(kyy), m, m, raw(r.c), B, raw(kyy_c));
  thrust::device_vector<double> q_xy(B), q_yy(B), p_x(B), p_y(B);
  k::column_dots(raw(r.a), raw(kxy_c), n, B, raw(q_xy));
  k::column_dots(raw(r.c), raw(kyy_c), m, B, raw(q_yy));
  k::weighted_column_sums(raw(r.a), raw(r_x), n, B, raw(p_x));
  k::weighted_column_sums(raw(r.c), raw(r_y), m, B, raw(p_y));
  sums.q_xy = to_host(q_xy);
  sums.q_yy = to_host(q_yy);
  sums.p_x = to_host(p_x);
  sums.p_y = to_host(p_y);
  return sums;
}

}  // namespace tv::drift::device
