#include "trainvisor/fleet/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <string_view>

namespace tv::fleet::log {
namespace {

std::string_view level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// 2026-12-07T23:25:01.123Z
std::string utc(std::int64_t time_ms) {
  const std::time_t seconds = static_cast<std::time_t>(time_ms / 1000);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char out[64];  // room for any int the compiler imagines
  std::snprintf(out, sizeof out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(time_ms % 1000));
  return out;
}

// A non-finite number has no JSON form: null says "not known".
nlohmann::json finite(const nlohmann::json& v) {
  if (v.is_number_float() && !std::isfinite(v.get<double>())) return nullptr;
  return v;
}

std::string text_line(const Record& r) {
  std::string line = r.component + ": ";
  if (r.level == Level::kWarn) line += "warning: ";
  if (r.level == Level::kError) line += "error: ";
  line += r.message;
  line += '\n';
  return line;
}

std::string json_line(const Record& r, std::int64_t time_ms) {
  nlohmann::json j = nlohmann::json::object();
  j["time"] = utc(time_ms);
  j["level"] = level_name(r.level);
  j["component"] = r.component;
  if (!r.job.empty()) j["job"] = r.job;
  j["message"] = r.message;
  for (const auto& [name, value] : r.fields) {
    if (!j.contains(name)) j[name] = finite(value);  // the fixed keys win over a field's
  }
  // Replace, not throw: a message may quote bytes a trainer or a peer sent.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

std::atomic<int> g_format{-1};  // -1: not decided yet

}  // namespace

Format format_from_env(int fd) {
  if (const char* v = std::getenv("TRAINVISOR_LOG_FORMAT"); v && *v) {
    const std::string_view s(v);
    if (s == "json") return Format::kJson;
    if (s == "text") return Format::kText;
    throw std::invalid_argument("TRAINVISOR_LOG_FORMAT='" + std::string(s) +
                                "': expected json or text");
  }
  return ::isatty(fd) ? Format::kText : Format::kJson;
}

std::string render(const Record& r, Format format, std::int64_t time_ms) {
  return format == Format::kJson ? json_line(r, time_ms) : text_line(r);
}

void set_format(Format format) {
  g_format = static_cast<int>(format);
}

void emit(const Record& r) {
  int f = g_format.load();
  if (f < 0) {
    Format decided = Format::kText;
    try {
      decided = format_from_env(2);
    } catch (const std::invalid_argument&) {
      // Refused where the daemon starts (it calls format_from_env); text is the safe fallback.
    }
    f = static_cast<int>(decided);
    g_format = f;
  }
  const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const std::string line = render(r, static_cast<Format>(f), now);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    const ssize_t n = ::write(2, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // stderr gone: nothing else can be told
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace tv::fleet::log
