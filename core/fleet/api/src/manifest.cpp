#include "trainvisor/fleet/api/manifest.hpp"

#include "trainvisor/fleet/api/checked.hpp"

namespace tv::fleet::api {

using nlohmann::json;

void to_json(json& j, const ReloadReply& m) {
  j = {{"dry_run", m.dry_run},  {"added", m.added},     {"unchanged", m.unchanged},
       {"removed", m.removed},  {"written", m.written}, {"replaced", m.replaced},
       {"warnings", m.warnings}};
}

void from_json(const json& j, ReloadReply& m) {
  const auto list = [&j](const char* key) {
    return j.value(key, json::array()).get<std::vector<std::string>>();
  };
  m.dry_run = bool_field(j, "", "dry_run", false);
  m.added = list("added");
  m.unchanged = list("unchanged");
  m.removed = list("removed");
  m.written = int_field(j, "", "written", 0, 0, std::int64_t(kMaxStored));
  m.replaced = j.value("replaced", json::array()).get<std::vector<ReplacedJob>>();
  m.warnings = list("warnings");
}

void to_json(json& j, const ErrorReply& m) {
  j = {{"error", m.error}, {"status", m.status}};
  if (!m.diagnostics.empty()) j["diagnostics"] = m.diagnostics;
}

void from_json(const json& j, ErrorReply& m) {
  const int status = j.is_object() ? static_cast<int>(int_field(j, "", "status", 0, 0, 999)) : 0;
  m = error_reply_from_json(j, status, std::string());
}

ErrorReply error_reply_from_json(const json& j, int status, const std::string& fallback_text) {
  ErrorReply e;
  e.status = status;
  e.error = fallback_text;
  if (!j.is_object()) return e;

  if (const auto it = j.find("error"); it != j.end() && it->is_string()) e.error = *it;
  if (const auto it = j.find("diagnostics"); it != j.end() && it->is_array()) {
    for (const json& d : *it)
      if (d.is_string()) e.diagnostics.push_back(d);
  }
  return e;
}

}  // namespace tv::fleet::api
