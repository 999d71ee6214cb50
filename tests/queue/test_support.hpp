// Helpers for the queue tests: a temporary directory for real database files (TempDir, shared
// with the store tests), a clock the test moves by hand, and small builders for jobs and hosts.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "trainvisor/fleet/job_queue.hpp"

namespace tv::fleet::test {

// Time stands still until the test advances it, so leases, backoff and grace periods are
// exact and no test sleeps.
class FakeClock {
 public:
  static constexpr UnixMillis kStart = 1'700'000'000'000;

  UnixMillis now() const { return t_->load(); }
  void advance(std::int64_t ms) { t_->fetch_add(ms); }
  void set(UnixMillis t) { t_->store(t); }
  std::function<UnixMillis()> fn() const {
    return [t = t_] { return t->load(); };
  }

 private:
  std::shared_ptr<std::atomic<UnixMillis>> t_ = std::make_shared<std::atomic<UnixMillis>>(kStart);
};

inline constexpr std::int64_t kStaleMs = 10'000;
inline constexpr std::int64_t kGraceMs = 60'000;
inline constexpr std::int64_t kBackoffBaseMs = 1'000;
inline constexpr std::int64_t kBackoffCapMs = 8'000;

inline QueueOptions options_with(const FakeClock& clock) {
  QueueOptions o;
  o.stale_after = std::chrono::milliseconds(kStaleMs);
  o.prefer_cuda_grace = std::chrono::milliseconds(kGraceMs);
  o.backoff_base = std::chrono::milliseconds(kBackoffBaseMs);
  o.backoff_cap = std::chrono::milliseconds(kBackoffCapMs);
  o.clock = clock.fn();
  return o;
}

// A job whose id is derived from its name: tests need stable, distinct ids, not real hashes.
inline JobSpec make_job(const std::string& name, const std::string& model = "mlp") {
  JobSpec j;
  j.id = "id-" + name;
  j.name = name;
  j.model = model;
  j.mode = "train";
  j.hyper = {{"training/optimizer/learning_rate", 0.01}, {"training/max_epochs", std::int64_t{3}}};
  j.canonical = "{\"name\":\"" + name + "\"}";
  return j;
}

inline HostCapability cpu_host(double ram_gib = 16) {
  HostCapability c;
  c.hostname = "cpu";
  c.cores = 4;
  c.ram_gib = ram_gib;
  return c;
}

inline HostCapability cuda_host(double vram_gib = 24, double ram_gib = 64) {
  HostCapability c = cpu_host(ram_gib);
  c.hostname = "gpu";
  c.cuda = true;
  c.cuda_devices = 1;
  c.vram_gib = vram_gib;
  return c;
}

inline JobQueue open_with_jobs(const std::string& path, const FakeClock& clock,
                               const std::vector<JobSpec>& jobs) {
  auto q = JobQueue::open(path, options_with(clock));
  q.upsert_manifest(jobs);
  return q;
}

}  // namespace tv::fleet::test
