// The MMD test against an independent implementation: the kernel in double, each permuted
// statistic summed block by block from the same permutations (the alibi-detect loop form), and
// bad input refused with the parameter named.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>
#include <vector>

#include "trainvisor/drift/mmd.hpp"

namespace tv::drift {
namespace {

std::vector<float> gaussian(std::size_t rows, std::size_t dims, double shift, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<float> v(rows * dims);
  for (float& x : v)
    x = static_cast<float>(normal(rng) + shift);
  return v;
}

Window window(const std::vector<float>& v, std::size_t dims) {
  return {v, v.size() / dims, dims};
}

// The unbiased MMD^2 of one split, from a pooled kernel matrix in double.
double naive_statistic(const std::vector<double>& k, std::size_t pooled,
                       const std::vector<bool>& first) {
  double sxx = 0, syy = 0, sxy = 0;
  std::size_t n = 0;
  for (std::size_t i = 0; i < pooled; ++i)
    n += first[i];
  const std::size_t m = pooled - n;
  for (std::size_t i = 0; i < pooled; ++i) {
    for (std::size_t j = 0; j < pooled; ++j) {
      if (i == j) continue;
      const double v = k[i * pooled + j];
      if (first[i] && first[j])
        sxx += v;
      else if (!first[i] && !first[j])
        syy += v;
      else if (first[i])
        sxy += v;
    }
  }
  return sxx / (double(n) * (n - 1)) + syy / (double(m) * (m - 1)) - 2 * sxy / (double(n) * m);
}

struct Naive {
  double mmd2;
  std::vector<double> permuted;
  double p_value;
};

Naive naive_test(const std::vector<float>& x, const std::vector<float>& y, std::size_t dims,
                 double sigma, std::size_t permutations, std::uint64_t seed) {
  const std::size_t n = x.size() / dims, m = y.size() / dims, pooled = n + m;
  auto row = [&](std::size_t i) { return i < n ? &x[i * dims] : &y[(i - n) * dims]; };
  std::vector<double> k(pooled * pooled);
  for (std::size_t i = 0; i < pooled; ++i) {
    for (std::size_t j = 0; j < pooled; ++j) {
      double d2 = 0;
      for (std::size_t f = 0; f < dims; ++f) {
        const double diff = double(row(i)[f]) - row(j)[f];
        d2 += diff * diff;
      }
      k[i * pooled + j] = std::exp(-d2 / (2 * sigma * sigma));
    }
  }
  std::vector<bool> first(pooled, false);
  for (std::size_t i = 0; i < n; ++i)
    first[i] = true;
  Naive out{naive_statistic(k, pooled, first), {}, 0};
  const auto member = permutation_membership(pooled, n, permutations, seed);
  std::size_t exceeding = 0;
  for (std::size_t b = 0; b < permutations; ++b) {
    for (std::size_t i = 0; i < pooled; ++i)
      first[i] = member[b * pooled + i] != 0;
    out.permuted.push_back(naive_statistic(k, pooled, first));
    exceeding += out.permuted.back() >= out.mmd2;
  }
  out.p_value = double(exceeding + 1) / double(permutations + 1);
  return out;
}

void expect_matches_naive(std::size_t n, std::size_t m, std::size_t dims, double shift,
                          std::size_t permutations, std::uint64_t seed) {
  const auto x = gaussian(n, dims, 0.0, seed), y = gaussian(m, dims, shift, seed + 1);
  MmdOptions options;
  options.permutations = permutations;
  options.seed = seed;
  const MmdResult r = mmd_test(window(x, dims), window(y, dims), options);
  const Naive expect = naive_test(x, y, dims, r.sigma, permutations, seed);
  // The kernel is float: each statistic is a difference of means of kernel values (at most 1),
  // so it is exact to about 1e-7 absolute, whatever its own size.
  constexpr double kTolerance = 1e-6;
  EXPECT_NEAR(r.mmd2, expect.mmd2, kTolerance);
  ASSERT_EQ(r.permuted.size(), expect.permuted.size());
  for (std::size_t b = 0; b < permutations; ++b)
    EXPECT_NEAR(r.permuted[b], expect.permuted[b], kTolerance) << "permutation " << b;
  EXPECT_NEAR(r.p_value, expect.p_value, 1e-12);
}

TEST(Mmd, BatchedPermutationsEqualTheNaiveLoopWithoutDrift) {
  expect_matches_naive(120, 120, 6, 0.0, 100, 1);
  expect_matches_naive(90, 150, 4, 0.0, 200, 2);
}

TEST(Mmd, BatchedPermutationsEqualTheNaiveLoopWithDrift) {
  expect_matches_naive(100, 80, 5, 0.4, 100, 3);
  expect_matches_naive(64, 64, 16, 0.15, 300, 4);
}

TEST(Mmd, DetectsAShiftAndNotItsAbsence) {
  MmdOptions options;
  const auto x = gaussian(200, 10, 0, 7), same = gaussian(200, 10, 0, 8),
             shifted = gaussian(200, 10, 0.5, 9);
  EXPECT_GT(mmd_test(window(x, 10), window(same, 10), options).p_value, 0.05);
  const MmdResult drift = mmd_test(window(x, 10), window(shifted, 10), options);
  EXPECT_NEAR(drift.p_value, 1.0 / 101.0, 1e-12);
  EXPECT_EQ(drift.exceeding, 0u);
}

TEST(Mmd, ACachedReferenceGivesTheSameResultsAsAFreshOne) {
  const auto x = gaussian(150, 8, 0, 11), y1 = gaussian(100, 8, 0.2, 12),
             y2 = gaussian(130, 8, 0, 13);
  MmdOptions options;
  const MmdReference reference(window(x, 8), options);
  for (int round = 0; round < 2; ++round) {
    for (const auto* y : {&y1, &y2, &y1}) {
      const MmdResult cached = reference.test(window(*y, 8), options);
      const MmdResult fresh = mmd_test(window(x, 8), window(*y, 8), options);
      EXPECT_DOUBLE_EQ(cached.mmd2, fresh.mmd2);
      EXPECT_EQ(cached.permuted, fresh.permuted);
      EXPECT_EQ(cached.p_value, fresh.p_value);
    }
    options.seed = 99;  // a new permutation set replaces the cached one
  }
}

TEST(Mmd, PermutationsAreSubsetsOfTheRightSizeAndDependOnTheSeed) {
  const auto a = permutation_membership(30, 12, 50, 5), b = permutation_membership(30, 12, 50, 5),
             c = permutation_membership(30, 12, 50, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (std::size_t p = 0; p < 50; ++p) {
    std::size_t ones = 0;
    for (std::size_t i = 0; i < 30; ++i)
      ones += a[p * 30 + i];
    EXPECT_EQ(ones, 12u);
  }
}

template <class F>
void expect_refused(F f, const std::string& names) {
  try {
    f();
    ADD_FAILURE() << "accepted; expected an error naming " << names;
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()).rfind(names, 0), 0u) << e.what();
  }
}

TEST(Mmd, BadInputIsRefusedNamingTheParameter) {
  const auto x = gaussian(20, 3, 0, 1);
  auto y = gaussian(20, 3, 0, 2);
  MmdOptions options;
  const MmdReference reference(window(x, 3), options);
  y[7] = std::nanf("");
  expect_refused([&] { reference.test(window(y, 3), options); },
                 "current: row 2, feature 1 is NaN");
  expect_refused(
      [&] {
        reference.test(Window{{}, 0, 3}, options);
      },
      "current: the window is empty");
  const auto four = gaussian(20, 4, 0, 3);
  expect_refused([&] { reference.test(window(four, 4), options); },
                 "current: 4 features per row, the reference has 3");
  const auto ok = gaussian(20, 3, 0, 4);
  options.permutations = 0;
  expect_refused([&] { reference.test(window(ok, 3), options); },
                 "permutations: must be at least 1");
  options.permutations = 100;
  expect_refused(
      [&] {
        MmdReference(Window{{}, 0, 0}, options);
      },
      "reference: the window is empty");
  expect_refused(
      [&] {
        MmdReference(Window{std::span(x).first(3), 1, 3}, options);
      },
      "reference: at least 2 rows");
  expect_refused(
      [&] {
        MmdReference(Window{x, 7, 3}, options);
      },
      "reference: 60 values are not 7 rows");
  options.sigma = -1;
  expect_refused([&] { MmdReference(window(x, 3), options); }, "sigma: must be");
  const std::vector<float> equal(30, 1.0f);
  options.sigma = 0;
  expect_refused([&] { MmdReference(window(equal, 3), options); },
                 "reference: all its rows are equal");
}

}  // namespace
}  // namespace tv::drift
