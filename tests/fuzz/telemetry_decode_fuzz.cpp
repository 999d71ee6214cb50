// Telemetry on its way in, on arbitrary bytes. The first byte picks the path:
//  0: the bytes are JSON, decoded as one point (telemetry_point_from_json) and as a batch
//     (TelemetryBatch), each refused cleanly or stable through encode, decode, encode;
//  1: the bytes are a shared-memory ring record (shm::TelemetryRecord, as a trainer writes it),
//     converted (to_telemetry_point) and sent as the host sends it: its JSON either decodes to
//     the same point (a non-finite metric becoming unknown, as JSON has no inf) or is refused
//     naming a field out of the wire's range, never wrapped.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "trainvisor/core/telemetry_point.hpp"
#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace {

using nlohmann::json;
using tv::plugin::TelemetryPoint;

[[noreturn]] void fail(const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s: %s\n", what, detail.c_str());
  std::abort();
}

template <class Decode>
void stable(const json& input, Decode decode) {
  std::string first;
  try {
    first = decode(input).dump();
  } catch (const std::invalid_argument&) {
    return;
  } catch (const json::exception&) {
    return;
  }
  const std::string second = decode(json::parse(first)).dump();
  if (first != second) fail("unstable round trip", first + "\n" + second);
}

void from_json_text(const std::uint8_t* data, std::size_t size) {
  const json input = json::parse(data, data + size, nullptr, false);
  if (input.is_discarded()) return;
  stable(input, [](const json& j) {
    return tv::fleet::telemetry_point_json(tv::fleet::telemetry_point_from_json(j));
  });
  stable(input, [](const json& j) { return json(j.get<tv::fleet::api::TelemetryBatch>()); });
}

bool same_metric(double sent, double got) {
  if (!std::isfinite(sent)) return std::isnan(got);
  return sent == got;
}

void from_ring_record(const std::uint8_t* data, std::size_t size) {
  tv::shm::TelemetryRecord record;
  std::memcpy(&record, data, std::min(size, sizeof record));
  const TelemetryPoint p = tv::to_telemetry_point(record);
  const std::string wire = tv::fleet::telemetry_point_json(p).dump();
  TelemetryPoint q;
  try {
    q = tv::fleet::telemetry_point_from_json(json::parse(wire));
  } catch (const std::invalid_argument& e) {
    // Only a point out of the wire's ranges (a step past int64, ...) may be refused.
    if (tv::fleet::api::point_in_range(p)) fail("a point in range was refused", e.what());
    return;
  }
  const bool same = p.step == q.step && p.epoch == q.epoch && p.flags == q.flags &&
                    p.wall_time_ns == q.wall_time_ns && p.config_revision == q.config_revision &&
                    same_metric(p.loss, q.loss) && same_metric(p.grad_norm, q.grad_norm) &&
                    same_metric(p.learning_rate, q.learning_rate) &&
                    same_metric(p.val_loss, q.val_loss) &&
                    same_metric(p.val_accuracy, q.val_accuracy) &&
                    same_metric(p.samples_per_sec, q.samples_per_sec);
  if (!same) fail("a point changed on the wire", wire);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] % 2 == 0) {
    from_json_text(data + 1, size - 1);
  } else {
    from_ring_record(data + 1, size - 1);
  }
  return 0;
}
