#include "trainvisor/fleet/api/telemetry.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

#include "trainvisor/fleet/api/checked.hpp"
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
  using namespace api;
  constexpr std::string_view f = "point";
  constexpr std::uint64_t kMax32 = std::numeric_limits<std::uint32_t>::max();
  constexpr double kMaxMetric = std::numeric_limits<double>::max();
  if (!j.is_object()) throw std::invalid_argument("point: must be an object");
  Point p;
  if (!j.contains("step")) throw std::invalid_argument("point.step: missing");
  p.step = uint_field(j, f, "step", 0);
  p.epoch = static_cast<std::uint32_t>(uint_field(j, f, "epoch", 0, 0, kMax32));
  p.flags = static_cast<std::uint32_t>(uint_field(j, f, "flags", 0, 0, kMax32));
  p.wall_time_ns = static_cast<std::int64_t>(uint_field(j, f, "wall_time_ns", 0));
  p.config_revision = uint_field(j, f, "config_revision", 0);
  for (const auto& [key, member] : kMetrics)
    p.*member = double_field(j, f, key, plugin::kMissingMetric, -kMaxMetric, kMaxMetric);
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
  if (!j.is_array()) throw std::invalid_argument("points: must be an array");
  if (j.size() > kMaxBatchPoints)
    throw std::invalid_argument("points: " + std::to_string(j.size()) + " is over the limit of " +
                                std::to_string(kMaxBatchPoints) + " points");
  std::vector<plugin::TelemetryPoint> out;
  for (const json& p : j)
    out.push_back(telemetry_point_from_json(p));
  return out;
}

}  // namespace

void to_json(json& j, const AgentRefusalReport& m) {
  j = {{"revision", m.revision}, {"reason", m.reason}};
}

void from_json(const json& j, AgentRefusalReport& m) {
  if (!j.is_object()) throw std::invalid_argument("refusals: each must be an object");
  m.revision = checked_uint(j.at("revision"), "refusals.revision", 0, kMaxStored);
  m.reason = text_field(j, "refusals", "reason", kMaxTextBytes);
}

namespace {

std::vector<AgentRefusalReport> refusals_from_json(const json& j) {
  if (!j.is_array()) throw std::invalid_argument("refusals: must be an array");
  if (j.size() > kMaxBatchRefusals)
    throw std::invalid_argument("refusals: " + std::to_string(j.size()) + " is over the limit of " +
                                std::to_string(kMaxBatchRefusals));
  return j.get<std::vector<AgentRefusalReport>>();
}

}  // namespace

void to_json(json& j, const TelemetryBatch& m) {
  j = {{"host", m.host},
       {"missed", m.missed},
       {"points", points_json(m.points)},
       {"refusals", m.refusals}};
}

void from_json(const json& j, TelemetryBatch& m) {
  m.host = name_field(j, "", "host");
  m.missed = uint_field(j, "", "missed", 0);
  m.points = points_from_json(j.value("points", json::array()));
  m.refusals = refusals_from_json(j.value("refusals", json::array()));
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
  if (!j.at("desired_revision").is_null())
    m.desired_revision = checked_uint(j["desired_revision"], "desired_revision", 0, kMaxStored);
  m.applied = applied_from_json(j.at("applied"));
  m.points = points_from_json(j.at("points"));
}

std::optional<CurveMetric> curve_metric(std::string_view name) {
  for (std::size_t i = 0; i < kCurveMetrics; ++i) {
    if (kCurveMetricNames[i] == name) return static_cast<CurveMetric>(i);
  }
  return std::nullopt;
}

std::string_view to_string(CurveMetric m) {
  return kCurveMetricNames[static_cast<std::size_t>(m)];
}

void to_json(json& j, const MetricCurve& m) {
  json buckets = json::array();
  for (const CurveBucket& b : m.buckets)
    buckets.push_back(json::array({b.x_lo, b.x_hi, b.count, b.min, b.max, b.first, b.last}));
  j = {{"job", m.job},
       {"metric", to_string(m.metric)},
       {"x", m.x == CurveAxis::kStep ? "step" : "time"},
       {"from", m.from},
       {"to", m.to},
       {"bucket_width", m.bucket_width},
       {"exact_from", m.exact_from ? json(*m.exact_from) : json(nullptr)},
       {"rollup_steps", m.rollup_steps},
       {"columns", {"x_lo", "x_hi", "count", "min", "max", "first", "last"}},
       {"buckets", std::move(buckets)}};
}

void from_json(const json& j, MetricCurve& m) {
  m.job = j.at("job");
  const auto metric = curve_metric(j.at("metric").get<std::string>());
  if (!metric) throw std::invalid_argument("metric: unknown " + j["metric"].dump());
  m.metric = *metric;
  m.x = j.at("x") == "time" ? CurveAxis::kTime : CurveAxis::kStep;
  m.from = j.at("from");
  m.to = j.at("to");
  m.bucket_width = j.at("bucket_width");
  m.exact_from.reset();
  if (!j.at("exact_from").is_null()) m.exact_from = j["exact_from"].get<std::int64_t>();
  m.rollup_steps = j.at("rollup_steps");
  m.buckets.clear();
  for (const json& b : j.at("buckets")) {
    m.buckets.push_back({b.at(0), b.at(1), b.at(2), b.at(3), b.at(4), b.at(5), b.at(6)});
  }
}

}  // namespace api
}  // namespace tv::fleet
