#include "up_board.hpp"

#include <algorithm>
#include <cstdio>

#include "table_number.hpp"
#include "terminal_text.hpp"

namespace tv::cli {

void UpBoard::on_event(const fleet::HostEvent& e) {
  using Kind = fleet::HostEvent::Kind;
  std::lock_guard lock(mu_);
  if (e.job_id.empty()) {
    events_.push_back(terminal_text(e.message));
    return;
  }
  Row& r = rows_[e.job_id];
  // Names and messages come from the coordinator and the trainer: made safe for the terminal.
  r.name = terminal_text(e.job_name);
  switch (e.kind) {
    case Kind::kClaimed:
      r.status = "claimed";
      break;
    case Kind::kStarted:
      r.status = "running";
      break;
    case Kind::kProgress:
      r.last = e;
      r.has_progress = true;
      break;
    case Kind::kPolicy:
    case Kind::kConfig:
    case Kind::kCoordinator:
      events_.push_back(terminal_text(e.job_name + ": " + e.message));
      break;
    case Kind::kFinished:
      r.status = e.early_stopped ? "stopped" : "completed";
      r.note = terminal_text(e.message);
      break;
    case Kind::kFailed:
      r.status = "failed";
      r.note = terminal_text(e.message);
      break;
    case Kind::kCancelled:
      r.status = "cancelled";
      break;
    case Kind::kLost:
      r.status = "lost";
      break;
  }
}

std::string UpBoard::table() const {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-22s %-10s %5s %7s %10s %10s %10s %4s\n", "JOB", "STATUS",
                "EPOCH", "STEP", "LOSS", "VAL_ACC", "LR", "REV");
  out += line;
  for (const auto& [id, r] : rows_) {
    if (r.has_progress) {
      std::snprintf(line, sizeof line, "%-22.22s %-10s %5u %7llu %10s %10s %10s %4llu\n",
                    r.name.c_str(), r.status.c_str(), r.last.epoch,
                    static_cast<unsigned long long>(r.last.step), table_number(r.last.loss).c_str(),
                    table_number(r.last.val_accuracy).c_str(),
                    table_number(r.last.learning_rate).c_str(),
                    static_cast<unsigned long long>(r.last.revision));
    } else {
      std::snprintf(line, sizeof line, "%-22.22s %-10s\n", r.name.c_str(), r.status.c_str());
    }
    out += line;
  }
  return out;
}

std::string UpBoard::frame(bool tty, bool force, std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mu_);
  std::string out;
  // The previous table goes first (the cursor sits below it), so the events land where it was
  // and scroll up with the terminal.
  if (tty && table_lines_ > 0) out += "\x1b[" + std::to_string(table_lines_) + "A\r\x1b[J";
  for (const auto& m : events_)
    out += m + "\n";
  events_.clear();
  std::string statuses;
  for (const auto& [id, r] : rows_)
    statuses += r.status + ";";
  if (!tty && !force && statuses == last_statuses_ && now - last_table_ < std::chrono::seconds(30))
    return out;
  last_statuses_ = statuses;
  last_table_ = now;
  const std::string t = table();
  table_lines_ = static_cast<int>(std::count(t.begin(), t.end(), '\n'));
  return out + t;
}

}  // namespace tv::cli
