// The checks every trigger makes on a SampleBatch before it uses it, with the messages it refuses
// a batch with. Each names the field at fault and the numbers, and none changes anything: a
// trigger checks the whole batch first and updates its state only when the batch passes, so a
// refused batch leaves the trigger as it was.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "trainvisor/plugin.hpp"

namespace tv::triggers {

// Why the batch's own shape is wrong: features not rows * dims values, not one timestamp per
// row, labels neither absent nor one per row, or timestamps going back within the batch.
// Nothing when it is consistent.
inline std::optional<std::string> batch_shape_problem(const plugin::SampleBatch& batch) {
  std::size_t expected = 0;
  if (__builtin_mul_overflow(batch.rows, batch.dims, &expected)) {
    return "rows * dims: " + std::to_string(batch.rows) + " rows of " + std::to_string(batch.dims) +
           " dims overflow";
  }
  if (batch.features.size() != expected) {
    return "features: " + std::to_string(batch.features.size()) + " values for " +
           std::to_string(batch.rows) + " rows of " + std::to_string(batch.dims) +
           " dims (expected " + std::to_string(expected) + ")";
  }
  if (batch.time_ns.size() != batch.rows) {
    return "time_ns: " + std::to_string(batch.time_ns.size()) + " timestamps for " +
           std::to_string(batch.rows) + " rows";
  }
  if (!batch.labels.empty() && batch.labels.size() != batch.rows) {
    return "labels: " + std::to_string(batch.labels.size()) + " labels for " +
           std::to_string(batch.rows) + " rows (expected none or " + std::to_string(batch.rows) +
           ")";
  }
  for (std::size_t row = 1; row < batch.rows; ++row) {
    if (batch.time_ns[row] < batch.time_ns[row - 1]) {
      return "time_ns: row " + std::to_string(row) + " at " + std::to_string(batch.time_ns[row]) +
             " ns is before row " + std::to_string(row - 1) + " at " +
             std::to_string(batch.time_ns[row - 1]) + " ns (stream time never goes back)";
    }
  }
  return std::nullopt;
}

// The first non-finite feature, for triggers that compute with the values.
inline std::optional<std::string> non_finite_feature(const plugin::SampleBatch& batch) {
  for (std::size_t i = 0; i < batch.features.size(); ++i) {
    if (!std::isfinite(batch.features[i])) {
      const std::size_t dims = batch.dims == 0 ? 1 : batch.dims;
      return "features: row " + std::to_string(i / dims) + " feature " + std::to_string(i % dims) +
             " is " + std::to_string(batch.features[i]) + " (features must be finite)";
    }
  }
  return std::nullopt;
}

// What a trigger remembers of the stream so far to check a batch against the ones before it:
// the last timestamp seen and the feature dimension. check() looks, commit() remembers: a
// trigger commits only a batch it has accepted.
class StreamCursor {
 public:
  // `fixed_dims`: refuse a batch whose dims differ from the first non-empty batch's.
  explicit StreamCursor(bool fixed_dims) : fixed_dims_(fixed_dims) {}

  // Why the batch cannot follow the ones seen so far (its own shape included); nothing when it
  // can.
  std::optional<std::string> check(const plugin::SampleBatch& batch) const {
    if (auto problem = batch_shape_problem(batch)) return problem;
    if (batch.rows == 0) return std::nullopt;
    if (last_time_ns_ && batch.time_ns[0] < *last_time_ns_) {
      return "time_ns: row 0 at " + std::to_string(batch.time_ns[0]) +
             " ns is before the previous batch's last sample at " + std::to_string(*last_time_ns_) +
             " ns (stream time never goes back)";
    }
    if (fixed_dims_ && dims_ && batch.dims != *dims_) {
      return "dims: " + std::to_string(batch.dims) + " features per sample, earlier batches had " +
             std::to_string(*dims_);
    }
    return std::nullopt;
  }

  void commit(const plugin::SampleBatch& batch) {
    if (batch.rows == 0) return;
    last_time_ns_ = batch.time_ns[batch.rows - 1];
    if (!dims_) dims_ = batch.dims;
  }

  // The last timestamp seen; nothing before the first non-empty batch.
  const std::optional<std::int64_t>& last_time_ns() const { return last_time_ns_; }

 private:
  bool fixed_dims_;
  std::optional<std::int64_t> last_time_ns_;
  std::optional<std::size_t> dims_;
};

}  // namespace tv::triggers
