#include "trainvisor/fleet/api/manifest.hpp"

namespace tv::fleet::api {

using nlohmann::json;

void to_json(json& j, const ErrorReply& m) {
  j = {{"error", m.error}, {"status", m.status}};
  if (!m.diagnostics.empty()) j["diagnostics"] = m.diagnostics;
}

void from_json(const json& j, ErrorReply& m) {
  m = error_reply_from_json(j, j.value("status", 0), std::string());
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
