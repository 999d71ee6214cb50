// Maximum mean discrepancy (Gretton et al. 2012) two-sample test with a Gaussian RBF kernel.
//
// Statistic: the unbiased MMD^2 between a reference window X (n rows) and a current window Y
// (m rows), with k(a, b) = exp(-|a - b|^2 / (2 sigma^2)):
//   MMD^2 = S_xx / (n (n-1)) + S_yy / (m (m-1)) - 2 S_xy / (n m)
// where S_xx sums k over pairs of distinct X rows, S_yy over distinct Y rows, S_xy over X x Y.
// Bandwidth: the median heuristic on the reference (as alibi-detect configures its kernel from
// x_ref): sigma^2 = median / 2, the median (the lower one) of the squared distances between
// distinct rows of at most `bandwidth_rows` evenly spaced reference rows.
// p-value: B random splits of the pooled rows into n and m; p = (k + 1) / (B + 1), k the number
// of permuted statistics >= the observed one. The pooled kernel matrix is computed once and all B
// permuted statistics come from one batched product (no per-permutation recomputation).
//
// MmdReference keeps the reference side (rows, norms, kernel block, row sums, bandwidth, and its
// share of the permutation sums for the last permutation set), so a second test against an
// unchanged reference skips that work. It is used by one thread at a time (its cache mutates);
// distinct references may be tested in parallel.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "trainvisor/drift/window.hpp"

namespace tv::drift {

struct MmdOptions {
  std::size_t permutations = 100;     // B, at least 1
  std::uint64_t seed = 0;             // of the permutations
  std::size_t bandwidth_rows = 1000;  // reference rows the median heuristic looks at, at least 2
  double sigma = 0;                   // > 0: a fixed bandwidth instead of the heuristic
};

struct MmdResult {
  double mmd2 = 0;
  double p_value = 1;
  double sigma = 0;
  std::size_t permutations = 0;
  std::size_t exceeding = 0;  // k: permuted statistics >= mmd2
  // The permuted statistics, in permutation order (for tests and calibration).
  std::vector<double> permuted;
};

class MmdReference {
 public:
  // Copies and prepares `reference`. Throws std::invalid_argument naming the parameter: a bad
  // window (see check_window; at least 2 rows), bandwidth_rows < 2, a non-finite or negative
  // sigma, or a reference whose rows are all equal (no bandwidth to take from it).
  MmdReference(const Window& reference, const MmdOptions& options);
  ~MmdReference();
  MmdReference(MmdReference&&) noexcept;
  MmdReference& operator=(MmdReference&&) noexcept;

  std::size_t rows() const;
  std::size_t dims() const;
  double sigma() const;

  // Tests `current` (at least 2 rows, the reference's dims) with options.permutations and
  // options.seed (the bandwidth options were the constructor's). Throws std::invalid_argument
  // naming the parameter on bad input (permutations == 0 among them).
  MmdResult test(const Window& current, const MmdOptions& options) const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// One-shot form: prepares the reference and tests `current`.
MmdResult mmd_test(const Window& reference, const Window& current, const MmdOptions& options);

// The permutations the test uses, so that an independent implementation can check it: for each
// of `permutations` splits of `pooled` rows (reference rows first, then current rows), one byte
// per pooled row, 1 when the row goes to the reference-sized side (`first` rows in all).
// Deterministic in `seed` on every platform (its own generator and Fisher-Yates).
std::vector<std::uint8_t> permutation_membership(std::size_t pooled, std::size_t first,
                                                 std::size_t permutations, std::uint64_t seed);

}  // namespace tv::drift
