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
// Retention, in two layers: each job keeps its newest TelemetryOptions::keep_per_job points
// whole; an append that takes a job past it folds the job's oldest points into the long-term
// layer and deletes them, in the same transaction (a cost in proportion to the batch, not to the
// curve). The long-term layer keeps, per metric and per `rollup_steps` steps (aligned to
// multiples of it), how many points there were, their min, max, first and last value and their
// first and last step and time: a million-step job keeps its newest 100,000 points and some
// 6 x 900,000/64 aggregates of the rest (one row per metric and 64 steps at most, fewer for a
// job that reports less often), so its whole curve stays available at a resolution of
// rollup_steps steps, at about a tenth of the bytes. A curve read (buckets()) streams both
// layers through a fixed number of buckets: its memory is bounded by the buckets asked for,
// never by the job's length.
//
// Applied revisions: the first step (and time) at which each config revision was reported
// applied is kept apart from the points (it survives retention): config markers are drawn at it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// The revision a trainer reports applying: the protocol's record, one definition.
using AppliedConfig = api::AppliedConfig;

// The points a job keeps by default: 100,000 points of about 100 bytes, some 10 MB a job, a
// curve of a million steps at one point every ten.
inline constexpr std::uint64_t kDefaultTelemetryKeep = 100000;

// Steps per aggregate of the long-term layer, by default.
inline constexpr std::uint64_t kDefaultRollupSteps = 64;

struct TelemetryOptions {
  std::uint64_t keep_per_job = kDefaultTelemetryKeep;  // the newest points kept; 0: every point
  std::uint64_t rollup_steps = kDefaultRollupSteps;    // older points: one aggregate per this many
};

// A curve request (GET kJobCurve): the metric over x in [from, to] (the job's whole range where
// unset) in at most `buckets` buckets.
struct CurveRequest {
  api::CurveMetric metric = api::CurveMetric::kLoss;
  api::CurveAxis x = api::CurveAxis::kStep;
  std::size_t buckets = 1000;
  std::optional<std::int64_t> from;
  std::optional<std::int64_t> to;
};

// The points after a step, for a live view: the newest `limit` of them, and whether older ones
// were left out.
struct NewPoints {
  std::vector<plugin::TelemetryPoint> points;
  bool truncated = false;
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
  // One metric downsampled over both layers (see MetricCurve for the reply's meaning). A job
  // with no points gives no buckets.
  api::MetricCurve buckets(const std::string& job_id, const CurveRequest& request) const;
  // The kept points after `after_step` (-1: all), in step order: the newest `limit`.
  NewPoints points_after(const std::string& job_id, std::int64_t after_step,
                         std::size_t limit) const;
  // The first step at which each revision was reported applied, by revision.
  std::map<std::uint64_t, std::uint64_t> revision_steps(const std::string& job_id) const;
  std::optional<AppliedConfig> applied(const std::string& job_id) const;
  // The points the job keeps now (at most keep_per_job).
  std::uint64_t stored(const std::string& job_id) const;

 private:
  struct Impl;
  explicit TelemetryStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
