#include "trainvisor/fleet/api/checked.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

#include "trainvisor/fleet/names.hpp"

namespace tv::fleet::api {

using nlohmann::json;

namespace {

std::string field_name(std::string_view prefix, const char* key) {
  return prefix.empty() ? std::string(key) : std::string(prefix) + "." + key;
}

[[noreturn]] void refuse(std::string_view field, const std::string& why) {
  throw std::invalid_argument(std::string(field) + ": " + why);
}

std::string kind_of(const json& v) {
  if (v.is_number_float()) return "a float";
  if (v.is_number()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a bool";
  if (v.is_null()) return "null";
  return v.is_array() ? "an array" : "an object";
}

// A number as the request spelt it, near enough: JSON has no inf, which a parser may still
// produce from 1e999.
std::string number_text(const json& v) {
  if (v.is_number_float() && !std::isfinite(v.get<double>())) {
    const double d = v.get<double>();
    return std::isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
  }
  return v.dump();
}

template <class T>
std::string range_text(T lo, T hi) {
  return "(" + std::to_string(lo) + ".." + std::to_string(hi) + ")";
}

// The value of `v` when it is an integer, or a float with no fraction, in the int64 or uint64
// range; the float for any other number. `negative` says which of the two integers holds it.
struct Integer {
  bool negative = false;
  std::uint64_t magnitude = 0;
};

Integer integer_of(const json& v, std::string_view field, const std::string& range) {
  if (v.is_number_unsigned()) return {false, v.get<std::uint64_t>()};
  if (v.is_number_integer()) {
    const std::int64_t i = v.get<std::int64_t>();
    return {i < 0, i < 0 ? std::uint64_t(-(i + 1)) + 1 : std::uint64_t(i)};
  }
  if (!v.is_number_float()) refuse(field, "must be an integer, got " + kind_of(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || std::trunc(d) != d) {
    if (!std::isfinite(d)) refuse(field, number_text(v) + " is out of range " + range);
    refuse(field, number_text(v) + " is not an integer");
  }
  // 2^64 and beyond, or below -2^63: out of every integer field's range.
  if (d >= 18446744073709551616.0 || d < -9223372036854775808.0)
    refuse(field, number_text(v) + " is out of range " + range);
  if (d < 0) return {true, std::uint64_t(-(d + 1)) + 1};
  return {false, std::uint64_t(d)};
}

std::string checked_string(const json& v, std::string_view field, std::size_t max_bytes) {
  if (!v.is_string()) refuse(field, "must be a string, got " + kind_of(v));
  const auto& s = v.get_ref<const std::string&>();
  if (s.size() > max_bytes)
    refuse(field, std::to_string(s.size()) + " bytes is over the limit of " +
                      std::to_string(max_bytes) + " bytes");
  return s;
}

}  // namespace

std::int64_t checked_int(const json& v, std::string_view field, std::int64_t lo, std::int64_t hi) {
  const std::string range = range_text(lo, hi);
  const Integer i = integer_of(v, field, range);
  const auto out = [&] { refuse(field, number_text(v) + " is out of range " + range); };
  if (i.negative) {
    if (lo >= 0 || i.magnitude > std::uint64_t(-(lo + 1)) + 1) out();
    return i.magnitude == std::uint64_t(1) << 63 ? std::numeric_limits<std::int64_t>::min()
                                                 : -std::int64_t(i.magnitude);
  }
  if (hi < 0 || i.magnitude > std::uint64_t(hi) || std::int64_t(i.magnitude) < lo) out();
  return std::int64_t(i.magnitude);
}

std::uint64_t checked_uint(const json& v, std::string_view field, std::uint64_t lo,
                           std::uint64_t hi) {
  const std::string range = range_text(lo, hi);
  const Integer i = integer_of(v, field, range);
  if (i.negative || i.magnitude < lo || i.magnitude > hi)
    refuse(field, number_text(v) + " is out of range " + range);
  return i.magnitude;
}

double checked_double(const json& v, std::string_view field, double lo, double hi) {
  if (!v.is_number()) refuse(field, "must be a number, got " + kind_of(v));
  const double d = v.get<double>();
  if (!std::isfinite(d) || d < lo || d > hi) {
    std::string range = "(" + json(lo).dump() + ".." + json(hi).dump() + ")";
    refuse(field, number_text(v) + " is out of range " + range);
  }
  return d;
}

std::int64_t int_field(const json& j, std::string_view prefix, const char* key, std::int64_t dflt,
                       std::int64_t lo, std::int64_t hi) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return checked_int(*it, field_name(prefix, key), lo, hi);
}

std::uint64_t uint_field(const json& j, std::string_view prefix, const char* key,
                         std::uint64_t dflt, std::uint64_t lo, std::uint64_t hi) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return checked_uint(*it, field_name(prefix, key), lo, hi);
}

double double_field(const json& j, std::string_view prefix, const char* key, double dflt, double lo,
                    double hi) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return checked_double(*it, field_name(prefix, key), lo, hi);
}

bool bool_field(const json& j, std::string_view prefix, const char* key, bool dflt) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  if (!it->is_boolean()) refuse(field_name(prefix, key), "must be a bool, got " + kind_of(*it));
  return it->get<bool>();
}

std::string text_field(const json& j, std::string_view prefix, const char* key,
                       std::size_t max_bytes, const std::string& dflt) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return checked_string(*it, field_name(prefix, key), max_bytes);
}

std::string name_field(const json& j, std::string_view prefix, const char* key) {
  const std::string field = field_name(prefix, key);
  const auto it = j.find(key);
  if (it == j.end() || it->is_null() || *it == "")
    throw std::invalid_argument("missing field '" + field + "' (a non-empty string)");
  std::string name = checked_string(*it, field, kMaxHostNameBytes);
  if (!valid_host_name(name))
    refuse(field, "is not a valid host name (1.." + std::to_string(kMaxHostNameBytes) +
                      " of letters, digits, '.', '_', '-'; not starting with '.' or '-')");
  return name;
}

std::string bounded_text(std::string text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  static constexpr std::string_view kCut = "...[cut]";
  std::size_t keep = max_bytes > kCut.size() ? max_bytes - kCut.size() : 0;
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80)
    --keep;  // not inside a UTF-8 sequence
  text.resize(keep);
  if (keep + kCut.size() <= max_bytes) text += kCut;
  return text;
}

bool point_in_range(const plugin::TelemetryPoint& p) {
  // A non-finite metric is sent as null (unknown), not refused.
  return p.step <= kMaxStored && p.config_revision <= kMaxStored && p.wall_time_ns >= 0;
}

std::uint64_t checked_param(std::string_view text, std::string_view key, std::uint64_t lo,
                            std::uint64_t hi) {
  const std::string field = "query parameter '" + std::string(key) + "'";
  const std::string range = range_text(lo, hi);
  std::uint64_t v = 0;
  const char* end = text.data() + text.size();
  const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (!digits || (ec != std::errc() && ec != std::errc::result_out_of_range) || p != end)
    refuse(field, "'" + std::string(text.substr(0, 64)) + "' is not a whole number " + range);
  if (ec == std::errc::result_out_of_range || v < lo || v > hi)
    refuse(field, std::string(text.substr(0, 64)) + " is out of range " + range);
  return v;
}

}  // namespace tv::fleet::api
