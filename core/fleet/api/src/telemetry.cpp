#include "trainvisor/fleet/api/telemetry.hpp"

#include <limits>

#include "trainvisor/fleet/api/jobs.hpp"

namespace tv::fleet {

using nlohmann::json;

namespace {

double number_or_nan(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

}  // namespace

json telemetry_point_json(const plugin::TelemetryPoint& p) {
  return {{"step", p.step},
          {"epoch", p.epoch},
          {"flags", p.flags},
          {"wall_time_ns", p.wall_time_ns},
          {"loss", p.loss},
          {"grad_norm", p.grad_norm},
          {"learning_rate", p.learning_rate},
          {"config_revision", p.config_revision},
          {"val_loss", p.val_loss},
          {"val_accuracy", p.val_accuracy},
          {"samples_per_sec", p.samples_per_sec}};
}

plugin::TelemetryPoint telemetry_point_from_json(const json& j) {
  plugin::TelemetryPoint p;
  p.step = j.at("step").get<std::uint64_t>();
  p.epoch = j.value("epoch", std::uint32_t{0});
  p.flags = j.value("flags", std::uint32_t{0});
  p.wall_time_ns = j.value("wall_time_ns", std::int64_t{0});
  p.loss = number_or_nan(j, "loss");
  p.grad_norm = number_or_nan(j, "grad_norm");
  p.learning_rate = number_or_nan(j, "learning_rate");
  p.config_revision = j.value("config_revision", std::uint64_t{0});
  p.val_loss = number_or_nan(j, "val_loss");
  p.val_accuracy = number_or_nan(j, "val_accuracy");
  p.samples_per_sec = number_or_nan(j, "samples_per_sec");
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
