// Typed config values as they live in a block, and the error type of the shm module.
//
// Value is trivially copyable and never allocates, so the read path can return and keep copies
// of it freely. Strings are short by design (kMaxStringBytes): the block carries knobs, not text.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

#include "trainvisor/shm/layout.hpp"

namespace tv::shm {

// Every failure of the shm module outside the hot path: attach, resolve, write, repair. The
// message names the block or key and the reason.
class ShmError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string_view type_name(ValueType type) noexcept;

class Value {
 public:
  Value() = default;
  static Value f64(double v) noexcept {
    return Value(ValueType::kFloat64, std::bit_cast<std::uint64_t>(v));
  }
  static Value i64(std::int64_t v) noexcept {
    return Value(ValueType::kInt64, std::bit_cast<std::uint64_t>(v));
  }
  static Value boolean(bool v) noexcept { return Value(ValueType::kBool, v ? 1 : 0); }
  // Throws ShmError when `v` is longer than kMaxStringBytes.
  static Value string(std::string_view v);

  ValueType type() const noexcept { return type_; }
  double as_f64() const noexcept { return std::bit_cast<double>(bits_); }
  std::int64_t as_i64() const noexcept { return std::bit_cast<std::int64_t>(bits_); }
  bool as_bool() const noexcept { return bits_ != 0; }
  std::string_view as_string() const noexcept { return {str_, str_len_}; }

  // Human-readable rendering ("0.001", "42", "true", "\"adamw\""), for CLIs and errors.
  std::string to_string() const;

  friend bool operator==(const Value& a, const Value& b) noexcept;

 private:
  friend class ConfigBlockWriter;
  friend class SlotCodec;
  Value(ValueType type, std::uint64_t bits) noexcept : type_(type), bits_(bits) {}

  ValueType type_ = ValueType::kNone;
  std::uint8_t str_len_ = 0;
  std::uint64_t bits_ = 0;
  char str_[kMaxStringBytes] = {};
};

// A fixed-capacity string read from a block; what Handle<ShortString>::get returns.
struct ShortString {
  std::uint8_t size = 0;
  char data[kMaxStringBytes] = {};
  std::string_view view() const noexcept { return {data, size}; }
};

}  // namespace tv::shm
