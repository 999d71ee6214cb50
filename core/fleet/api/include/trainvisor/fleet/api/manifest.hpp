// The manifest reload endpoint (POST kManifestReload[?dry_run=1], operator token) and the
// error reply every endpoint answers a refusal with.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"

namespace tv::fleet::api {

// A job of the manifest whose spec changed (a hyperparameter, the seed, ...): it has a new id,
// and the jobs with its name and other ids stay in the queue under their old ids.
struct ReplacedJob {
  std::string name;
  std::string id;                     // the new job's id
  std::vector<std::string> replaces;  // the ids of the jobs already in the queue with that name
};

struct ReloadReply {
  bool dry_run = false;
  std::vector<std::string> added;  // job names (the replacements of `replaced` included)
  std::vector<std::string> unchanged;
  std::vector<std::string> removed;   // in the queue, no longer in the manifest (kept)
  std::int64_t written = 0;           // rows written (0 for a dry run)
  std::vector<ReplacedJob> replaced;  // absent in JSON: none
  // "path:line:column: warning: ..." for what is valid but likely a mistake (an allowed_hosts
  // name no host has). Absent in JSON: none.
  std::vector<std::string> warnings;
};

// {"error": reason, "status": code} and, for an invalid manifest, "diagnostics": one line each.
struct ErrorReply {
  std::string error;
  int status = 0;
  std::vector<std::string> diagnostics;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ReplacedJob, name, id, replaces)
TV_API_JSON(ReloadReply);
TV_API_JSON(ErrorReply);  // "diagnostics" only when there are some
// Never throws: a body that is not an error object gives `fallback_text` as the error.
ErrorReply error_reply_from_json(const nlohmann::json& j, int status,
                                 const std::string& fallback_text);

}  // namespace tv::fleet::api
