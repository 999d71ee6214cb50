#include "trainvisor/fleet/api/config.hpp"

#include <stdexcept>

#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/param_json.hpp"

namespace tv::fleet {

using nlohmann::json;

json config_values_json(const plugin::ConfigView& values) {
  return params_json(values);
}

plugin::ConfigView config_values_from_json(const json& j) {
  return params_from_json<plugin::ConfigView>(j);
}

namespace api {
namespace {

constexpr std::array<std::pair<StreamMessage::Type, std::string_view>, 5> kStreamTypes{{
    {StreamMessage::Type::kSnapshot, "snapshot"},
    {StreamMessage::Type::kResume, "resume"},
    {StreamMessage::Type::kDelta, "delta"},
    {StreamMessage::Type::kFreeze, "freeze"},
    {StreamMessage::Type::kKeepalive, "keepalive"},
}};

std::uint64_t revision_of(const json& j, const char* key = "revision") {
  return checked_uint(j.at(key), key, 0, kMaxStored);
}

// A write's key paths and string values, bounded (checked.hpp).
plugin::Params checked_writes(const json& writes) {
  if (writes.size() > kMaxConfigWrites)
    throw std::invalid_argument("writes: " + std::to_string(writes.size()) +
                                " keys is over the limit of " + std::to_string(kMaxConfigWrites));
  for (const auto& [path, value] : writes.items()) {
    if (path.size() > kMaxLabelBytes)
      throw std::invalid_argument("writes: a key path of " + std::to_string(path.size()) +
                                  " bytes is over the limit of " + std::to_string(kMaxLabelBytes) +
                                  " bytes");
    if (value.is_string() && value.get_ref<const std::string&>().size() > kMaxTextBytes)
      throw std::invalid_argument("writes." + path + ": a string of " +
                                  std::to_string(value.get_ref<const std::string&>().size()) +
                                  " bytes is over the limit of " + std::to_string(kMaxTextBytes) +
                                  " bytes");
  }
  return params_from_json(writes);
}

}  // namespace

void to_json(json& j, const ConfigWriteRequest& m) {
  j = {{"writes", params_json(m.writes)}, {"reason", m.reason}};
  if (m.policy) j["policy"] = *m.policy;
  if (m.decided_from != 0) j["decided_from"] = m.decided_from;
}

void from_json(const json& j, ConfigWriteRequest& m) {
  if (!j.contains("writes") || !j["writes"].is_object() || j["writes"].empty())
    throw std::invalid_argument("missing field 'writes' (an object of key path -> value)");
  m.writes = checked_writes(j["writes"]);
  m.reason = text_field(j, "", "reason", kMaxTextBytes);
  m.policy.reset();
  if (j.contains("policy")) m.policy = required_string(j, "policy");
  m.decided_from = uint_field(j, "", "decided_from", 0);
}

void to_json(json& j, const FreezeRequest& m) {
  j = {{"prefix", m.prefix}};
}

void from_json(const json& j, FreezeRequest& m) {
  m.prefix = required_string(j, "prefix");
}

json applied_json(const std::optional<AppliedConfig>& a) {
  return a ? json(*a) : json(nullptr);
}

std::optional<AppliedConfig> applied_from_json(const json& j) {
  if (j.is_null()) return std::nullopt;
  return j.get<AppliedConfig>();
}

void to_json(json& j, const AppliedConfig& m) {
  j = {{"revision", m.revision}, {"since_step", m.since_step}, {"last_step", m.last_step},
       {"host", m.host},         {"time_ms", m.time_ms},       {"points", m.points},
       {"missed", m.missed}};
}

void from_json(const json& j, AppliedConfig& m) {
  constexpr std::string_view f = "applied";
  m.revision = revision_of(j);
  m.since_step = checked_uint(j.at("since_step"), "applied.since_step", 0, kMaxStored);
  m.last_step = checked_uint(j.at("last_step"), "applied.last_step", 0, kMaxStored);
  m.host = j.at("host");
  m.time_ms = int_field(j, f, "time_ms", 0, 0, std::int64_t(kMaxStored));
  m.points = uint_field(j, f, "points", 0);
  m.missed = uint_field(j, f, "missed", 0);
}

void to_json(json& j, const ConfigWriteReply& m) {
  j = {{"revision", m.revision}, {"actor", m.actor}};
}

void from_json(const json& j, ConfigWriteReply& m) {
  m.revision = revision_of(j);
  m.actor = j.at("actor");
}

void to_json(json& j, const ConfigInfo& m) {
  j = {{"job", m.job},
       {"revision", m.revision},
       {"values", config_values_json(m.values)},
       {"frozen", m.frozen},
       {"applied", applied_json(m.applied)}};
}

void from_json(const json& j, ConfigInfo& m) {
  m.job = j.at("job");
  m.revision = revision_of(j);
  m.values = config_values_from_json(j.at("values"));
  m.frozen = j.at("frozen").get<std::vector<std::string>>();
  m.applied = applied_from_json(j.value("applied", json(nullptr)));
}

void to_json(json& j, const AuditRecord& e) {
  j = {{"seq", e.seq},
       {"kind", e.kind},
       {"revision", e.revision},
       {"actor", e.actor},
       {"reason", e.reason},
       {"path", e.path},
       {"old", e.old_value ? param_value_json(*e.old_value) : json(nullptr)},
       {"new", param_value_json(e.new_value)},
       {"time_ms", e.time_ms},
       {"accepted", e.accepted},
       {"refusal", e.refusal},
       {"count", e.count}};
}

void to_json(json& j, const ConfigMarker& m) {
  json keys = json::array();
  for (const ConfigMarkerKey& k : m.keys) {
    keys.push_back({{"path", k.path},
                    {"old", k.old_value ? param_value_json(*k.old_value) : json(nullptr)},
                    {"new", param_value_json(k.new_value)}});
  }
  j = {{"seq", m.seq},
       {"last_seq", m.last_seq},
       {"kind", m.kind},
       {"revision", m.revision},
       {"actor", m.actor},
       {"reason", m.reason},
       {"time_ms", m.time_ms},
       {"accepted", m.accepted},
       {"refusal", m.refusal},
       {"count", m.count},
       {"applied_step", m.applied_step ? json(*m.applied_step) : json(nullptr)},
       {"keys", std::move(keys)}};
}

void to_json(json& j, const ConfigMarkers& m) {
  j = {{"markers", m.markers}, {"after", m.after}};
}

void from_json(const json& e, AuditRecord& r) {
  r.seq = revision_of(e, "seq");
  r.kind = e.value("kind", std::string("write"));
  r.revision = revision_of(e);
  r.actor = e.at("actor");
  r.reason = e.value("reason", std::string());
  r.path = e.at("path");
  r.old_value.reset();
  if (!e.at("old").is_null()) r.old_value = param_value_from_json(e["old"], "old");
  r.new_value = param_value_from_json(e.at("new"), "new");
  r.time_ms = int_field(e, "", "time_ms", 0, 0, std::int64_t(kMaxStored));
  r.accepted = e.at("accepted");
  r.refusal = e.value("refusal", std::string());
  r.count = uint_field(e, "", "count", 1);
}

StreamMessage StreamMessage::snapshot(std::uint64_t revision, plugin::ConfigView values,
                                      std::vector<std::string> frozen) {
  return {Type::kSnapshot, revision, std::move(values), std::move(frozen), {}, {}, false};
}

StreamMessage StreamMessage::resume(std::vector<std::string> frozen) {
  return {Type::kResume, 0, {}, std::move(frozen), {}, {}, false};
}

StreamMessage StreamMessage::delta(std::uint64_t revision, std::string actor,
                                   plugin::ConfigView writes) {
  return {Type::kDelta, revision, std::move(writes), {}, std::move(actor), {}, false};
}

StreamMessage StreamMessage::freeze(std::string prefix, bool frozen) {
  return {Type::kFreeze, 0, {}, {}, {}, std::move(prefix), frozen};
}

StreamMessage StreamMessage::keepalive(std::uint64_t revision) {
  return {Type::kKeepalive, revision, {}, {}, {}, {}, false};
}

void to_json(json& j, const StreamMessage& m) {
  j = {{"type", std::string(name_of(kStreamTypes, m.type))}};
  switch (m.type) {
    case StreamMessage::Type::kSnapshot:
      j.update({{"revision", m.revision},
                {"values", config_values_json(m.values)},
                {"frozen", m.frozen}});
      break;
    case StreamMessage::Type::kResume:
      j["frozen"] = m.frozen;
      break;
    case StreamMessage::Type::kDelta:
      j.update(
          {{"revision", m.revision}, {"actor", m.actor}, {"writes", config_values_json(m.values)}});
      break;
    case StreamMessage::Type::kFreeze:
      j.update({{"prefix", m.prefix}, {"frozen", m.now_frozen}});
      break;
    case StreamMessage::Type::kKeepalive:
      j["revision"] = m.revision;
      break;
  }
}

void from_json(const json& j, StreamMessage& m) {
  const std::string type = j.at("type");
  const auto t = value_named(kStreamTypes, type);
  if (!t) throw std::invalid_argument("config stream: unknown message type '" + type + "'");
  const auto frozen = [&] { return j.at("frozen").get<std::vector<std::string>>(); };
  switch (*t) {
    case StreamMessage::Type::kSnapshot:
      m = StreamMessage::snapshot(revision_of(j), config_values_from_json(j.at("values")),
                                  frozen());
      return;
    case StreamMessage::Type::kResume:
      m = StreamMessage::resume(frozen());
      return;
    case StreamMessage::Type::kDelta:
      m = StreamMessage::delta(revision_of(j), j.at("actor"),
                               config_values_from_json(j.at("writes")));
      return;
    case StreamMessage::Type::kFreeze:
      m = StreamMessage::freeze(j.at("prefix"), j.at("frozen").get<bool>());
      return;
    case StreamMessage::Type::kKeepalive:
      break;
  }
  m = StreamMessage::keepalive(revision_of(j));
}

}  // namespace api
}  // namespace tv::fleet
