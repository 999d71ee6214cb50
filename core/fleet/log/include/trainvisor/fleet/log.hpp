// The daemons' logs (coordinator, host): one JSON object per line when stderr is not a terminal,
// so that journald, a file or a collector gets fields it can query without parsing prose; a
// human line ("host: claimed mlp (3f2a...) attempt 1") on a terminal.
//
// A JSON line: {"time":"2026-12-07T23:25:01.123Z","level":"info","component":"host",
// "job":ID,"message":M, ...fields}; "job" only when the record is about one. Field names carry
// their unit where they have one (duration_s, size_bytes); values are JSON numbers, strings or
// booleans, a non-finite number null. The message is the human line's text, so a reader of
// either format reads the same words.
//
// The format: TRAINVISOR_LOG_FORMAT=json or text when set (anything else is refused at start),
// else json unless stderr is a terminal.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tv::fleet::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kJson, kText };

using Fields = std::vector<std::pair<std::string, nlohmann::json>>;

struct Record {
  Level level = Level::kInfo;
  std::string component;  // "coordinator", "host", ...
  std::string message;
  std::string job;  // a job id, or empty
  Fields fields;
};

// The format for a process whose stderr is `fd`: the environment's choice, else by isatty.
// Throws std::invalid_argument naming TRAINVISOR_LOG_FORMAT and its value when it is neither.
Format format_from_env(int fd = 2);

// One line, ending in '\n'. time_ms: Unix milliseconds (UTC).
std::string render(const Record& r, Format format, std::int64_t time_ms);

// Renders with the process's format (decided at the first call) and the time now, and writes
// the line to stderr in one write(2), so that lines of concurrent threads never interleave.
void emit(const Record& r);

// Sets the process's format, e.g. from a flag; before any emit().
void set_format(Format format);

}  // namespace tv::fleet::log
