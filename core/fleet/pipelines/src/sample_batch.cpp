#include "trainvisor/fleet/pipelines/sample_batch.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>

#include "npy_format.hpp"

namespace tv::fleet::pipelines {
namespace {

// The arrays are copied byte for byte into native values.
static_assert(std::endian::native == std::endian::little, "the .npy arrays are little-endian");

constexpr std::int64_t kLabelLimit = std::int64_t{1} << 31;

[[noreturn]] void fail(std::string_view array, const std::string& why) {
  throw BatchError(std::string(array) + ": " + why);
}

// a * b, or nothing when it passes `limit`.
bool multiply_within(std::size_t a, std::size_t b, std::size_t limit, std::size_t& out) {
  if (a != 0 && b > limit / a) return false;
  out = a * b;
  return out <= limit;
}

// Why `descr` is refused and what to send instead.
std::string dtype_advice(std::string_view descr, std::string_view want,
                         std::string_view conversion) {
  if (!descr.empty() && descr[0] == '>') {
    return "dtype '" + std::string(descr) + "' is big-endian; send " + std::string(conversion);
  }
  return "dtype '" + std::string(descr) + "' is not " + std::string(want) + "; send " +
         std::string(conversion);
}

void check_order(std::string_view array, const npy::Header& h, std::string_view var) {
  if (h.fortran_order) {
    fail(array, "array is in Fortran order; send np.ascontiguousarray(" + std::string(var) + ")");
  }
}

// The data of an array of `count` items of `size` bytes at the front of `in`; advances `in`.
// count * size cannot overflow: features bound rows * dims * 4 below SIZE_MAX, and labels and
// timestamps come after the features' rows * dims * 4 bytes were found in the body.
std::string_view take_data(std::string_view& in, std::string_view array, std::size_t count,
                           std::size_t size, const npy::Header& h) {
  const std::size_t bytes = count * size;
  if (bytes > in.size()) {
    fail(array, "truncated: shape " + npy::shape_text(h.shape) + " of '" + h.descr + "' needs " +
                    std::to_string(bytes) + " bytes of data, " + std::to_string(in.size()) +
                    " remain");
  }
  const std::string_view data = in.substr(0, bytes);
  in.remove_prefix(bytes);
  return data;
}

template <class T>
std::vector<T> copy_items(std::string_view data) {
  std::vector<T> out(data.size() / sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), data.data(), data.size());
  return out;
}

void read_features(std::string_view& in, const BatchLimits& limits, SampleBatchData& b) {
  constexpr std::string_view kArray = "features";
  const npy::Header h = npy::read_header(in, kArray);
  if (h.descr != "<f4") {
    fail(kArray,
         dtype_advice(h.descr, "float32 ('<f4')",
                      h.descr.starts_with('>') ? "x.astype('<f4')" : "x.astype(np.float32)"));
  }
  check_order(kArray, h, "x");
  if (h.shape.size() < 2 || h.shape.size() > 5) {
    fail(kArray, "shape " + npy::shape_text(h.shape) +
                     " is not (rows, *sample_shape) with a sample of rank 1 to 4");
  }
  const auto rows = static_cast<std::size_t>(h.shape[0]);
  if (rows == 0) fail(kArray, "shape " + npy::shape_text(h.shape) + " has no rows");
  if (rows > limits.max_rows) {
    fail(kArray, std::to_string(rows) + " rows is more than the limit of " +
                     std::to_string(limits.max_rows));
  }
  b.sample_shape.assign(h.shape.begin() + 1, h.shape.end());
  std::size_t dims = 1;
  for (const std::int64_t d : b.sample_shape) {
    if (d == 0) fail(kArray, "shape " + npy::shape_text(h.shape) + " has a sample dimension of 0");
    if (!multiply_within(dims, static_cast<std::size_t>(d), limits.max_dims, dims)) {
      fail(kArray, "a sample of shape " + npy::shape_text(b.sample_shape) +
                       " has more than the limit of " + std::to_string(limits.max_dims) +
                       " features");
    }
  }
  std::size_t count = 0;
  if (!multiply_within(rows, dims, std::numeric_limits<std::size_t>::max() / 4, count)) {
    fail(kArray, "shape " + npy::shape_text(h.shape) + " is too large");
  }
  b.rows = rows;
  b.features = copy_items<float>(take_data(in, kArray, count, sizeof(float), h));
}

// The shape every per-row array must have: (rows,).
void check_rows(std::string_view array, const npy::Header& h, std::size_t rows) {
  if (h.shape.size() != 1 || static_cast<std::size_t>(h.shape[0]) != rows) {
    fail(array, "shape " + npy::shape_text(h.shape) + " does not match the " +
                    std::to_string(rows) + " rows of features; expected (" + std::to_string(rows) +
                    ",)");
  }
}

std::string label_range_error(std::size_t row, const std::string& value) {
  return "row " + std::to_string(row) + " (" + value + ") is not in [0, 2^31)";
}

// One label of type T at `p`, as int64. Only uint64 can hold a value int64 cannot: refused here,
// with its own value in the message; the rest is range-checked with every batch.
template <class T>
std::int64_t label_as_i64(const char* p, std::size_t row) {
  T v;
  std::memcpy(&v, p, sizeof v);
  if constexpr (std::is_same_v<T, std::uint64_t>) {
    if (v >= static_cast<std::uint64_t>(kLabelLimit))
      fail("labels", label_range_error(row, std::to_string(v)));
  }
  return static_cast<std::int64_t>(v);
}

struct LabelType {
  std::string_view descr;
  std::size_t size;
  std::int64_t (*read)(const char*, std::size_t row);
};
constexpr LabelType kLabelTypes[] = {
    {"<i8", 8, label_as_i64<std::int64_t>},  {"<i4", 4, label_as_i64<std::int32_t>},
    {"<i2", 2, label_as_i64<std::int16_t>},  {"|i1", 1, label_as_i64<std::int8_t>},
    {"<u8", 8, label_as_i64<std::uint64_t>}, {"<u4", 4, label_as_i64<std::uint32_t>},
    {"<u2", 2, label_as_i64<std::uint16_t>}, {"|u1", 1, label_as_i64<std::uint8_t>},
};

void read_labels(std::string_view& in, SampleBatchData& b) {
  constexpr std::string_view kArray = "labels";
  const npy::Header h = npy::read_header(in, kArray);
  const LabelType* type = nullptr;
  for (const LabelType& t : kLabelTypes) {
    if (t.descr == h.descr) type = &t;
  }
  if (type == nullptr) {
    fail(kArray, dtype_advice(h.descr,
                              "an integer type ('<i8', '<i4', '<i2', '|i1', "
                              "'<u8', '<u4', '<u2', '|u1')",
                              "y.astype(np.int64)"));
  }
  check_order(kArray, h, "y");
  check_rows(kArray, h, b.rows);
  const std::string_view data = take_data(in, kArray, b.rows, type->size, h);
  b.labels.resize(b.rows);
  for (std::size_t i = 0; i < b.rows; ++i)
    b.labels[i] = type->read(data.data() + i * type->size, i);
}

void read_timestamps(std::string_view& in, SampleBatchData& b) {
  constexpr std::string_view kArray = "timestamps";
  const npy::Header h = npy::read_header(in, kArray);
  if (h.descr != "<i8" && h.descr != "<M8[ns]") {
    fail(kArray, dtype_advice(h.descr, "int64 Unix nanoseconds ('<i8' or '<M8[ns]')",
                              "t.astype('datetime64[ns]').astype(np.int64)"));
  }
  check_order(kArray, h, "t");
  check_rows(kArray, h, b.rows);
  b.time_ns = copy_items<std::int64_t>(take_data(in, kArray, b.rows, 8, h));
}

void check_sample_shape(const std::vector<std::int64_t>& shape) {
  if (shape.empty() || shape.size() > 4) {
    fail("features", "sample shape " + npy::shape_text(shape) + " is not of rank 1 to 4");
  }
  for (const std::int64_t d : shape) {
    if (d <= 0) fail("features", "sample shape " + npy::shape_text(shape) + " has a dimension < 1");
  }
}

// The rules on values that every batch keeps, decoded or built in memory.
void check_values(const SampleBatchData& b) {
  const std::size_t dims = b.dims();
  for (std::size_t i = 0; i < b.features.size(); ++i) {
    if (!std::isfinite(b.features[i])) {
      fail("features", "row " + std::to_string(i / dims) + ", feature " + std::to_string(i % dims) +
                           " is " + (std::isnan(b.features[i]) ? "NaN" : "infinite") +
                           "; every value must be finite");
    }
  }
  for (std::size_t i = 0; i < b.labels.size(); ++i) {
    if (b.labels[i] < 0 || b.labels[i] >= kLabelLimit) {
      fail("labels", label_range_error(i, std::to_string(b.labels[i])));
    }
  }
  for (std::size_t i = 0; i < b.time_ns.size(); ++i) {
    if (b.time_ns[i] < 0) {
      fail("timestamps", "row " + std::to_string(i) + " (" + std::to_string(b.time_ns[i]) +
                             ") is negative; send Unix nanoseconds");
    }
    if (i > 0 && b.time_ns[i] < b.time_ns[i - 1]) {
      fail("timestamps", "row " + std::to_string(i) + " (" + std::to_string(b.time_ns[i]) +
                             ") is before row " + std::to_string(i - 1) + " (" +
                             std::to_string(b.time_ns[i - 1]) + ")");
    }
  }
}

void check_sizes(const SampleBatchData& b) {
  check_sample_shape(b.sample_shape);
  if (b.rows == 0) fail("features", "no rows");
  if (b.features.size() / b.dims() != b.rows || b.features.size() % b.dims() != 0) {
    fail("features", std::to_string(b.features.size()) + " values are not " +
                         std::to_string(b.rows) + " rows of " + std::to_string(b.dims()));
  }
  if (b.labels.size() != b.rows) {
    fail("labels",
         std::to_string(b.labels.size()) + " values for " + std::to_string(b.rows) + " rows");
  }
  if (b.time_ns.size() != b.rows) {
    fail("timestamps",
         std::to_string(b.time_ns.size()) + " values for " + std::to_string(b.rows) + " rows");
  }
}

template <class T>
void append_bytes(std::string& out, const std::vector<T>& values) {
  out.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

}  // namespace

std::size_t SampleBatchData::dims() const {
  std::size_t n = 1;
  for (const std::int64_t d : sample_shape)
    n *= static_cast<std::size_t>(d);
  return n;
}

plugin::SampleBatch SampleBatchData::view() const {
  return {std::span<const float>(features), rows, dims(), std::span<const std::int64_t>(time_ns),
          std::span<const std::int64_t>(labels)};
}

SampleBatchData decode_batch(std::string_view body, const BatchLimits& limits) {
  if (body.size() > limits.max_bytes) {
    fail("body", std::to_string(body.size()) + " bytes is more than the limit of " +
                     std::to_string(limits.max_bytes));
  }
  SampleBatchData b;
  read_features(body, limits, b);
  read_labels(body, b);
  read_timestamps(body, b);
  if (!body.empty()) {
    fail("body", std::to_string(body.size()) +
                     " bytes follow the third array (timestamps); send exactly x, y and t");
  }
  check_values(b);
  return b;
}

std::string encode_batch(const SampleBatchData& batch) {
  check_sizes(batch);
  check_values(batch);
  std::vector<std::int64_t> x_shape{static_cast<std::int64_t>(batch.rows)};
  x_shape.insert(x_shape.end(), batch.sample_shape.begin(), batch.sample_shape.end());
  const std::vector<std::int64_t> row_shape{static_cast<std::int64_t>(batch.rows)};
  const std::string x_header = npy::write_header("<f4", x_shape);
  const std::string row_header = npy::write_header("<i8", row_shape);
  // Sized once: a batch is megabytes, and growing the string would copy it several times.
  std::string out;
  out.reserve(x_header.size() + 2 * row_header.size() + batch.features.size() * sizeof(float) +
              (batch.labels.size() + batch.time_ns.size()) * sizeof(std::int64_t));
  out += x_header;
  append_bytes(out, batch.features);
  out += row_header;
  append_bytes(out, batch.labels);
  out += row_header;
  append_bytes(out, batch.time_ns);
  return out;
}

SampleBatchData concatenate(const std::vector<SampleBatchData>& parts) {
  SampleBatchData out;
  if (parts.empty()) return out;
  out.sample_shape = parts.front().sample_shape;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const SampleBatchData& p = parts[i];
    if (p.sample_shape != out.sample_shape) {
      fail("features", "part " + std::to_string(i) + " has sample shape " +
                           npy::shape_text(p.sample_shape) + ", part 0 has " +
                           npy::shape_text(out.sample_shape));
    }
    if (!p.time_ns.empty() && !out.time_ns.empty() && p.time_ns.front() < out.time_ns.back()) {
      fail("timestamps", "part " + std::to_string(i) + " starts at " +
                             std::to_string(p.time_ns.front()) +
                             ", before the last timestamp of the parts before it (" +
                             std::to_string(out.time_ns.back()) + ")");
    }
    out.rows += p.rows;
    out.features.insert(out.features.end(), p.features.begin(), p.features.end());
    out.labels.insert(out.labels.end(), p.labels.begin(), p.labels.end());
    out.time_ns.insert(out.time_ns.end(), p.time_ns.begin(), p.time_ns.end());
  }
  return out;
}

}  // namespace tv::fleet::pipelines
