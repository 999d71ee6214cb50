// What may name a host (a worker): the name a host enrols under, claims with and holds leases as.
// One rule for the coordinator, which refuses any other name, and the host, which checks its own
// before it asks: 1 to 128 characters of letters, digits, '.', '_' and '-' (a hostname fits), so a
// name never holds a credential's ':' separator, a path separator or a terminal control sequence.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace tv::fleet {

inline constexpr std::size_t kMaxHostNameLength = 128;

inline bool is_valid_host_name(std::string_view name) {
  return !name.empty() && name.size() <= kMaxHostNameLength &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
         });
}

// Why `name` cannot name a host, or "" when it can. The name is quoted shortened, with every
// byte outside printable ASCII shown as '?': the message may reach a terminal.
inline std::string host_name_problem(std::string_view name) {
  if (is_valid_host_name(name)) return {};
  std::string shown(name.substr(0, 64));
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return "host name '" + shown + (name.size() > 64 ? "...'" : "'") + " is not 1 to " +
         std::to_string(kMaxHostNameLength) + " letters, digits, '.', '_' or '-'";
}

}  // namespace tv::fleet
