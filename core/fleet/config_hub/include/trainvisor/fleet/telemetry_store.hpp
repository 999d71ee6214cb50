// The coordinator's store of what trainers report: each job's telemetry curve (as host daemons
// send it, in batches) and the config revision its trainer applied, with the step it took effect
// at. Desired (the hub's revision) against applied (this store's) is a job's config lag.
//
// Storage: SQLite (WAL, synchronous=NORMAL: a power cut may lose the last batch, which is
// telemetry, not state) through the store layer, in the coordinator's one database
// (coordinator_store.hpp). Errors: database failures throw store::StoreError, a
// std::runtime_error naming the file (store::StorageFull when the disk is full: the batch is
// not stored). Thread-safety: one internal mutex.
//
// Retention: each job keeps its newest TelemetryOptions::keep_per_job points; an append that
// takes a job past it deletes the job's oldest points in the same transaction (a cost in
// proportion to the batch, not to the curve), so a long job's curve is bounded on disk and a
// curve read still thins it to the points asked for.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// The revision a trainer reports applying: the protocol's record, one definition.
using AppliedConfig = api::AppliedConfig;

// The points a job keeps by default: 100,000 points of about 100 bytes, some 10 MB a job, a
// curve of a million steps at one point every ten.
inline constexpr std::uint64_t kDefaultTelemetryKeep = 100000;

struct TelemetryOptions {
  std::uint64_t keep_per_job = kDefaultTelemetryKeep;  // the newest points kept; 0: every point
};

class TelemetryStore {
 public:
  // Opens (creating) the store. Throws std::runtime_error naming the path.
  static TelemetryStore open(const std::string& path, TelemetryOptions options = {});
  TelemetryStore(TelemetryStore&&) noexcept;
  ~TelemetryStore();

  // Appends a batch (in step order; points at or before the stored last step are dropped, so a
  // batch sent twice is stored once), updates the applied revision (whose `points` counts every
  // point received, kept or not) and deletes the job's oldest points beyond the cap.
  void append(const std::string& job_id, const std::vector<plugin::TelemetryPoint>& points,
              const std::string& host, std::uint64_t missed, std::int64_t time_ms);

  // The curve in step order, thinned evenly to about `max_points` (0: all kept): evaluations and
  // training steps get half each; the last of each is kept.
  std::vector<plugin::TelemetryPoint> curve(const std::string& job_id,
                                            std::size_t max_points) const;
  std::optional<AppliedConfig> applied(const std::string& job_id) const;
  // The points the job keeps now (at most keep_per_job).
  std::uint64_t stored(const std::string& job_id) const;

 private:
  struct Impl;
  explicit TelemetryStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
