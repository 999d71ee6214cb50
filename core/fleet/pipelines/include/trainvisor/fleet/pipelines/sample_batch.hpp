// A batch of a pipeline's data stream and its wire format. The coordinator decodes what a client
// posts to /v1/pipeline/{name}/samples, the segment store writes the canonical encoding to disk,
// and hosts and trainers decode the segments they fetch; so this library needs neither SQLite nor
// libtorch.
//
// Wire format: three NumPy .npy arrays back to back, exactly what
//     np.save(f, x); np.save(f, y); np.save(f, t)
// writes into one file object (format versions 1.0, 2.0 and 3.0 are read):
//   x  features, dtype '<f4' (float32 little-endian), C order, shape (rows, *sample_shape):
//      rows >= 1, a sample of rank 1..4 with no zero dimension, every value finite;
//   y  labels, shape (rows,), dtype '<i8', '<i4', '<i2', '|i1', '<u8', '<u4', '<u2' or '|u1',
//      each value >= 0 and < 2^31;
//   t  timestamps, shape (rows,), dtype '<i8' or '<M8[ns]' (datetime64[ns]): Unix nanoseconds,
//      >= 0, non-decreasing within the batch.
// Nothing may follow the third array. decode_batch() is total: any other input (truncated,
// big-endian, Fortran order, shapes that disagree, sizes past BatchLimits, an unknown header key)
// is a BatchError, checked before anything is allocated for it, and never a read out of bounds.
//
// The canonical encoding (encode_batch) is the same triple at format 1.0 with dtypes '<f4',
// '<i8', '<i8' and headers padded as NumPy 1.24 pads them, so np.load reads it and it is the
// bytes np.save writes for those arrays; decode_batch(encode_batch(b)) == b.
//
// Thread-safety: free functions on values; call them from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::fleet::pipelines {

// An owned batch of stream samples.
struct SampleBatchData {
  std::vector<std::int64_t> sample_shape;  // one sample's shape, e.g. {784} or {1, 28, 28}
  std::size_t rows = 0;
  std::vector<float> features;        // rows * dims(), row-major
  std::vector<std::int64_t> labels;   // rows
  std::vector<std::int64_t> time_ns;  // rows, Unix ns, non-decreasing

  // The product of sample_shape (1 for an empty shape).
  std::size_t dims() const;
  // Spans into this object, for a trigger plugin's observe(); valid while it is unchanged.
  plugin::SampleBatch view() const;
  bool operator==(const SampleBatchData&) const = default;
};

struct BatchLimits {
  std::size_t max_bytes = std::size_t{64} << 20;  // the whole body
  std::size_t max_rows = std::size_t{1} << 20;
  std::size_t max_dims = std::size_t{1} << 22;  // features of one sample
};

// A refused body. The message names the array (features, labels, timestamps, or body) and the
// reason, with what to send instead where there is one:
//   "features: dtype '<f8' is not float32 ('<f4'); send x.astype(np.float32)".
class BatchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

SampleBatchData decode_batch(std::string_view body, const BatchLimits& limits = {});

// The canonical bytes of `batch`. Throws BatchError when the batch breaks the rules above that a
// decoder checks (sizes that disagree, a non-finite value, a label out of range, time going back).
std::string encode_batch(const SampleBatchData& batch);

// The parts' rows in order, as one batch. Every part must have the first part's sample_shape and
// time must not go back across parts (BatchError otherwise); no parts gives an empty batch.
SampleBatchData concatenate(const std::vector<SampleBatchData>& parts);

}  // namespace tv::fleet::pipelines
