// Stream time in words, for the reasons triggers give: a Unix-ns timestamp as UTC
// ("2026-12-07T10:00:00Z", with milliseconds when it has them) and a number as its shortest
// exact decimal ("3600", "0.25").
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string>

namespace tv::triggers {

inline std::string number_text(double value) {
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
  return std::string(buffer, result.ptr);
}

inline std::string utc_text(std::int64_t time_ns) {
  constexpr std::int64_t kNsPerS = 1'000'000'000;
  std::int64_t seconds = time_ns / kNsPerS;
  std::int64_t rest_ns = time_ns % kNsPerS;
  if (rest_ns < 0) {  // floor, so that times before 1970 read forwards like the others
    rest_ns += kNsPerS;
    --seconds;
  }
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(time_ns) + " ns";
  char buffer[64];
  const int millis = static_cast<int>(rest_ns / 1'000'000);
  if (millis != 0) {
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  } else {
    std::snprintf(buffer, sizeof buffer, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  }
  return buffer;
}

}  // namespace tv::triggers
