// The tail of a trainer's log as the host sends it to the coordinator (api/job_log.hpp): the
// newest whole lines, bounded in bytes and lines. Private to the host daemon; safe from any
// thread (it only reads the file).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace tv::fleet {

struct LogTail {
  std::string text;         // whole lines, oldest first; the last may lack its newline
  bool truncated = false;   // older bytes of the log were left out
  std::uintmax_t size = 0;  // the log's size when read: the tail ends there
};

// The last at most `max_bytes` of the file at `path`, whole lines only (a line cut by the start
// of that window is dropped), at most `max_lines` of them, the newest. nullopt when the file
// cannot be read: a log is never a reason to fail anything.
std::optional<LogTail> read_log_tail(const std::filesystem::path& path, std::size_t max_bytes,
                                     std::size_t max_lines);

}  // namespace tv::fleet
