// The manifest reload endpoint (POST kManifestReload[?dry_run=1], operator token) and the
// error reply every endpoint answers a refusal with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"

namespace tv::fleet::api {

struct ReloadReply {
  bool dry_run = false;
  std::vector<std::string> added;  // job names
  std::vector<std::string> unchanged;
  std::vector<std::string> removed;  // in the queue, no longer in the manifest (kept)
  std::int64_t written = 0;          // rows written (0 for a dry run)
};

// {"error": reason, "status": code} and, for an invalid manifest, "diagnostics": one line each.
struct ErrorReply {
  std::string error;
  int status = 0;
  std::vector<std::string> diagnostics;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ReloadReply, dry_run, added, unchanged, removed, written)
TV_API_JSON(ErrorReply);  // "diagnostics" only when there are some
// Never throws: a body that is not an error object gives `fallback_text` as the error.
ErrorReply error_reply_from_json(const nlohmann::json& j, int status,
                                 const std::string& fallback_text);

}  // namespace tv::fleet::api
