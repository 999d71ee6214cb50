// The artifact endpoints' messages (JSON rules in json.hpp). An upload (PUT kJobArtifactUpload,
// worker token) carries the lease in kLeaseTokenHeader and the body's sha256 in
// kContentSha256Header; a download (GET kArtifact) is the stored bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"

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

struct ArtifactList {
  std::vector<ArtifactInfo> artifacts;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(UploadReply, digest, size, deduplicated)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArtifactStat, digest, size)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArtifactInfo, name, digest, size, uploaded_at)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(ArtifactList, artifacts)

}  // namespace tv::fleet::api
