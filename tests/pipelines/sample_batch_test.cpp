// The stream codec: its canonical bytes against np.save's, NumPy's own files decoded, and every
// class of bad body refused with a message that names the array and the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "numpy_script.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::fleet::pipelines {
namespace {

using test::run_numpy;

// rows samples of `shape`: features i * 0.5 - 3, labels i % 10, time 1000 + 10 * row.
SampleBatchData make_batch(std::size_t rows, std::vector<std::int64_t> shape) {
  SampleBatchData b;
  b.sample_shape = std::move(shape);
  b.rows = rows;
  for (std::size_t i = 0; i < rows * b.dims(); ++i)
    b.features.push_back(static_cast<float>(i) * 0.5f - 3.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    b.labels.push_back(static_cast<std::int64_t>(r % 10));
    b.time_ns.push_back(1000 + 10 * static_cast<std::int64_t>(r));
  }
  return b;
}

// One .npy array as np.save writes it at format 1.0, but with any header text, for the bodies
// NumPy would not write.
std::string npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  while ((10 + header.size() + 1) % 64 != 0)
    header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

std::string dict(const std::string& descr, const std::string& shape, bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape + ", }";
}

template <class T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A valid body of 3 rows of 2 features with the given labels and times arrays swapped in.
std::string body(const std::string& x, const std::string& y, const std::string& t) {
  return x + y + t;
}
const std::string kX = npy(dict("<f4", "(3, 2)"), raw(std::vector<float>{1, 2, 3, 4, 5, 6}));
const std::string kY = npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{0, 1, 2}));
const std::string kT = npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{10, 20, 30}));

std::string refusal(std::string_view bytes, const BatchLimits& limits = {}) {
  try {
    decode_batch(bytes, limits);
  } catch (const BatchError& e) {
    return e.what();
  }
  return "accepted";
}

// Refused with a message that contains `text`.
::testing::AssertionResult refused(std::string_view bytes, const std::string& text,
                                   const BatchLimits& limits = {}) {
  const std::string why = refusal(bytes, limits);
  if (why.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "refused with: " << why;
}

TEST(SampleBatchTest, RoundTripsThroughTheCanonicalEncoding) {
  for (const auto& shape :
       std::vector<std::vector<std::int64_t>>{{784}, {1, 28, 28}, {2, 3, 4, 5}, {1}}) {
    const SampleBatchData b = make_batch(7, shape);
    EXPECT_EQ(decode_batch(encode_batch(b)), b);
  }
}

TEST(SampleBatchTest, TheCanonicalEncodingIsWhatNpSaveWrites) {
  const SampleBatchData b = make_batch(12, {1, 28, 28});
  const std::string numpy = run_numpy(
      "n = 12\n"
      "x = (np.arange(n * 784, dtype=np.float32) * np.float32(0.5) - np.float32(3))"
      ".reshape(n, 1, 28, 28)\n"
      "y = np.arange(n, dtype=np.int64) % 10\n"
      "t = 1000 + 10 * np.arange(n, dtype=np.int64)\n"
      "with open(out, 'wb') as f:\n"
      "    np.save(f, x); np.save(f, y); np.save(f, t)\n");
  EXPECT_EQ(encode_batch(b), numpy);
}

TEST(SampleBatchTest, NpLoadReadsTheCanonicalEncoding) {
  const SampleBatchData b = make_batch(3, {2, 2});
  test::TempDir dir;
  const std::string path = dir.file("batch.bin");
  std::ofstream(path, std::ios::binary) << encode_batch(b);
  const std::string seen = run_numpy(
      "f = open(arg, 'rb')\n"
      "x, y, t = np.load(f), np.load(f), np.load(f)\n"
      "assert f.read() == b''\n"
      "open(out, 'w').write(f'{x.shape} {x.dtype} {x[2,1,1]} {list(y)} {list(t)}')\n",
      path);
  EXPECT_EQ(seen, "(3, 2, 2) float32 2.5 [0, 1, 2] [1000, 1010, 1020]");
}

TEST(SampleBatchTest, DecodesWhatNumpyWritesInEveryAcceptedForm) {
  // Labels of every accepted dtype, datetime64[ns] times, format versions 1.0, 2.0 and 3.0.
  const std::string bodies = run_numpy(
      "from numpy.lib import format as F\n"
      "x = np.array([[0.5, -1.0, 2.0], [3.0, 4.0, 1e-3]], dtype=np.float32)\n"
      "t = np.array(['2024-01-01T00:00:00', '2024-01-01T00:00:01'], dtype='datetime64[ns]')\n"
      "res = io.BytesIO()\n"
      "for i, dt in enumerate(['<i8','<i4','<i2','|i1','<u8','<u4','<u2','|u1']):\n"
      "    f = io.BytesIO()\n"
      "    v = [(1, 0), (2, 0), (3, 0)][i % 3]\n"
      "    F.write_array(f, x, version=v)\n"
      "    F.write_array(f, np.array([7, 200 % 128], dtype=dt), version=v)\n"
      "    F.write_array(f, t, version=v)\n"
      "    b = f.getvalue()\n"
      "    res.write(len(b).to_bytes(4, 'little') + b)\n"
      "open(out, 'wb').write(res.getvalue())\n");
  std::size_t pos = 0, seen = 0;
  while (pos + 4 <= bodies.size()) {
    std::uint32_t n = 0;
    std::memcpy(&n, bodies.data() + pos, 4);
    const SampleBatchData b = decode_batch(std::string_view(bodies).substr(pos + 4, n));
    pos += 4 + n;
    ++seen;
    EXPECT_EQ(b.sample_shape, (std::vector<std::int64_t>{3}));
    EXPECT_EQ(b.rows, 2u);
    EXPECT_EQ(b.features, (std::vector<float>{0.5f, -1.0f, 2.0f, 3.0f, 4.0f, 1e-3f}));
    EXPECT_EQ(b.labels, (std::vector<std::int64_t>{7, 72}));
    EXPECT_EQ(b.time_ns, (std::vector<std::int64_t>{1704067200000000000, 1704067201000000000}));
  }
  EXPECT_EQ(seen, 8u);
}

TEST(SampleBatchTest, ViewSpansTheBatch) {
  const SampleBatchData b = make_batch(4, {3, 2});
  const plugin::SampleBatch v = b.view();
  EXPECT_EQ(v.rows, 4u);
  EXPECT_EQ(v.dims, 6u);
  EXPECT_EQ(v.features.data(), b.features.data());
  EXPECT_EQ(v.features.size(), 24u);
  EXPECT_EQ(v.labels.data(), b.labels.data());
  EXPECT_EQ(v.time_ns.size(), 4u);
}

TEST(SampleBatchTest, HandMadeBodiesDecode) {
  const SampleBatchData b = decode_batch(body(kX, kY, kT));
  EXPECT_EQ(b.rows, 3u);
  EXPECT_EQ(b.features[5], 6.0f);
  EXPECT_EQ(b.time_ns[2], 30);
}

TEST(SampleBatchTest, EveryTruncationIsRefused) {
  const std::string full = encode_batch(make_batch(3, {4}));
  for (std::size_t n = 0; n < full.size(); ++n) {
    const std::string why = refusal(std::string_view(full).substr(0, n));
    EXPECT_NE(why, "accepted") << n;
  }
  EXPECT_TRUE(refused(full.substr(0, full.size() - 1), "timestamps: truncated"));
  EXPECT_TRUE(refused("", "features: missing"));
  EXPECT_TRUE(refused(kX + kY, "timestamps: missing"));
  EXPECT_TRUE(refused(kX + kY + "\x93NUM", "timestamps: truncated in the .npy magic"));
}

TEST(SampleBatchTest, TrailingBytesAreRefused) {
  EXPECT_TRUE(refused(body(kX, kY, kT) + "x", "body: 1 bytes follow the third array (timestamps)"));
  EXPECT_TRUE(refused(body(kX, kY, kT) + kT, "follow the third array"));
}

TEST(SampleBatchTest, DtypesAreNamedWithTheConversionToSend) {
  const std::string x8 = npy(dict("<f8", "(3, 2)"), raw(std::vector<double>(6, 1.0)));
  EXPECT_EQ(refusal(body(x8, kY, kT)),
            "features: dtype '<f8' is not float32 ('<f4'); send x.astype(np.float32)");
  const std::string xbe = npy(dict(">f4", "(3, 2)"), raw(std::vector<float>(6, 1.0f)));
  EXPECT_EQ(refusal(body(xbe, kY, kT)),
            "features: dtype '>f4' is big-endian; send x.astype('<f4')");
  const std::string yf = npy(dict("<f4", "(3,)"), raw(std::vector<float>(3, 1.0f)));
  EXPECT_TRUE(refused(body(kX, yf, kT), "labels: dtype '<f4' is not an integer type"));
  EXPECT_TRUE(refused(body(kX, yf, kT), "send y.astype(np.int64)"));
  const std::string ybe = npy(dict(">i8", "(3,)"), raw(std::vector<std::int64_t>(3, 0)));
  EXPECT_TRUE(refused(body(kX, ybe, kT), "labels: dtype '>i8' is big-endian"));
  const std::string tus = npy(dict("<M8[us]", "(3,)"), raw(std::vector<std::int64_t>(3, 0)));
  EXPECT_TRUE(
      refused(body(kX, kY, tus), "timestamps: dtype '<M8[us]' is not int64 Unix nanoseconds"));
}

TEST(SampleBatchTest, FortranOrderIsRefused) {
  const std::string xf = npy(dict("<f4", "(3, 2)", true), raw(std::vector<float>(6, 1.0f)));
  EXPECT_EQ(refusal(body(xf, kY, kT)),
            "features: array is in Fortran order; send np.ascontiguousarray(x)");
}

TEST(SampleBatchTest, ShapesMustAgreeAndBeSamples) {
  const std::string y4 = npy(dict("<i8", "(4,)"), raw(std::vector<std::int64_t>(4, 0)));
  EXPECT_TRUE(refused(body(kX, y4, kT),
                      "labels: shape (4,) does not match the 3 rows of features; expected (3,)"));
  const std::string t2 = npy(dict("<i8", "(3, 1)"), raw(std::vector<std::int64_t>(3, 0)));
  EXPECT_TRUE(refused(body(kX, kY, t2), "timestamps: shape (3, 1) does not match"));
  const std::string x1 = npy(dict("<f4", "(3,)"), raw(std::vector<float>(3, 1.0f)));
  EXPECT_TRUE(refused(body(x1, kY, kT), "features: shape (3,) is not (rows, *sample_shape)"));
  const std::string x6 = npy(dict("<f4", "(3, 1, 1, 1, 1, 2)"), raw(std::vector<float>(6, 1)));
  EXPECT_TRUE(refused(body(x6, kY, kT), "with a sample of rank 1 to 4"));
  const std::string x0 = npy(dict("<f4", "(0, 2)"), "");
  EXPECT_TRUE(refused(body(x0, kY, kT), "features: shape (0, 2) has no rows"));
  const std::string xz = npy(dict("<f4", "(3, 0)"), "");
  EXPECT_TRUE(refused(body(xz, kY, kT), "has a sample dimension of 0"));
}

TEST(SampleBatchTest, SizesPastTheLimitsAreRefusedBeforeAllocating) {
  // 2^62 * 2^62 features: the product overflows; refused without touching the data.
  const std::string huge = npy(dict("<f4", "(2, 4611686018427387904, 4611686018427387904)"), "");
  EXPECT_TRUE(refused(body(huge, kY, kT), "features: a sample of shape"));
  const std::string many = npy(dict("<f4", "(4611686018427387904, 1)"), "");
  EXPECT_TRUE(refused(body(many, kY, kT), "rows is more than the limit of 1048576"));
  const std::string tall = npy(dict("<f4", "(1000, 2)"), raw(std::vector<float>(6, 1.0f)));
  EXPECT_TRUE(
      refused(body(tall, kY, kT), "features: truncated: shape (1000, 2) of '<f4' needs 8000"));
  EXPECT_TRUE(refused(npy(dict("<f4", "(99999999999999999999, 1)"), ""), "dimension past 2^62"));
  const std::string ok = body(kX, kY, kT);
  EXPECT_EQ(refusal(ok, {.max_bytes = ok.size() - 1}), "body: " + std::to_string(ok.size()) +
                                                           " bytes is more than the limit of " +
                                                           std::to_string(ok.size() - 1));
  EXPECT_TRUE(refused(ok, "features: 3 rows is more than the limit of 2", {.max_rows = 2}));
  EXPECT_TRUE(refused(ok, "has more than the limit of 1 features", {.max_dims = 1}));
}

TEST(SampleBatchTest, HeadersThatAreNotNumpysAreRefused) {
  EXPECT_TRUE(refused(std::string("NUMPY\x01\x00", 7) + kY + kT, "features: not a .npy array"));
  std::string v4 = kX;
  v4[6] = 4;
  EXPECT_TRUE(
      refused(body(v4, kY, kT), "features: .npy format version 4.0 is not 1.0, 2.0 or 3.0"));
  const std::string extra =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'foo': 1}",
          raw(std::vector<float>(6)));
  EXPECT_TRUE(refused(body(extra, kY, kT), "features: .npy header has an unknown key 'foo'"));
  const std::string twice =
      npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, "
          "'shape': (3, 2)}",
          raw(std::vector<float>(6)));
  EXPECT_TRUE(refused(body(twice, kY, kT), "repeats the key 'descr'"));
  const std::string no_shape = npy("{'descr': '<f4', 'fortran_order': False}", "");
  EXPECT_TRUE(refused(body(no_shape, kY, kT), "has no 'shape'"));
  const std::string structured =
      npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}", "");
  EXPECT_TRUE(refused(body(structured, kY, kT), "structured dtype"));
  const std::string not_tuple = npy(dict("<i8", "(3)"), raw(std::vector<std::int64_t>(3)));
  EXPECT_TRUE(refused(body(kX, not_tuple, kT), "labels: .npy header 'shape' (n) is not a tuple"));
  const std::string negative = npy(dict("<f4", "(-3, 2)"), "");
  EXPECT_TRUE(refused(body(negative, kY, kT), "non-negative integer"));
  std::string long_header = kX;
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  EXPECT_TRUE(refused(body(long_header, kY, kT), "header of 32767 bytes is longer than 10000"));
}

TEST(SampleBatchTest, ValuesAreChecked) {
  const auto x_with = [](float v) {
    std::vector<float> xs{1, 2, 3, 4, 5, 6};
    xs[3] = v;
    return npy(dict("<f4", "(3, 2)"), raw(xs));
  };
  EXPECT_EQ(refusal(body(x_with(std::nanf("")), kY, kT)),
            "features: row 1, feature 1 is NaN; every value must be finite");
  EXPECT_TRUE(refused(body(x_with(std::numeric_limits<float>::infinity()), kY, kT),
                      "features: row 1, feature 1 is infinite"));
  const std::string yneg = npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{0, -1, 2}));
  EXPECT_EQ(refusal(body(kX, yneg, kT)), "labels: row 1 (-1) is not in [0, 2^31)");
  const std::string ybig =
      npy(dict("<u8", "(3,)"), raw(std::vector<std::uint64_t>{0, 1, 1ull << 63}));
  EXPECT_TRUE(
      refused(body(kX, ybig, kT), "labels: row 2 (9223372036854775808) is not in [0, 2^31)"));
  const std::string y31 = npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{0, 1, 1ll << 31}));
  EXPECT_TRUE(refused(body(kX, y31, kT), "labels: row 2 (2147483648) is not in [0, 2^31)"));
  const std::string back =
      npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{
                                   1700000000000000000, 1700000000000000001, 1699999999999999999}));
  EXPECT_EQ(refusal(body(kX, kY, back)),
            "timestamps: row 2 (1699999999999999999) is before row 1 (1700000000000000001)");
  const std::string before_1970 =
      npy(dict("<i8", "(3,)"), raw(std::vector<std::int64_t>{-5, 0, 1}));
  EXPECT_TRUE(refused(body(kX, kY, before_1970), "timestamps: row 0 (-5) is negative"));
}

TEST(SampleBatchTest, EncodeRefusesWhatDecodeWould) {
  SampleBatchData b = make_batch(3, {2});
  b.features[1] = std::nanf("");
  EXPECT_THROW(encode_batch(b), BatchError);
  b = make_batch(3, {2});
  b.labels.pop_back();
  EXPECT_THROW(encode_batch(b), BatchError);
  b = make_batch(3, {2});
  b.sample_shape = {};
  EXPECT_THROW(encode_batch(b), BatchError);
  EXPECT_THROW(encode_batch(SampleBatchData{}), BatchError);
}

TEST(SampleBatchTest, ConcatenateJoinsPartsInOrder) {
  const SampleBatchData a = make_batch(2, {3});
  SampleBatchData b = make_batch(3, {3});
  for (auto& t : b.time_ns)
    t += 100;
  const SampleBatchData c = concatenate({a, b});
  EXPECT_EQ(c.rows, 5u);
  EXPECT_EQ(c.sample_shape, a.sample_shape);
  EXPECT_EQ(c.features.size(), 15u);
  EXPECT_EQ(c.time_ns.back(), b.time_ns.back());
  EXPECT_EQ(c.labels[2], b.labels[0]);
  EXPECT_EQ(decode_batch(encode_batch(c)), c);
  EXPECT_EQ(concatenate({}).rows, 0u);
}

TEST(SampleBatchTest, ConcatenateRefusesOtherShapesAndTimeGoingBack) {
  const SampleBatchData a = make_batch(2, {3});
  try {
    concatenate({a, make_batch(2, {1, 3})});
    ADD_FAILURE() << "joined";
  } catch (const BatchError& e) {
    EXPECT_STREQ(e.what(), "features: part 1 has sample shape (1, 3), part 0 has (3,)");
  }
  try {
    concatenate({a, make_batch(2, {3})});
    ADD_FAILURE() << "joined";
  } catch (const BatchError& e) {
    EXPECT_NE(std::string(e.what()).find("timestamps: part 1 starts at 1000"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tv::fleet::pipelines
