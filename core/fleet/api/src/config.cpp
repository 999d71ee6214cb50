#include "trainvisor/fleet/api/config.hpp"

#include <stdexcept>

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

}  // namespace

json to_json(const ConfigWriteRequest& m) {
  json j = {{"writes", params_json(m.writes)}, {"reason", m.reason}};
  if (m.policy) j["policy"] = *m.policy;
  return j;
}

ConfigWriteRequest config_write_request_from_json(const json& j) {
  if (!j.contains("writes") || !j["writes"].is_object() || j["writes"].empty())
    throw std::invalid_argument("missing field 'writes' (an object of key path -> value)");
  ConfigWriteRequest m;
  m.writes = params_from_json(j["writes"]);
  m.reason = j.value("reason", std::string());
  if (j.contains("policy")) m.policy = required_string(j, "policy");
  return m;
}

json to_json(const ConfigWriteReply& m) {
  return {{"revision", m.revision}, {"actor", m.actor}};
}

ConfigWriteReply config_write_reply_from_json(const json& j) {
  return {j.at("revision").get<std::uint64_t>(), j.value("actor", std::string())};
}

json to_json(const FreezeRequest& m) {
  return {{"prefix", m.prefix}};
}

FreezeRequest freeze_request_from_json(const json& j) {
  return {required_string(j, "prefix")};
}

json frozen_json(const std::vector<std::string>& frozen) {
  return {{"frozen", frozen}};
}

std::vector<std::string> frozen_from_json(const json& j) {
  return j.at("frozen").get<std::vector<std::string>>();
}

json to_json(const std::optional<AppliedConfig>& a) {
  if (!a) return nullptr;
  return {{"revision", a->revision}, {"since_step", a->since_step}, {"last_step", a->last_step},
          {"host", a->host},         {"time_ms", a->time_ms},       {"points", a->points},
          {"missed", a->missed}};
}

std::optional<AppliedConfig> applied_from_json(const json& j) {
  if (j.is_null()) return std::nullopt;
  AppliedConfig a;
  a.revision = j.at("revision");
  a.since_step = j.at("since_step");
  a.last_step = j.at("last_step");
  a.host = j.at("host");
  a.time_ms = j.value("time_ms", std::int64_t{0});
  a.points = j.value("points", std::uint64_t{0});
  a.missed = j.value("missed", std::uint64_t{0});
  return a;
}

json to_json(const ConfigInfo& m) {
  return {{"job", m.job},
          {"revision", m.revision},
          {"values", config_values_json(m.values)},
          {"frozen", m.frozen},
          {"applied", to_json(m.applied)}};
}

ConfigInfo config_info_from_json(const json& j) {
  ConfigInfo m;
  m.job = j.at("job");
  m.revision = j.at("revision");
  m.values = config_values_from_json(j.at("values"));
  m.frozen = frozen_from_json(j);
  m.applied = applied_from_json(j.value("applied", json(nullptr)));
  return m;
}

json to_json(const std::vector<AuditRecord>& log) {
  json entries = json::array();
  for (const AuditRecord& e : log) {
    entries.push_back({{"seq", e.seq},
                       {"kind", e.kind},
                       {"revision", e.revision},
                       {"actor", e.actor},
                       {"reason", e.reason},
                       {"path", e.path},
                       {"old", e.old_value ? param_value_json(*e.old_value) : json(nullptr)},
                       {"new", param_value_json(e.new_value)},
                       {"time_ms", e.time_ms},
                       {"accepted", e.accepted},
                       {"refusal", e.refusal}});
  }
  return {{"entries", entries}};
}

std::vector<AuditRecord> audit_log_from_json(const json& j) {
  std::vector<AuditRecord> out;
  for (const json& e : j.at("entries")) {
    AuditRecord r;
    r.seq = e.at("seq");
    r.kind = e.value("kind", std::string("write"));
    r.revision = e.at("revision");
    r.actor = e.at("actor");
    r.reason = e.value("reason", std::string());
    r.path = e.at("path");
    if (!e.at("old").is_null()) r.old_value = param_value_from_json(e["old"], "old");
    r.new_value = param_value_from_json(e.at("new"), "new");
    r.time_ms = e.value("time_ms", std::int64_t{0});
    r.accepted = e.at("accepted");
    r.refusal = e.value("refusal", std::string());
    out.push_back(std::move(r));
  }
  return out;
}

StreamMessage StreamMessage::snapshot(std::uint64_t revision, plugin::ConfigView values,
                                      std::vector<std::string> frozen) {
  StreamMessage m;
  m.type = Type::kSnapshot;
  m.revision = revision;
  m.values = std::move(values);
  m.frozen = std::move(frozen);
  return m;
}

StreamMessage StreamMessage::resume(std::vector<std::string> frozen) {
  StreamMessage m;
  m.type = Type::kResume;
  m.frozen = std::move(frozen);
  return m;
}

StreamMessage StreamMessage::delta(std::uint64_t revision, std::string actor,
                                   plugin::ConfigView writes) {
  StreamMessage m;
  m.type = Type::kDelta;
  m.revision = revision;
  m.actor = std::move(actor);
  m.values = std::move(writes);
  return m;
}

StreamMessage StreamMessage::freeze(std::string prefix, bool frozen) {
  StreamMessage m;
  m.type = Type::kFreeze;
  m.prefix = std::move(prefix);
  m.now_frozen = frozen;
  return m;
}

StreamMessage StreamMessage::keepalive(std::uint64_t revision) {
  StreamMessage m;
  m.revision = revision;
  return m;
}

json to_json(const StreamMessage& m) {
  json j = {{"type", std::string(name_of(kStreamTypes, m.type))}};
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
  return j;
}

StreamMessage stream_message_from_json(const json& j) {
  const std::string type = j.at("type");
  const auto t = value_named(kStreamTypes, type);
  if (!t) throw std::invalid_argument("config stream: unknown message type '" + type + "'");
  switch (*t) {
    case StreamMessage::Type::kSnapshot:
      return StreamMessage::snapshot(j.at("revision"), config_values_from_json(j.at("values")),
                                     j.at("frozen").get<std::vector<std::string>>());
    case StreamMessage::Type::kResume:
      return StreamMessage::resume(j.at("frozen").get<std::vector<std::string>>());
    case StreamMessage::Type::kDelta:
      return StreamMessage::delta(j.at("revision"), j.at("actor"),
                                  config_values_from_json(j.at("writes")));
    case StreamMessage::Type::kFreeze:
      return StreamMessage::freeze(j.at("prefix"), j.at("frozen").get<bool>());
    case StreamMessage::Type::kKeepalive:
      break;
  }
  return StreamMessage::keepalive(j.at("revision"));
}

}  // namespace api
}  // namespace tv::fleet
