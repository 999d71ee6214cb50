#include "trainvisor/drift/mmd.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>

#include "cpu_kernels.hpp"
#include "device_path.hpp"
#include "trainvisor/drift/backend.hpp"

namespace tv::drift {
namespace {

// SplitMix64 (Steele, Lea and Flood 2014): a small generator whose output is the same on every
// platform, unlike the standard distributions'.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) without modulo bias (Lemire 2019).
  std::uint64_t below(std::uint64_t bound) {
    for (;;) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * bound;
      const auto low = static_cast<std::uint64_t>(m);
      if (low >= bound || low >= (0 - bound) % bound) return static_cast<std::uint64_t>(m >> 64);
    }
  }
};

void check_options(const MmdOptions& o) {
  if (o.bandwidth_rows < 2) {
    throw std::invalid_argument("bandwidth_rows: must be at least 2, got " +
                                std::to_string(o.bandwidth_rows));
  }
  if (!std::isfinite(o.sigma) || o.sigma < 0) {
    throw std::invalid_argument("sigma: must be a finite number >= 0 (0: the median heuristic)");
  }
}

void check_rows(const Window& w, const char* name) {
  check_window(w, name);
  if (w.rows < 2) {
    throw std::invalid_argument(std::string(name) +
                                ": at least 2 rows are needed (the unbiased statistic "
                                "averages over pairs of distinct rows), got 1");
  }
}

// The lower median of the squared distances between distinct rows of an evenly spaced sample
// of at most `limit` rows, read off the Gram matrix's upper triangle. A median of 0 (most sampled
// rows equal) falls back to the median of the positive distances; all of them 0 is an error.
double median_squared_distance(const float* gram, const std::vector<float>& norms, std::size_t n,
                               std::size_t limit) {
  const std::size_t s = std::min(n, limit);
  std::vector<std::size_t> rows(s);
  for (std::size_t k = 0; k < s; ++k)
    rows[k] = k * n / s;
  std::vector<float> d;
  d.reserve(s * (s - 1) / 2);
  for (std::size_t a = 0; a < s; ++a) {
    for (std::size_t b = a + 1; b < s; ++b) {
      const std::size_t i = rows[a], j = rows[b];
      d.push_back(std::max(0.0f, norms[i] + norms[j] - 2.0f * gram[i * n + j]));
    }
  }
  auto lower_median = [](std::vector<float>& v) {
    auto mid = v.begin() + static_cast<std::ptrdiff_t>((v.size() + 1) / 2 - 1);
    std::nth_element(v.begin(), mid, v.end());
    return static_cast<double>(*mid);
  };
  double median = lower_median(d);
  if (median > 0) return median;
  std::erase(d, 0.0f);
  if (d.empty()) {
    throw std::invalid_argument(
        "reference: all its rows are equal, so the median heuristic has no bandwidth to take "
        "(give sigma)");
  }
  return lower_median(d);
}

}  // namespace

std::vector<std::uint8_t> permutation_membership(std::size_t pooled, std::size_t first,
                                                 std::size_t permutations, std::uint64_t seed) {
  std::vector<std::uint8_t> out(permutations * pooled, 0);
  std::vector<std::size_t> order(pooled);
  SplitMix64 rng{seed};
  for (std::size_t b = 0; b < permutations; ++b) {
    for (std::size_t i = 0; i < pooled; ++i)
      order[i] = i;
    // A partial Fisher-Yates shuffle: the first `first` positions are a uniform subset.
    for (std::size_t i = 0; i < first; ++i) {
      const std::size_t j = i + static_cast<std::size_t>(rng.below(pooled - i));
      std::swap(order[i], order[j]);
      out[b * pooled + order[i]] = 1;
    }
  }
  return out;
}

struct MmdReference::State {
  std::size_t n = 0, dims = 0;
  // The rows, |x|^2, and the kernel block as its upper triangle (cpu::gram_upper; zero
  // diagonal). The block is not zero-filled: the pages of its strict lower triangle are never
  // touched, so at large n about half of it is never resident.
  std::vector<float> x, norms;
  std::unique_ptr<float[]> kxx;
  std::vector<double> kxx_rows;  // its row sums
  double kxx_total = 0;
  double sigma = 0;
  float inv_2sigma2 = 0;
  // The reference side on the GPU when backend() chose it; x, norms, kxx and kxx_rows are then
  // left empty (the device holds them).
  device::ReferenceHandle device;
  // The reference's share of the permutation sums, for the last permutation set used.
  struct PermutationCache {
    std::size_t m = 0, permutations = 0;
    std::uint64_t seed = 0;
    bool valid = false;
    std::vector<float> a, c;   // membership of reference rows (n x B) and current rows (m x B)
    std::vector<double> q_xx;  // a_b' Kxx a_b
  };
  mutable PermutationCache cache;
  // The current side's kernel blocks, kept between tests up to kKeptWorkspaceFloats: a repeated
  // test then writes into pages it already has instead of faulting in (and the kernel zeroing)
  // fresh ones for every block, which cost a tenth of a 1000 x 1000 test. Larger blocks are
  // allocated per test, where that cost is small beside the products.
  static constexpr std::size_t kKeptWorkspaceFloats = std::size_t{16} << 20;  // 64 MiB
  struct Workspace {
    std::unique_ptr<float[]> kxy, kyy;
    std::size_t kxy_size = 0, kyy_size = 0;
  };
  mutable Workspace workspace;
  // Blocks of at least the sizes asked for: the kept ones when they fit, else fresh ones (kept
  // when small enough).
  std::pair<float*, float*> current_blocks(std::size_t kxy_size, std::size_t kyy_size,
                                           Workspace& fresh) const;

  void set_bandwidth(const MmdOptions& options, const float* gram,
                     const std::vector<float>& gram_norms, std::size_t gram_rows,
                     std::size_t limit);
  void prepare_on_cpu(const Window& reference, const MmdOptions& options);
  void prepare_on_device(const Window& reference, const MmdOptions& options);
  const PermutationCache& permutations_for(std::size_t m, std::size_t count,
                                           std::uint64_t seed) const;
  PooledSums current_sums_on_cpu(const Window& current, const PermutationCache& perm) const;
};

// sigma from options.sigma, or by the median heuristic from the Gram matrix of `gram_rows` rows.
void MmdReference::State::set_bandwidth(const MmdOptions& options, const float* gram,
                                        const std::vector<float>& gram_norms, std::size_t gram_rows,
                                        std::size_t limit) {
  const double sigma2 = options.sigma > 0
                            ? options.sigma * options.sigma
                            : median_squared_distance(gram, gram_norms, gram_rows, limit) / 2.0;
  sigma = std::sqrt(sigma2);
  inv_2sigma2 = static_cast<float>(1.0 / (2.0 * sigma2));
}

void MmdReference::State::prepare_on_cpu(const Window& reference, const MmdOptions& options) {
  x.assign(reference.values.begin(), reference.values.end());
  norms.resize(n);
  cpu::row_norms(x.data(), n, dims, norms.data());
  kxx = std::make_unique_for_overwrite<float[]>(n * n);
  cpu::gram_upper(x.data(), n, dims, kxx.get());
  set_bandwidth(options, kxx.get(), norms, n, options.bandwidth_rows);
  cpu::rbf_upper_in_place(kxx.get(), norms.data(), n, inv_2sigma2);
  kxx_rows = cpu::symmetric_row_sums(kxx.get(), n);
  kxx_total = cpu::total(kxx_rows);
}

// The same steps as prepare_on_cpu on the device; the median heuristic reads the sampled rows'
// block of the Gram matrix (the rows k n / s it would pick from the whole one), on the host.
void MmdReference::State::prepare_on_device(const Window& reference, const MmdOptions& options) {
  device = device::upload_reference(reference.values.data(), n, dims);
  const std::size_t sampled = std::min(n, options.bandwidth_rows);
  std::vector<float> gram, gram_norms;
  if (options.sigma <= 0) device::sampled_gram(*device, sampled, gram, gram_norms);
  set_bandwidth(options, gram.data(), gram_norms, sampled, sampled);
  kxx_total = device::finish_reference(*device, inv_2sigma2);
}

MmdReference::MmdReference(const Window& reference, const MmdOptions& options)
    : state_(std::make_unique<State>()) {
  check_rows(reference, "reference");
  check_options(options);
  state_->n = reference.rows;
  state_->dims = reference.dims;
  if (backend().device == Device::kCuda)
    state_->prepare_on_device(reference, options);
  else
    state_->prepare_on_cpu(reference, options);
}

MmdReference::~MmdReference() = default;
MmdReference::MmdReference(MmdReference&&) noexcept = default;
MmdReference& MmdReference::operator=(MmdReference&&) noexcept = default;

std::size_t MmdReference::rows() const {
  return state_->n;
}
std::size_t MmdReference::dims() const {
  return state_->dims;
}
double MmdReference::sigma() const {
  return state_->sigma;
}

const MmdReference::State::PermutationCache& MmdReference::State::permutations_for(
    std::size_t m, std::size_t count, std::uint64_t seed) const {
  if (cache.valid && cache.m == m && cache.permutations == count && cache.seed == seed)
    return cache;
  cache.valid = false;  // until the new set is complete: a throw below leaves no stale key
  const std::size_t pooled = n + m;
  const std::vector<std::uint8_t> member = permutation_membership(pooled, n, count, seed);
  cache.a.assign(n * count, 0.0f);
  cache.c.assign(m * count, 0.0f);
  for (std::size_t b = 0; b < count; ++b) {
    for (std::size_t i = 0; i < pooled; ++i) {
      if (!member[b * pooled + i]) continue;
      if (i < n)
        cache.a[i * count + b] = 1.0f;
      else
        cache.c[(i - n) * count + b] = 1.0f;
    }
  }
  if (device) {
    cache.q_xx = device::set_permutations(*device, cache.a, cache.c, m, count);
  } else {
    // Kxx is held as its upper triangle T (zero diagonal): a' Kxx a = 2 a' T a.
    std::vector<float> product(n * count);
    cpu::upper_times(kxx.get(), n, cache.a.data(), count, product.data());
    cache.q_xx = cpu::column_dots(cache.a.data(), product.data(), n, count);
    for (double& q : cache.q_xx)
      q *= 2;
  }
  cache.m = m;
  cache.permutations = count;
  cache.seed = seed;
  cache.valid = true;
  return cache;
}

std::pair<float*, float*> MmdReference::State::current_blocks(std::size_t kxy_size,
                                                              std::size_t kyy_size,
                                                              Workspace& fresh) const {
  Workspace& w = kxy_size + kyy_size <= kKeptWorkspaceFloats ? workspace : fresh;
  if (w.kxy_size < kxy_size) {
    w.kxy = std::make_unique_for_overwrite<float[]>(kxy_size);
    w.kxy_size = kxy_size;
  }
  if (w.kyy_size < kyy_size) {
    w.kyy = std::make_unique_for_overwrite<float[]>(kyy_size);
    w.kyy_size = kyy_size;
  }
  return {w.kxy.get(), w.kyy.get()};
}

// Every permutation at once. With u_b the 0/1 membership of the reference-sized side (a_b over
// reference rows, c_b over current rows), q_b = u_b' K u_b and p_b = u_b' r, r = K 1 the pooled
// row sums: q_b = a' Kxx a + 2 a' Kxy c + c' Kyy c, three products with the B columns together.
PooledSums MmdReference::State::current_sums_on_cpu(const Window& current,
                                                    const PermutationCache& perm) const {
  const std::size_t m = current.rows, d = dims, B = perm.permutations;
  const float* y = current.values.data();

  // The current side of the pooled kernel matrix: Kxy (n x m) and Kyy (m x m, its upper triangle).
  // Not zero-filled: every element the test reads is written first (Kyy's upper triangle).
  std::vector<float> y_norms(m);
  Workspace fresh;
  const auto [kxy, kyy] = current_blocks(n * m, m * m, fresh);
  cpu::row_norms(y, m, d, y_norms.data());
  cpu::gram_cross(x.data(), n, y, m, d, kxy);
  cpu::rbf_in_place(kxy, norms.data(), n, y_norms.data(), m, inv_2sigma2);
  cpu::gram_upper(y, m, d, kyy);
  cpu::rbf_upper_in_place(kyy, y_norms.data(), m, inv_2sigma2);

  // Pooled row sums r = K 1 and the totals.
  PooledSums sums;
  std::vector<double> r_x = cpu::row_sums(kxy, n, m);
  std::vector<double> r_y = cpu::column_sums(kxy, n, m);
  sums.t_xy = cpu::total(r_x);
  const std::vector<double> kyy_rows = cpu::symmetric_row_sums(kyy, m);
  sums.t_yy = cpu::total(kyy_rows);
  for (std::size_t i = 0; i < n; ++i)
    r_x[i] += kxx_rows[i];
  for (std::size_t j = 0; j < m; ++j)
    r_y[j] += kyy_rows[j];

  // Kyy is held as its upper triangle T (zero diagonal): c' Kyy c = 2 c' T c, a triangular
  // product at half the multiply-adds.
  std::vector<float> kxy_c(n * B), kyy_c(m * B);
  cpu::multiply(kxy, n, m, perm.c.data(), B, kxy_c.data());
  cpu::upper_times(kyy, m, perm.c.data(), B, kyy_c.data());
  sums.q_xy = cpu::column_dots(perm.a.data(), kxy_c.data(), n, B);
  sums.q_yy = cpu::column_dots(perm.c.data(), kyy_c.data(), m, B);
  for (double& q : sums.q_yy)
    q *= 2;
  sums.p_x = cpu::weighted_column_sums(perm.a.data(), r_x, n, B);
  sums.p_y = cpu::weighted_column_sums(perm.c.data(), r_y, m, B);
  return sums;
}

MmdResult MmdReference::test(const Window& current, const MmdOptions& options) const {
  check_rows(current, "current");
  check_same_dims(state_->dims, current);
  if (options.permutations == 0)
    throw std::invalid_argument("permutations: must be at least 1, got 0");
  const State& s = *state_;
  const std::size_t n = s.n, m = current.rows, B = options.permutations;
  const State::PermutationCache& perm = s.permutations_for(m, B, options.seed);
  const PooledSums sums = s.device ? device::pooled_sums(*s.device, current.values.data(), m)
                                   : s.current_sums_on_cpu(current, perm);

  // With T = 1' K 1 the pooled total, each split's sums are S_xx = q_b, S_xy = p_b - q_b and
  // S_yy = T - 2 p_b + q_b (the observed split: a = 1, c = 0).
  const double t = s.kxx_total + 2 * sums.t_xy + sums.t_yy;
  const double c_xx = 1.0 / (double(n) * double(n - 1)), c_yy = 1.0 / (double(m) * double(m - 1)),
               c_xy = 2.0 / (double(n) * double(m));
  MmdResult result;
  result.mmd2 = c_xx * s.kxx_total + c_yy * sums.t_yy - c_xy * sums.t_xy;
  result.sigma = s.sigma;
  result.permutations = B;
  result.permuted.resize(B);
  for (std::size_t b = 0; b < B; ++b) {
    const double q = perm.q_xx[b] + 2 * sums.q_xy[b] + sums.q_yy[b], p = sums.p_x[b] + sums.p_y[b];
    const double stat = c_xx * q + c_yy * (t - 2 * p + q) - c_xy * (p - q);
    result.permuted[b] = stat;
    if (stat >= result.mmd2) ++result.exceeding;
  }
  result.p_value = double(result.exceeding + 1) / double(B + 1);
  return result;
}

MmdResult mmd_test(const Window& reference, const Window& current, const MmdOptions& options) {
  return MmdReference(reference, options).test(current, options);
}

}  // namespace tv::drift
