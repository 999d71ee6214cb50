#include "job_logs.hpp"

namespace tv::fleet::coordinator {

void JobLogs::put(api::JobLog log) {
  const std::string job = log.job;
  std::lock_guard lock(mu_);
  tails_[job] = std::make_shared<const Tail>(Tail{std::move(log), ++last_seq_});
}

std::shared_ptr<const JobLogs::Tail> JobLogs::get(const std::string& job) const {
  std::lock_guard lock(mu_);
  const auto it = tails_.find(job);
  return it == tails_.end() ? nullptr : it->second;
}

}  // namespace tv::fleet::coordinator
