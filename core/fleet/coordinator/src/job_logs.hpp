// The newest trainer-log tail of each job, in memory only: a host sends the whole tail again
// whenever its trainer writes more, so a restarted coordinator has it back at the next line. A new
// tail replaces the job's (each is bounded by api::kMaxLogTailBytes and kMaxLogTailLines), and a
// finished job keeps its last, so that a failed job still shows why. Private to the coordinator.
//
// Thread-safety: any thread; the tails are immutable once kept, shared with whoever reads them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "trainvisor/fleet/api/job_log.hpp"

namespace tv::fleet::coordinator {

class JobLogs {
 public:
  struct Tail {
    api::JobLog log;
    std::uint64_t seq = 0;  // ever higher: a reader that saw seq has seen this tail
  };

  // Keeps `log` as its job's tail, replacing the one before.
  void put(api::JobLog log);
  // The job's tail, or null when none has arrived.
  std::shared_ptr<const Tail> get(const std::string& job) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Tail>> tails_;
  std::uint64_t last_seq_ = 0;
};

}  // namespace tv::fleet::coordinator
