// The config hub's endpoints and the config stream: messages and their JSON.
//
// A write travels as {"writes": {path: value}, "reason": R} (with "policy": NAME when a policy
// writes with the worker token, and "decided_from": REV, the config revision its decision was
// made from: a human write to one of its keys after REV refuses it with 412). Values keep their
// JSON type (param_json.hpp): a float is written with a decimal point, so 1.0 stays a float.
//
// The config stream (GET kJobConfigStream?from=REV, a WebSocket, worker token) pushes JSON text
// messages to the host agent of one job:
//   {"type":"snapshot","revision":R,"values":{...},"frozen":[...]}  (from=0, too old, or ahead)
//   {"type":"resume","frozen":[...]}      then the deltas after `from`, in order
//   {"type":"delta","revision":R,"actor":A,"writes":{...}}
//   {"type":"freeze","prefix":P,"frozen":true|false}
//   {"type":"keepalive","revision":R}     R: the newest revision sent
// A receiver that sees a revision other than its own + 1, or a keepalive naming a revision it
// has not seen, lost a message: it resubscribes from its own revision.
//
// The JSON rules are in json.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// Config values keep their JSON type: a float is written with a decimal point.
nlohmann::json config_values_json(const plugin::ConfigView& values);
plugin::ConfigView config_values_from_json(const nlohmann::json& j);

namespace api {

// POST kJobConfig: a human's write (operator token) or a policy's (worker token, `policy` set).
struct ConfigWriteRequest {
  std::optional<std::string> policy;  // the policy's name, without "policy:"
  plugin::Params writes;              // at least one
  std::string reason;
  std::uint64_t decided_from = 0;  // a policy's: the revision it decided from (0: not said)
};
struct ConfigWriteReply {
  std::uint64_t revision = 0;
  std::string actor;
};

// POST kJobConfigFreeze / kJobConfigUnfreeze (operator); the reply lists the frozen prefixes.
struct FreezeRequest {
  std::string prefix;
};

// The revision a job's trainer reports applying, from its telemetry.
struct AppliedConfig {
  std::uint64_t revision = 0;
  std::uint64_t since_step = 0;
  std::uint64_t last_step = 0;
  std::string host;
  std::int64_t time_ms = 0;
  std::uint64_t points = 0;
  std::uint64_t missed = 0;
};

// GET kJobConfig.
struct ConfigInfo {
  std::string job;
  std::uint64_t revision = 0;
  plugin::ConfigView values;
  std::vector<std::string> frozen;
  std::optional<AppliedConfig> applied;
};

// One entry of GET kJobConfigLog.
struct AuditRecord {
  std::uint64_t seq = 0;
  std::string kind = "write";  // "write", "freeze" or "unfreeze" (path: the prefix)
  std::uint64_t revision = 0;
  std::string actor;
  std::string reason;
  std::string path;
  std::optional<plugin::ParamValue> old_value;
  plugin::ParamValue new_value;
  std::int64_t time_ms = 0;
  bool accepted = true;
  std::string refusal;
  // How many times this refusal was made in a row (a policy retrying under a freeze); time_ms
  // and reason are the latest one's. 1 for every other entry.
  std::uint64_t count = 1;
};

// One message of the config stream.
struct StreamMessage {
  enum class Type { kSnapshot, kResume, kDelta, kFreeze, kKeepalive };
  Type type = Type::kKeepalive;
  std::uint64_t revision = 0;       // snapshot, delta, keepalive
  plugin::ConfigView values;        // snapshot: the tree; delta: the writes
  std::vector<std::string> frozen;  // snapshot, resume
  std::string actor;                // delta
  std::string prefix;               // freeze
  bool now_frozen = false;          // freeze: frozen (true) or unfrozen

  static StreamMessage snapshot(std::uint64_t revision, plugin::ConfigView values,
                                std::vector<std::string> frozen);
  static StreamMessage resume(std::vector<std::string> frozen);
  static StreamMessage delta(std::uint64_t revision, std::string actor, plugin::ConfigView writes);
  static StreamMessage freeze(std::string prefix, bool frozen);
  static StreamMessage keepalive(std::uint64_t revision);
};

struct FrozenList {  // the reply to a freeze or unfreeze
  std::vector<std::string> frozen;
};
struct AuditLog {  // GET kJobConfigLog
  std::vector<AuditRecord> entries;
};

// One change of a job's config as the curves draw it (GET kJobConfigMarkers): the audit entries
// of one write, freeze or unfreeze taken together. JSON: {"seq","last_seq","kind","revision",
// "actor","reason","time_ms","accepted","refusal","count","applied_step","keys":[{"path","old",
// "new"}]}. applied_step: for an accepted write, the first step the trainer reported with a
// config revision at or after this one (where the change took effect); null until then, and for
// refusals, freezes and unfreezes.
struct ConfigMarkerKey {
  std::string path;
  std::optional<plugin::ParamValue> old_value;
  plugin::ParamValue new_value;
};
struct ConfigMarker {
  std::uint64_t seq = 0;       // the first audit entry's
  std::uint64_t last_seq = 0;  // the last one's: the next page starts after it
  std::string kind = "write";
  std::uint64_t revision = 0;
  std::string actor;
  std::string reason;
  std::int64_t time_ms = 0;
  bool accepted = true;
  std::string refusal;
  std::uint64_t count = 1;
  std::optional<std::uint64_t> applied_step;
  std::vector<ConfigMarkerKey> keys;
};
struct ConfigMarkers {  // GET kJobConfigMarkers; `after`: the last audit entry read (page on)
  std::vector<ConfigMarker> markers;
  std::uint64_t after = 0;
};
void to_json(nlohmann::json& j, const ConfigMarker& m);
void to_json(nlohmann::json& j, const ConfigMarkers& m);

// `writes` missing, empty, not an object or over the bounds of checked.hpp: invalid_argument.
TV_API_JSON(ConfigWriteRequest);
TV_API_JSON(FreezeRequest);
TV_API_JSON(ConfigInfo);
TV_API_JSON(AuditRecord);
TV_API_JSON(StreamMessage);  // an unknown type: std::invalid_argument
TV_API_JSON(ConfigWriteReply);
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(FrozenList, frozen)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(AuditLog, entries)
TV_API_JSON(AppliedConfig);
// An applied revision that may be unknown: null in JSON.
nlohmann::json applied_json(const std::optional<AppliedConfig>& a);
std::optional<AppliedConfig> applied_from_json(const nlohmann::json& j);

}  // namespace api
}  // namespace tv::fleet
