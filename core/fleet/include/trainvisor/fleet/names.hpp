// The one rule for the names an operator reads and types: hosts (a manifest's [hosts.NAME], a
// job's allowed_hosts, a worker's name on the wire) and jobs. Letters, digits, '.', '_' and '-',
// not starting with '.' or '-': safe in a terminal, a file name and a URL path, with no quoting;
// a host name never holds a credential's ':' separator. The coordinator refuses any other name,
// and a host checks its own before it asks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>

namespace tv::fleet {

inline constexpr std::size_t kMaxHostNameBytes = 64;  // a Linux hostname's limit
inline constexpr std::size_t kMaxJobNameBytes = 100;

inline bool valid_name(std::string_view n, std::size_t max_bytes) {
  if (n.empty() || n.size() > max_bytes) return false;
  const auto ok = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
  };
  return std::all_of(n.begin(), n.end(), ok) && n.front() != '.' && n.front() != '-';
}

inline bool valid_host_name(std::string_view n) {
  return valid_name(n, kMaxHostNameBytes);
}

// Why `name` cannot name a host, or "" when it can. The name is quoted shortened, with every
// byte outside printable ASCII shown as '?': the message may reach a terminal.
inline std::string host_name_problem(std::string_view name) {
  if (valid_host_name(name)) return {};
  std::string shown(name.substr(0, 64));
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return "host name '" + shown + (name.size() > 64 ? "...'" : "'") + " is not 1 to " +
         std::to_string(kMaxHostNameBytes) +
         " letters, digits, '.', '_' or '-' (not starting with '.' or '-')";
}

}  // namespace tv::fleet
