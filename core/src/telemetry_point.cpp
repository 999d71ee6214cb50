#include "trainvisor/core/telemetry_point.hpp"

namespace tv {
namespace {

// The flag bits: the ring's copy (shm) and the plugin header's copy are one vocabulary.
static_assert(std::uint32_t{shm::kTelemetryEval} == plugin::kTelemetryEval);
static_assert(std::uint32_t{shm::kTelemetryNonFiniteLoss} == plugin::kTelemetryNonFiniteLoss);
static_assert(std::uint32_t{shm::kTelemetryConfigRefused} == plugin::kTelemetryConfigRefused);
static_assert(std::uint32_t{shm::kTelemetryCheckpoint} == plugin::kTelemetryCheckpoint);
static_assert(std::uint32_t{shm::kTelemetryEpochEnd} == plugin::kTelemetryEpochEnd);
static_assert(std::uint32_t{shm::kTelemetryFinished} == plugin::kTelemetryFinished);
static_assert(std::uint32_t{shm::kTelemetryAllFlags} == plugin::kTelemetryAllFlags,
              "a telemetry flag was added to one of shm/telemetry_ring.hpp and plugin.hpp only");

// The fields: a field added to one record and not the other changes its size.
static_assert(sizeof(shm::TelemetryRecord) == sizeof(plugin::TelemetryPoint),
              "shm::TelemetryRecord and plugin::TelemetryPoint no longer carry the same fields");

// A missing metric is NaN in both (x != x only for NaN).
constexpr bool all_metrics_missing(const auto& r) {
  return r.loss != r.loss && r.grad_norm != r.grad_norm && r.learning_rate != r.learning_rate &&
         r.val_loss != r.val_loss && r.val_accuracy != r.val_accuracy &&
         r.samples_per_sec != r.samples_per_sec;
}
static_assert(all_metrics_missing(shm::TelemetryRecord{}));
static_assert(all_metrics_missing(plugin::TelemetryPoint{}));

}  // namespace

plugin::TelemetryPoint to_telemetry_point(const shm::TelemetryRecord& r) noexcept {
  plugin::TelemetryPoint p;
  p.step = r.step;
  p.epoch = r.epoch;
  p.flags = r.flags;
  p.wall_time_ns = r.wall_time_ns;
  p.loss = r.loss;
  p.grad_norm = r.grad_norm;
  p.learning_rate = r.learning_rate;
  p.config_revision = r.config_revision;
  p.val_loss = r.val_loss;
  p.val_accuracy = r.val_accuracy;
  p.samples_per_sec = r.samples_per_sec;
  return p;
}

}  // namespace tv
