// Two-sample Kolmogorov-Smirnov test, feature by feature, with a correction over the features.
//
// Per feature: D = sup_t |F_ref(t) - F_cur(t)| over the pooled values (the statistic of scipy's
// ks_2samp), and p = Q_KS((sqrt(e) + 0.12 + 0.11 / sqrt(e)) D) with e = n m / (n + m), Kolmogorov's
// limiting distribution with Stephens' (1970) small-sample correction,
// Q_KS(l) = 2 sum_{j>=1} (-1)^(j-1) exp(-2 j^2 l^2). Over the d features: Bonferroni (the smallest
// p times d, at most 1) or Benjamini-Hochberg (the smallest BH-adjusted p). A caller decides
// drift when the corrected p is below its level.
//
// KsReference keeps the reference's sorted columns for repeated tests. Thread safety: const
// methods may run in parallel. It runs on the CPU (Thrust's OpenMP backend) in every build, the
// CUDA one included: its work is a sort and a merge per feature, small next to the MMD's.
#pragma once

#include <vector>

#include "trainvisor/drift/window.hpp"

namespace tv::drift {

enum class Correction { kBonferroni, kFdr };

struct KsResult {
  std::vector<double> statistic;  // D per feature
  std::vector<double> p_value;    // uncorrected, per feature
  double max_statistic = 0;
  std::size_t max_feature = 0;  // the feature with the largest D (the first of equals)
  double corrected_p = 1;
};

class KsReference {
 public:
  // Throws std::invalid_argument naming `reference` for a bad window (see check_window).
  explicit KsReference(const Window& reference);
  std::size_t rows() const { return rows_; }
  std::size_t dims() const { return dims_; }
  // Throws std::invalid_argument naming `current` for a bad window or other dims.
  KsResult test(const Window& current, Correction correction) const;

 private:
  std::size_t rows_ = 0, dims_ = 0;
  std::vector<float> sorted_;  // dims_ columns of rows_ sorted values each
};

KsResult ks_test(const Window& reference, const Window& current, Correction correction);

// Q_KS(l): the probability that Kolmogorov's statistic exceeds l (scipy.special.kolmogorov).
double kolmogorov_survival(double l);

}  // namespace tv::drift
