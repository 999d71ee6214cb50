#include "trainvisor/fleet/api/manifest.hpp"

namespace tv::fleet::api {

using nlohmann::json;

json to_json(const ReloadReply& m) {
  return {{"dry_run", m.dry_run},
          {"added", m.added},
          {"unchanged", m.unchanged},
          {"removed", m.removed},
          {"written", m.written}};
}

ReloadReply reload_reply_from_json(const json& j) {
  ReloadReply m;
  m.dry_run = j.value("dry_run", false);
  m.added = j.at("added").get<std::vector<std::string>>();
  m.unchanged = j.at("unchanged").get<std::vector<std::string>>();
  m.removed = j.at("removed").get<std::vector<std::string>>();
  m.written = j.value("written", std::int64_t{0});
  return m;
}

json to_json(const ErrorReply& m) {
  json j = {{"error", m.error}, {"status", m.status}};
  if (!m.diagnostics.empty()) j["diagnostics"] = m.diagnostics;
  return j;
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
