#include "trainvisor/fleet/api/artifacts.hpp"

namespace tv::fleet::api {

using nlohmann::json;

json to_json(const UploadReply& m) {
  return {{"digest", m.digest}, {"size", m.size}, {"deduplicated", m.deduplicated}};
}

UploadReply upload_reply_from_json(const json& j) {
  return {j.at("digest"), j.at("size"), j.value("deduplicated", false)};
}

json to_json(const ArtifactStat& m) {
  return {{"digest", m.digest}, {"size", m.size}};
}

ArtifactStat artifact_stat_from_json(const json& j) {
  return {j.at("digest"), j.at("size")};
}

json to_json(const std::vector<ArtifactInfo>& list) {
  json a = json::array();
  for (const ArtifactInfo& ref : list) {
    a.push_back({{"name", ref.name},
                 {"digest", ref.digest},
                 {"size", ref.size},
                 {"uploaded_at", ref.uploaded_at}});
  }
  return {{"artifacts", a}};
}

std::vector<ArtifactInfo> artifact_list_from_json(const json& j) {
  std::vector<ArtifactInfo> out;
  for (const json& a : j.at("artifacts"))
    out.push_back(
        {a.at("name"), a.at("digest"), a.at("size"), a.value("uploaded_at", std::int64_t{0})});
  return out;
}

}  // namespace tv::fleet::api
