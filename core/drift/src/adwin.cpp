#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "trainvisor/drift/streaming.hpp"

namespace tv::drift {
namespace {

void require(bool ok, const char* option, const char* range) {
  if (!ok)
    throw std::invalid_argument(std::string("ADWIN option '") + option + "' must be " + range);
}

// Chan et al.'s pairwise update: the sum of squared deviations of the union of two groups.
double merged_m2(double n_a, double total_a, double m2_a, double n_b, double total_b, double m2_b) {
  const double gap = total_a / n_a - total_b / n_b;
  return m2_a + m2_b + n_a * n_b / (n_a + n_b) * gap * gap;
}

}  // namespace

Adwin::Adwin(const AdwinOptions& options) : options_(options) {
  require(std::isfinite(options.delta) && options.delta > 0.0 && options.delta < 1.0, "delta",
          "in (0, 1)");
  require(options.max_buckets >= 1, "max_buckets", ">= 1");
  require(options.clock >= 1, "clock", ">= 1");
  require(options.min_window_length >= 1, "min_window_length", ">= 1");
}

bool Adwin::update(double x) {
  if (!std::isfinite(x)) {
    throw std::invalid_argument("ADWIN update: x must be a finite number, got " +
                                std::to_string(x));
  }
  insert(x);
  ++ticks_;
  if (ticks_ % options_.clock != 0 || width_ < options_.grace_period) return false;
  bool changed = false;
  while (cut_found()) {
    drop_oldest_bucket();
    changed = true;
  }
  if (changed) ++detections_;
  return changed;
}

void Adwin::reset() {
  rows_.clear();
  width_ = 0;
  total_ = 0.0;
  m2_ = 0.0;
  ticks_ = 0;
}

std::size_t Adwin::bucket_count() const {
  std::size_t count = 0;
  for (const auto& row : rows_)
    count += row.size();
  return count;
}

void Adwin::insert(double x) {
  if (width_ > 0) {
    const double w = static_cast<double>(width_);
    const double gap = x - total_ / w;
    m2_ += w / (w + 1.0) * gap * gap;
  }
  ++width_;
  total_ += x;
  if (rows_.empty()) rows_.emplace_back();
  rows_[0].push_front(Bucket{x, 0.0});
  compress();
}

// A row holding M + 1 buckets merges its two oldest into one bucket of the next row, which may
// overflow in turn: the exponential histogram that keeps O(M log W) buckets.
void Adwin::compress() {
  for (std::size_t row = 0; row < rows_.size() && rows_[row].size() > options_.max_buckets; ++row) {
    const double size = std::ldexp(1.0, static_cast<int>(row));
    const Bucket older = rows_[row].back();
    rows_[row].pop_back();
    const Bucket newer = rows_[row].back();
    rows_[row].pop_back();
    const Bucket merged{older.total + newer.total,
                        merged_m2(size, older.total, older.m2, size, newer.total, newer.m2)};
    if (row + 1 == rows_.size()) rows_.emplace_back();
    rows_[row + 1].push_front(merged);
  }
}

// Tests every split at a bucket boundary, from the oldest end, against eps_cut.
bool Adwin::cut_found() const {
  const double width = static_cast<double>(width_);
  const double variance = m2_ / width;
  const double log_term = std::log(2.0 * std::log(width) / options_.delta);  // ln(2 / d')
  const double min_side = static_cast<double>(options_.min_window_length);
  double n0 = 0.0;
  double total0 = 0.0;
  for (std::size_t row = rows_.size(); row-- > 0;) {
    const double size = std::ldexp(1.0, static_cast<int>(row));
    for (auto bucket = rows_[row].rbegin(); bucket != rows_[row].rend(); ++bucket) {
      n0 += size;
      total0 += bucket->total;
      const double n1 = width - n0;
      if (n1 < min_side) return false;  // every later split leaves W1 smaller still
      if (n0 < min_side) continue;
      const double m_inverse = 1.0 / n0 + 1.0 / n1;  // 1 / m, m the harmonic mean of the sides
      const double eps_cut =
          std::sqrt(2.0 * m_inverse * variance * log_term) + 2.0 / 3.0 * m_inverse * log_term;
      if (std::fabs(total0 / n0 - (total_ - total0) / n1) >= eps_cut) return true;
    }
  }
  return false;
}

void Adwin::drop_oldest_bucket() {
  const std::size_t row = rows_.size() - 1;
  const Bucket oldest = rows_[row].back();
  rows_[row].pop_back();
  // With M = 1 a merge can empty a middle row: trim down to the oldest non-empty one.
  while (!rows_.empty() && rows_.back().empty())
    rows_.pop_back();
  const double n_old = std::ldexp(1.0, static_cast<int>(row));
  const double n_rest = static_cast<double>(width_) - n_old;
  // The window's m2 is the merge of the dropped bucket and the rest; solve it for the rest's.
  const double total_rest = total_ - oldest.total;
  const double gap = oldest.total / n_old - total_rest / n_rest;
  m2_ = std::max(0.0, m2_ - oldest.m2 - n_old * n_rest / (n_old + n_rest) * gap * gap);
  total_ = total_rest;
  width_ -= static_cast<std::size_t>(n_old);
}

}  // namespace tv::drift
