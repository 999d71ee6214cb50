#include "trainvisor/fleet/api/telemetry.hpp"

#include <utility>

#include "trainvisor/fleet/api/jobs.hpp"

namespace tv::fleet {

using nlohmann::json;

namespace {

using Point = plugin::TelemetryPoint;

// The metrics: numbers, or null in JSON when unknown (NaN, which JSON cannot spell).
constexpr std::pair<const char*, double Point::*> kMetrics[] = {
    {"loss", &Point::loss},
    {"grad_norm", &Point::grad_norm},
    {"learning_rate", &Point::learning_rate},
    {"val_loss", &Point::val_loss},
    {"val_accuracy", &Point::val_accuracy},
    {"samples_per_sec", &Point::samples_per_sec},
};

}  // namespace

json telemetry_point_json(const Point& p) {
  json j = {{"step", p.step},
            {"epoch", p.epoch},
            {"flags", p.flags},
            {"wall_time_ns", p.wall_time_ns},
            {"config_revision", p.config_revision}};
  for (const auto& [key, member] : kMetrics)
    j[key] = p.*member;  // NaN is written as null
  return j;
}

Point telemetry_point_from_json(const json& j) {
  Point p;
  p.step = j.at("step").get<std::uint64_t>();
  p.epoch = j.value("epoch", std::uint32_t{0});
  p.flags = j.value("flags", std::uint32_t{0});
  p.wall_time_ns = j.value("wall_time_ns", std::int64_t{0});
  p.config_revision = j.value("config_revision", std::uint64_t{0});
  for (const auto& [key, member] : kMetrics) {
    const auto it = j.find(key);
    p.*member = it == j.end() || it->is_null() ? plugin::kMissingMetric : it->get<double>();
  }
  return p;
}

namespace api {

namespace {

json points_json(const std::vector<plugin::TelemetryPoint>& points) {
  json out = json::array();
  for (const auto& p : points)
    out.push_back(telemetry_point_json(p));
  return out;
}

std::vector<plugin::TelemetryPoint> points_from_json(const json& j) {
  std::vector<plugin::TelemetryPoint> out;
  for (const json& p : j)
    out.push_back(telemetry_point_from_json(p));
  return out;
}

}  // namespace

void to_json(json& j, const TelemetryBatch& m) {
  j = {{"host", m.host},
       {"missed", m.missed},
       {"points", points_json(m.points)},
       {"refusals", m.refusals}};
}

void from_json(const json& j, TelemetryBatch& m) {
  m.host = required_string(j, "host");
  m.missed = j.value("missed", std::uint64_t{0});
  m.points = points_from_json(j.value("points", json::array()));
  m.refusals = j.value("refusals", json::array()).get<std::vector<AgentRefusalReport>>();
}

void to_json(json& j, const TelemetryCurve& m) {
  j = {{"job", m.job},
       {"desired_revision", m.desired_revision ? json(*m.desired_revision) : json(nullptr)},
       {"applied", applied_json(m.applied)},
       {"points", points_json(m.points)}};
}

void from_json(const json& j, TelemetryCurve& m) {
  m.job = j.at("job");
  m.desired_revision.reset();
  if (!j.at("desired_revision").is_null()) m.desired_revision = j["desired_revision"];
  m.applied = applied_from_json(j.at("applied"));
  m.points = points_from_json(j.at("points"));
}

}  // namespace api
}  // namespace tv::fleet
