// The tail of a job's trainer log (kJobLog): what the job's host sends and readers get back.
//
// The host sends the last at most kMaxLogTailBytes of the trainer's log as raw bytes (whole
// lines, at most kMaxLogTailLines): a log is whatever the trainer printed, not always UTF-8, so
// the coordinator, not JSON, decides what of it is text. The coordinator keeps the newest tail of
// each job in memory (a new one replaces it, a finished job keeps its last) and serves it as
// JobLog, each line valid UTF-8 with no control characters but tab (log_lines in the
// coordinator). A tail over either bound is refused with 413 naming it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"

namespace tv::fleet::api {

inline constexpr std::size_t kMaxLogTailBytes = 64 * 1024;
inline constexpr std::size_t kMaxLogTailLines = 200;

// GET kJobLog, and the events channel's "log" message (with "type":"log"). Until a tail has
// arrived, host and updated_ms are null and lines empty.
struct JobLog {
  std::string job;
  std::optional<std::string> host;         // the host that sent the tail
  std::optional<std::int64_t> updated_ms;  // when it arrived, Unix milliseconds
  std::vector<std::string> lines;          // oldest first
  bool truncated = false;                  // older lines of the log were left out
};
TV_API_JSON(JobLog);

}  // namespace tv::fleet::api
