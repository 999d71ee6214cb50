#include "trainvisor/fleet/api/paths.hpp"

#include <cctype>
#include <stdexcept>

namespace tv::fleet::api {
namespace {

// RFC 3986 unreserved characters pass; everything else is %XX.
void append_encoded(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
}

}  // namespace

std::string target(std::string_view pattern, std::initializer_list<std::string_view> params,
                   const Query& query) {
  std::string out;
  auto next = params.begin();
  std::size_t i = 0;
  while (i < pattern.size()) {
    if (pattern[i] != '{') {
      out += pattern[i++];
      continue;
    }
    const std::size_t close = pattern.find('}', i);
    if (close == std::string_view::npos || next == params.end())
      throw std::invalid_argument("route " + std::string(pattern) + ": too few parameters");
    append_encoded(out, *next++);
    i = close + 1;
  }
  if (next != params.end())
    throw std::invalid_argument("route " + std::string(pattern) + ": too many parameters");
  char sep = '?';
  for (const auto& [k, v] : query) {
    out += sep;
    append_encoded(out, k);
    out += '=';
    append_encoded(out, v);
    sep = '&';
  }
  return out;
}

std::string header_key(std::string_view name) {
  std::string out(name);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace tv::fleet::api
