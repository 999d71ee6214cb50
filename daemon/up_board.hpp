// `trainvisor up`'s live view: one row per job (status and latest progress) and the event lines
// (policy decisions, config and coordinator reports) that arrive between frames.
//
// frame() returns the text to write to stderr, so that it can be tested without a terminal. On
// a terminal, each frame first clears the previous table (cursor up over exactly its lines, then
// clear to the end of the screen), then prints the new event lines, which thus scroll above,
// then the table again: an event line is never overwritten and no stale row is left behind.
// Into a log, event lines are written as they come and the table when a job's status changes,
// every 30 s otherwise, or when forced.
//
// Thread-safety: on_event and frame may be called from different threads (the host daemon's
// event callback, the drawing thread).
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "trainvisor/fleet/host_daemon.hpp"

namespace tv::cli {

class UpBoard {
 public:
  void on_event(const fleet::HostEvent& e);

  // The text to write now ("" when nothing is due); `force` writes the table even into a log.
  std::string frame(bool tty, bool force, std::chrono::steady_clock::time_point now);

 private:
  struct Row {
    std::string name;
    std::string status = "pending";
    fleet::HostEvent last;
    bool has_progress = false;
    std::string note;
  };
  std::string table() const;

  std::mutex mu_;
  std::map<std::string, Row> rows_;  // by job id
  std::vector<std::string> events_;  // not yet written
  int table_lines_ = 0;              // lines of the table on the terminal now
  std::string last_statuses_;
  std::chrono::steady_clock::time_point last_table_{};
};

}  // namespace tv::cli
