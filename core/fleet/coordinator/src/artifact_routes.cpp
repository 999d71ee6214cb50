// The artifact routes: the lease holder's upload (streamed into the store), and reads.
#include <span>

#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/artifacts.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;

int artifact_status(ArtifactErrc c) {
  switch (c) {
    case ArtifactErrc::invalid_argument:
    case ArtifactErrc::digest_mismatch:
    case ArtifactErrc::size_mismatch:
      return 400;
    case ArtifactErrc::too_large:
      return 413;
    case ArtifactErrc::not_found:
      return 404;
    case ArtifactErrc::upload_closed:
      return 409;
    case ArtifactErrc::io:
      return 500;
    case ArtifactErrc::storage_full:
      return 507;
  }
  return 500;
}

Response artifact_error(const ArtifactError& e) {
  if (e.code == ArtifactErrc::storage_full) return Response::error(507, "disk full: " + e.message);
  return Response::error(artifact_status(e.code), e.message);
}

// Fills `buf` from the body (a read hands over only what has arrived) and returns how much it
// holds: less than its size only at the body's end, 0 after it. Whole pieces of the store's
// write buffer size go to the file without a copy into that buffer.
std::size_t read_full(BodyStream& body, std::span<std::byte> buf) {
  std::size_t filled = 0;
  while (filled < buf.size()) {
    const std::size_t n = body.read(buf.subspan(filled));
    if (n == 0) break;
    filled += n;
  }
  return filled;
}

Response upload(CoordinatorState& s, Request& req, BodyStream* body, const std::string& host) {
  const std::string& job = req.params[0];
  // Fenced like every other lease call: only the holder host, with its lease token, may upload.
  const HeartbeatReply h =
      s.queue.heartbeat(job, req.header(api::header_key(api::kLeaseTokenHeader)), host);
  if (h.result != QueueResult::kOk) return lease_reply(s, h.result, job, host);
  if (h.cancel_requested) return Response::error(409, "job " + job + ": cancelled by an operator");
  std::optional<std::uint64_t> size;
  if (auto n = body->content_length()) size = *n;
  auto up = s.artifacts->begin_upload(req.header(api::header_key(api::kContentSha256Header)), size,
                                      job, req.params[1]);
  if (!up) return artifact_error(up.error());
  std::vector<std::byte> buf(std::size_t{1} << 20);  // the store's write buffer size
  while (std::size_t n = read_full(*body, buf)) {
    auto w = up.value().write(std::span<const std::byte>(buf.data(), n));
    if (!w) return artifact_error(w.error());
  }
  auto done = up.value().commit();
  if (!done) return artifact_error(done.error());
  s.metrics.artifact_uploaded_bytes.inc(done.value().size);
  return Response::json(200, nlohmann::json(api::UploadReply{done.value().digest, done.value().size,
                                                             done.value().deduplicated}));
}

}  // namespace

void add_artifact_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"PUT", std::string(api::kJobArtifactUpload),
               for_hosts(s, [&s](Request& req, BodyStream* body,
                                 const std::string& host) { return upload(s, req, body, host); }),
               true});
  r.push_back(
      {"GET", std::string(api::kArtifactStat), for_readers(s, [&s](Request& req, BodyStream*) {
         const auto info = s.artifacts->stat(req.params[0]);
         if (!info) return Response::error(404, "artifact " + req.params[0] + ": not stored");
         return Response::json(200, nlohmann::json(api::ArtifactStat{info->digest, info->size}));
       })});
  r.push_back({"GET", std::string(api::kArtifact), for_readers(s, [&s](Request& req, BodyStream*) {
                 const auto info = s.artifacts->stat(req.params[0]);
                 if (!info)
                   return Response::error(404, "artifact " + req.params[0] + ": not stored");
                 Response res;
                 res.content_type = "application/octet-stream";
                 res.file_path = info->path.string();
                 s.metrics.artifact_downloaded_bytes.inc(info->size);
                 return res;
               })});
  r.push_back(
      {"GET", std::string(api::kJobArtifacts), for_readers(s, [&s](Request& req, BodyStream*) {
         auto list = s.artifacts->list_for_job(req.params[0]);
         if (!list) return artifact_error(list.error());
         std::vector<api::ArtifactInfo> out;
         for (const auto& ref : list.value())
           out.push_back({ref.name, ref.digest, ref.size, ref.uploaded_at});
         return Response::json(200, nlohmann::json(api::ArtifactList{out}));
       })});
}

}  // namespace tv::fleet::coordinator
