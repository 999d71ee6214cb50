// Scalar pieces of the RBF kernel shared by the CPU and the CUDA paths: plain arithmetic that a
// compiler vectorizes in a loop (CPU) or runs per thread (GPU). Private to tv_drift.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TV_DRIFT_HD __host__ __device__
#else
#define TV_DRIFT_HD
#endif

namespace tv::drift::rbf {

// e^x for x <= 0 in float, within 2 ulp, underflowing to 0 below -87: Cody-Waite reduction
// x = k ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for e^r and 2^k put into the exponent
// bits. Written without calls or branches so that a loop over it vectorizes (libm's expf does
// not, without -ffast-math), which makes the kernel matrix as cheap as the GEMM before it.
TV_DRIFT_HD inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float k = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693359375f) + k * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const std::int32_t bits = (static_cast<std::int32_t>(k) + 127) << 23;
  float scale;
#if defined(__CUDA_ARCH__)
  scale = __int_as_float(bits);
#else
  std::memcpy(&scale, &bits, sizeof scale);
#endif
  return p * scale;
}

// |z|^2 of one row of `dims` floats, summed in float in order (both paths sum it the same way).
TV_DRIFT_HD inline float squared_norm(const float* z, std::size_t dims) {
  float s = 0;
  for (std::size_t j = 0; j < dims; ++j)
    s += z[j] * z[j];
  return s;
}

// The kernel value from a squared distance written as |a|^2 + |b|^2 - 2 a.b (rounding can make
// it slightly negative for near-equal rows: it is a distance, so at least 0).
TV_DRIFT_HD inline float rbf_from_gram(float norm_a, float norm_b, float dot, float inv_2sigma2) {
  float d = norm_a + norm_b - 2.0f * dot;
  d = d > 0.0f ? d : 0.0f;
  return exp_nonpositive(-d * inv_2sigma2);
}

}  // namespace tv::drift::rbf
