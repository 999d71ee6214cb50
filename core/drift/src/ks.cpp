#include "trainvisor/drift/ks.hpp"

#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/sort.h>
#include <thrust/system/omp/execution_policy.h>

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tv::drift {
namespace {

using Index = thrust::counting_iterator<std::size_t>;

// The columns of a row-major window, each sorted: one Thrust task per feature.
std::vector<float> sorted_columns(const Window& w) {
  std::vector<float> cols(w.rows * w.dims);
  float* out = cols.data();
  const float* in = w.values.data();
  const std::size_t rows = w.rows, dims = w.dims;
  thrust::for_each(thrust::omp::par, Index(0), Index(dims), [=](std::size_t f) {
    float* col = out + f * rows;
    for (std::size_t i = 0; i < rows; ++i)
      col[i] = in[i * dims + f];
    thrust::sort(thrust::seq, col, col + rows);
  });
  return cols;
}

// sup |F_a - F_b| of two sorted samples, the ECDFs compared after every distinct value.
double ks_statistic(const float* a, std::size_t n, const float* b, std::size_t m) {
  std::size_t i = 0, j = 0;
  double d = 0;
  while (i < n && j < m) {
    const float t = std::min(a[i], b[j]);
    while (i < n && a[i] == t)
      ++i;
    while (j < m && b[j] == t)
      ++j;
    d = std::max(d, std::abs(double(i) / double(n) - double(j) / double(m)));
  }
  return d;
}

double corrected(const std::vector<double>& p, Correction correction) {
  const double d = static_cast<double>(p.size());
  if (correction == Correction::kBonferroni)
    return std::min(1.0, *std::min_element(p.begin(), p.end()) * d);
  // Benjamini-Hochberg: adjusted p_(k) = min over j >= k of p_(j) d / j; the smallest is the
  // minimum over all k of p_(k) d / k.
  std::vector<double> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  double best = 1.0;
  for (std::size_t k = 0; k < sorted.size(); ++k)
    best = std::min(best, sorted[k] * d / double(k + 1));
  return best;
}

}  // namespace

double kolmogorov_survival(double l) {
  if (!(l > 0)) return 1.0;
  constexpr double kPi = std::numbers::pi;
  if (l < 1.0) {
    // The theta-function form, fast for small l: 1 - sqrt(2 pi) / l sum exp(-(2j-1)^2 pi^2 / (8
    // l^2)).
    double sum = 0;
    for (int j = 1; j <= 20; ++j) {
      const double term = std::exp(-double((2 * j - 1) * (2 * j - 1)) * kPi * kPi / (8 * l * l));
      sum += term;
      if (term < 1e-18 * sum) break;
    }
    return 1.0 - std::sqrt(2 * kPi) / l * sum;
  }
  double sum = 0;
  for (int j = 1; j <= 100; ++j) {
    const double term = std::exp(-2.0 * j * j * l * l);
    sum += (j % 2 ? term : -term);
    if (term < 1e-18) break;
  }
  return std::clamp(2 * sum, 0.0, 1.0);
}

KsReference::KsReference(const Window& reference) {
  check_window(reference, "reference");
  rows_ = reference.rows;
  dims_ = reference.dims;
  sorted_ = sorted_columns(reference);
}

KsResult KsReference::test(const Window& current, Correction correction) const {
  check_window(current, "current");
  check_same_dims(dims_, current);
  const std::vector<float> cur = sorted_columns(current);
  const std::size_t n = rows_, m = current.rows, dims = dims_;
  const double e = double(n) * double(m) / double(n + m), root = std::sqrt(e);
  KsResult r;
  r.statistic.resize(dims);
  r.p_value.resize(dims);
  double* stat = r.statistic.data();
  double* p = r.p_value.data();
  const float* ref = sorted_.data();
  const float* now = cur.data();
  thrust::for_each(thrust::omp::par, Index(0), Index(dims), [=](std::size_t f) {
    stat[f] = ks_statistic(ref + f * n, n, now + f * m, m);
    p[f] = kolmogorov_survival((root + 0.12 + 0.11 / root) * stat[f]);
  });
  const auto max = std::max_element(r.statistic.begin(), r.statistic.end());
  r.max_statistic = *max;
  r.max_feature = static_cast<std::size_t>(max - r.statistic.begin());
  r.corrected_p = corrected(r.p_value, correction);
  return r;
}

KsResult ks_test(const Window& reference, const Window& current, Correction correction) {
  return KsReference(reference).test(current, correction);
}

}  // namespace tv::drift
