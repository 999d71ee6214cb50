// The artifact endpoints' messages and their JSON. An upload (PUT kJobArtifactUpload, worker
// token) carries the lease in kLeaseTokenHeader and the body's sha256 in kContentSha256Header;
// a download (GET kArtifact) is the stored bytes.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tv::fleet::api {

// The reply to an upload.
struct UploadReply {
  std::string digest;
  std::uint64_t size = 0;
  bool deduplicated = false;  // the store had these bytes already
};

// GET kArtifactStat.
struct ArtifactStat {
  std::string digest;
  std::uint64_t size = 0;
};

// One entry of GET kJobArtifacts.
struct ArtifactInfo {
  std::string name;
  std::string digest;
  std::uint64_t size = 0;
  std::int64_t uploaded_at = 0;
};

nlohmann::json to_json(const UploadReply& m);
UploadReply upload_reply_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ArtifactStat& m);
ArtifactStat artifact_stat_from_json(const nlohmann::json& j);
nlohmann::json to_json(const std::vector<ArtifactInfo>& list);  // {"artifacts": [...]}
std::vector<ArtifactInfo> artifact_list_from_json(const nlohmann::json& j);

}  // namespace tv::fleet::api
