// The pipeline routes: ingest (a sample batch sealed as a segment, then the trigger runner told),
// the pipelines and their firings, the deployed model, an operator's deploy and rollback, and
// segment downloads for the hosts that train on them.
#include <algorithm>
#include <span>

#include "coordinator_state.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/api/pipelines.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;
using pipelines::SampleBatchData;

// The body, whole, refusing one over `limit` bytes before reading it (Content-Length) or as soon
// as it passes the limit (chunked).
std::optional<std::string> read_body(BodyStream& body, std::size_t limit) {
  std::string out;
  if (auto n = body.content_length()) {
    if (*n > limit) return std::nullopt;
    out.reserve(*n);  // a batch is megabytes: read into place, not into a growing string
  }
  std::vector<std::byte> buf(std::size_t{1} << 20);
  while (std::size_t n = body.read(buf)) {
    if (out.size() + n > limit) return std::nullopt;
    out.append(reinterpret_cast<const char*>(buf.data()), n);
  }
  return out;
}

// What the manifest says a batch of `spec`'s stream must be, beyond what the codec checks.
std::optional<std::string> batch_problem(const PipelineSpec& spec, const SampleBatchData& b) {
  if (b.sample_shape != spec.stream.sample_shape) {
    return "features: one sample is " + sample_shape_text(b.sample_shape) + ", pipeline '" +
           spec.name + "' takes " + sample_shape_text(spec.stream.sample_shape);
  }
  for (std::size_t i = 0; i < b.labels.size(); ++i) {
    if (b.labels[i] >= spec.stream.num_classes) {
      return "labels: row " + std::to_string(i) + " is " + std::to_string(b.labels[i]) +
             ", pipeline '" + spec.name + "' has " + std::to_string(spec.stream.num_classes) +
             " classes (0.." + std::to_string(spec.stream.num_classes - 1) + ")";
    }
  }
  return std::nullopt;
}

Response ingest(CoordinatorState& s, Request& req, BodyStream* body) {
  const std::string& name = req.params[0];
  const std::optional<PipelineSpec> spec = s.runner->pipeline(name);
  if (!spec) return no_such_pipeline(s, name);
  const pipelines::BatchLimits limits;
  const std::optional<std::string> bytes = read_body(*body, limits.max_bytes);
  if (!bytes) {
    return Response::error(413, "pipeline '" + name + "': a batch is at most " +
                                    std::to_string(limits.max_bytes) + " bytes; send smaller ones");
  }
  auto decoded = std::make_shared<SampleBatchData>();
  SampleBatchData& batch = *decoded;
  try {
    batch = pipelines::decode_batch(*bytes, limits);
  } catch (const pipelines::BatchError& e) {
    return Response::error(400, "pipeline '" + name + "': " + e.what());
  }
  if (const auto why = batch_problem(*spec, batch))
    return Response::error(400, "pipeline '" + name + "': " + *why);
  const std::string key = req.header(api::header_key(api::kIdempotencyKeyHeader));
  // A key already stored gives back its segment, which is not the newest the stream had before.
  const auto newest = s.segments->last(name);
  const std::int64_t before = newest ? newest->seq : -1;
  pipelines::SegmentInfo seg;
  try {
    seg = s.segments->append(name, batch, key);
  } catch (const pipelines::SegmentError& e) {
    return Response::error(409, "pipeline '" + name + "': " + e.what());
  }
  const bool repeated = seg.seq <= before;
  // The trigger reads a new segment from memory rather than from its file.
  s.runner->notify(name, repeated ? nullptr : std::move(decoded), seg.digest);
  return Response::json(200, nlohmann::json(api::IngestReply{
                                 name, seg.seq, seg.digest, seg.rows, seg.first_sample,
                                 seg.first_time_ns, seg.last_time_ns, seg.bytes, repeated}));
}

}  // namespace

Response no_such_pipeline(const CoordinatorState& s, const std::string& name) {
  const std::vector<std::string> names = s.runner->names();
  const std::string close = did_you_mean(name, names);
  std::string list;
  for (const std::string& n : names)
    list += (list.empty() ? "" : ", ") + n;
  return Response::error(404, "no pipeline named '" + name + "'" +
                                  (close.empty() ? "" : " (did you mean '" + close + "'?)") +
                                  "; pipelines: " + (list.empty() ? "none" : list));
}

void add_pipeline_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back(
      {"POST", std::string(api::kPipelineSamples),
       for_ingesters(s, [&s](Request& req, BodyStream* body) { return ingest(s, req, body); }),
       true});
  add_pipeline_read_routes(s, r);
}

}  // namespace tv::fleet::coordinator
