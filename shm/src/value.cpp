#include "trainvisor/shm/value.hpp"

#include <charconv>
#include <string>

namespace tv::shm {

std::string_view type_name(ValueType type) noexcept {
  switch (type) {
    case ValueType::kNone:
      return "none";
    case ValueType::kFloat64:
      return "float64";
    case ValueType::kInt64:
      return "int64";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
  }
  return "unknown";
}

Value Value::string(std::string_view v) {
  if (v.size() > kMaxStringBytes) {
    throw ShmError("string value of " + std::to_string(v.size()) + " bytes is too long (limit " +
                   std::to_string(kMaxStringBytes) + "): '" + std::string(v.substr(0, 24)) +
                   "...'");
  }
  Value out(ValueType::kString, 0);
  out.str_len_ = static_cast<std::uint8_t>(v.size());
  std::memcpy(out.str_, v.data(), v.size());
  return out;
}

std::string Value::to_string() const {
  switch (type_) {
    case ValueType::kNone:
      return "none";
    case ValueType::kFloat64: {
      // Shortest text that reads back as the same double.
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, as_f64());
      return std::string(buf, r.ptr);
    }
    case ValueType::kInt64:
      return std::to_string(as_i64());
    case ValueType::kBool:
      return as_bool() ? "true" : "false";
    case ValueType::kString:
      return "\"" + std::string(as_string()) + "\"";
  }
  return "unknown";
}

bool operator==(const Value& a, const Value& b) noexcept {
  if (a.type_ != b.type_) return false;
  if (a.type_ == ValueType::kString) return a.as_string() == b.as_string();
  return a.bits_ == b.bits_;
}

}  // namespace tv::shm
