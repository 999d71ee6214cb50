// The one conversion of a telemetry record from the shared-memory ring (shm::TelemetryRecord, what
// the trainer pushes) into the record policies, the coordinator and its store see
// (plugin::TelemetryPoint). The two types carry the same fields, the same flag bits and the same
// NaN for a missing metric; telemetry_point.cpp static_asserts all three.
//
// A pure function: any thread may call it.
#pragma once

#include "trainvisor/plugin.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv {

plugin::TelemetryPoint to_telemetry_point(const shm::TelemetryRecord& record) noexcept;

}  // namespace tv
