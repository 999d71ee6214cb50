#include "npy_format.hpp"

#include <cstring>

#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::fleet::pipelines::npy {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr std::size_t kAlign = 64;
// NumPy leaves room in every header for the first axis to grow to this many digits.
constexpr std::size_t kGrowthDigits = 21;
// np.load refuses headers past 10000 bytes unless told otherwise; ours are far smaller.
constexpr std::size_t kMaxHeader = 10000;
constexpr std::int64_t kMaxDimension = std::int64_t{1} << 62;

// A cursor over the header's dict literal. Every read checks the end first.
class DictReader {
 public:
  DictReader(std::string_view text, std::string_view array) : text_(text), array_(array) {}

  Header read();

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw BatchError(std::string(array_) + ": .npy header " + why + " (at header byte " +
                     std::to_string(pos_) + ")");
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r'))
      ++pos_;
  }
  bool peek(char c) {
    skip_space();
    return pos_ < text_.size() && text_[pos_] == c;
  }
  void expect(char c) {
    if (!peek(c)) fail(std::string("expected '") + c + "'");
    ++pos_;
  }
  std::string read_string();
  bool read_bool();
  std::int64_t read_dimension();
  std::vector<std::int64_t> read_shape();

  std::string_view text_;
  std::string_view array_;
  std::size_t pos_ = 0;
};

std::string DictReader::read_string() {
  skip_space();
  if (pos_ >= text_.size() || (text_[pos_] != '\'' && text_[pos_] != '"'))
    fail("expected a quoted string");
  const char quote = text_[pos_++];
  const std::size_t end = text_.find(quote, pos_);
  if (end == std::string_view::npos) fail("has an unterminated string");
  const std::string_view s = text_.substr(pos_, end - pos_);
  if (s.find('\\') != std::string_view::npos) fail("has an escape in a string");
  pos_ = end + 1;
  return std::string(s);
}

bool DictReader::read_bool() {
  skip_space();
  for (const auto& [word, value] :
       {std::pair{std::string_view("True"), true}, std::pair{std::string_view("False"), false}}) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      return value;
    }
  }
  fail("'fortran_order' is not True or False");
}

std::int64_t DictReader::read_dimension() {
  skip_space();
  if (pos_ >= text_.size() || text_[pos_] < '0' || text_[pos_] > '9')
    fail("'shape' holds something other than a non-negative integer");
  std::int64_t v = 0;
  while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
    const int digit = text_[pos_++] - '0';
    if (v > (kMaxDimension - digit) / 10) fail("'shape' has a dimension past 2^62");
    v = v * 10 + digit;
  }
  return v;
}

std::vector<std::int64_t> DictReader::read_shape() {
  expect('(');
  std::vector<std::int64_t> shape;
  bool comma_after_last = false;
  while (!peek(')')) {
    if (shape.size() >= 32) fail("'shape' has more than 32 dimensions");
    shape.push_back(read_dimension());
    comma_after_last = peek(',');
    if (comma_after_last) {
      ++pos_;
    } else if (!peek(')')) {
      fail("'shape' is not a tuple of integers");
    }
  }
  ++pos_;
  // "(3)" is the integer 3 to Python, not a tuple: np.load refuses it too.
  if (shape.size() == 1 && !comma_after_last) fail("'shape' (n) is not a tuple; write (n,)");
  return shape;
}

Header DictReader::read() {
  Header h;
  bool seen[3] = {false, false, false};
  expect('{');
  while (!peek('}')) {
    const std::string key = read_string();
    expect(':');
    int which = -1;
    if (key == "descr") {
      which = 0;
      if (peek('[')) fail("'descr' is a structured dtype; send plain arrays");
      h.descr = read_string();
    } else if (key == "fortran_order") {
      which = 1;
      h.fortran_order = read_bool();
    } else if (key == "shape") {
      which = 2;
      h.shape = read_shape();
    } else {
      fail("has an unknown key '" + key + "'");
    }
    if (seen[which]) fail("repeats the key '" + key + "'");
    seen[which] = true;
    if (peek(',')) {
      ++pos_;
    } else if (!peek('}')) {
      fail("expected ',' or '}'");
    }
  }
  ++pos_;
  skip_space();
  if (pos_ != text_.size()) fail("has text after the dict");
  static constexpr const char* kKeys[] = {"descr", "fortran_order", "shape"};
  for (int i = 0; i < 3; ++i) {
    if (!seen[i]) fail(std::string("has no '") + kKeys[i] + "'");
  }
  return h;
}

std::uint32_t little_endian(std::string_view bytes) {
  std::uint32_t v = 0;
  for (std::size_t i = bytes.size(); i-- > 0;)
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

}  // namespace

Header read_header(std::string_view& in, std::string_view array) {
  const std::string name(array);
  if (in.empty()) throw BatchError(name + ": missing; the body ends before this array");
  if (in.size() < kMagic.size() + 2 && kMagic.substr(0, in.size()) == in.substr(0, kMagic.size()))
    throw BatchError(name + ": truncated in the .npy magic and version");
  if (in.size() < kMagic.size() + 2 || in.substr(0, kMagic.size()) != kMagic)
    throw BatchError(name + ": not a .npy array (no \\x93NUMPY magic); write it with np.save");
  const auto major = static_cast<unsigned char>(in[kMagic.size()]);
  const auto minor = static_cast<unsigned char>(in[kMagic.size() + 1]);
  if (minor != 0 || major < 1 || major > 3) {
    throw BatchError(name + ": .npy format version " + std::to_string(major) + "." +
                     std::to_string(minor) + " is not 1.0, 2.0 or 3.0");
  }
  const std::size_t len_size = major == 1 ? 2 : 4;
  const std::size_t prefix = kMagic.size() + 2 + len_size;
  if (in.size() < prefix) throw BatchError(name + ": truncated in the .npy header length");
  const std::size_t header_len = little_endian(in.substr(kMagic.size() + 2, len_size));
  if (header_len > kMaxHeader) {
    throw BatchError(name + ": .npy header of " + std::to_string(header_len) +
                     " bytes is longer than " + std::to_string(kMaxHeader));
  }
  if (in.size() - prefix < header_len) {
    throw BatchError(name + ": truncated: the .npy header declares " + std::to_string(header_len) +
                     " bytes, " + std::to_string(in.size() - prefix) + " remain");
  }
  Header h = DictReader(in.substr(prefix, header_len), array).read();
  in.remove_prefix(prefix + header_len);
  return h;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + (shape.size() == 1 ? ",)" : ")");
}

std::string write_header(std::string_view descr, const std::vector<std::int64_t>& shape) {
  std::string dict = "{'descr': '" + std::string(descr) +
                     "', 'fortran_order': False, 'shape': " + shape_text(shape) + ", }";
  if (!shape.empty()) dict.append(kGrowthDigits - std::to_string(shape[0]).size(), ' ');
  const std::size_t prefix = kMagic.size() + 2 + 2;
  const std::size_t pad = kAlign - (prefix + dict.size() + 1) % kAlign;
  const std::size_t header_len = dict.size() + pad + 1;
  std::string out(kMagic);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_len & 0xff);
  out += static_cast<char>((header_len >> 8) & 0xff);
  out += dict;
  out.append(pad, ' ');
  out += '\n';
  return out;
}

}  // namespace tv::fleet::pipelines::npy
