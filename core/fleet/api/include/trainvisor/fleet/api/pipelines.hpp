// The pipeline endpoints' messages (JSON rules in json.hpp; routes and roles in paths.hpp).
//
// Ingest: POST kPipelineSamples with a sample batch as the body (Content-Type
// kSampleBatchContentType; the format is pipelines/sample_batch.hpp's: three .npy arrays as
// np.save writes them), the ingest, worker or operator token, and optionally an Idempotency-Key
// header: a retry with the same key stores nothing twice and gets the first reply again
// (`repeated`). The reply comes once the segment is durable.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"

namespace tv::fleet::api {

inline constexpr const char* kSampleBatchContentType = "application/x-trainvisor-batch";

struct IngestReply {
  std::string pipeline;
  std::int64_t seq = 0;  // the segment's number in the pipeline's stream
  std::string digest;    // its sha256
  std::int64_t rows = 0;
  std::int64_t first_sample = 0;  // the stream index of its first row
  std::int64_t first_time_ns = 0;
  std::int64_t last_time_ns = 0;
  std::int64_t bytes = 0;
  bool repeated = false;  // an Idempotency-Key seen before: nothing new was stored
};

// One pipeline, as GET kPipelines and GET kPipeline show it.
struct PipelineSummary {
  std::string name, model, trigger, source, strategy;
  std::string state;                       // "running" or "stopped"
  std::string error;                       // why it stopped
  std::int64_t segments = 0, samples = 0;  // stored
  std::int64_t read_samples = 0;           // what its trigger has read
  std::int64_t triggers = 0;               // firings
  std::int64_t training = 0;               // of which the training is not decided yet
  std::string alias;
  std::string deployed;  // the alias's model; "" none yet
  std::int64_t deployed_trigger = -1;
  std::string features = "raw";  // what the trigger reads: "raw" samples or "embeddings"
  // With embeddings: whose the trigger reads now ("" the initial model drawn from its seed), and
  // the segment it started afresh at; -1 before its trigger began (and for raw).
  std::string features_model;
  std::int64_t features_since_seq = -1;
  // CPU seconds the coordinator spent in the trigger (embedding included) since it last loaded
  // the manifest: a measurement, for costs.
  double trigger_cpu_s = 0;
  double trigger_wall_s = 0;
};

struct PipelineList {
  std::vector<PipelineSummary> pipelines;
};

// One firing and what became of its training (GET kPipelineTriggers).
struct TriggerInfo {
  std::int64_t index = 0;
  std::int64_t window_begin = 0, end_sample = 0;  // trained on stream samples [begin, end)
  std::int64_t time_ns = 0;
  std::string reason;
  nlohmann::json stats = nlohmann::json::object();
  std::string job_id;
  std::string initial_weights, baseline;
  std::string outcome;  // training, deployed, refused, failed
  std::string model;
  nlohmann::json metrics = nlohmann::json::object();
  std::string gate;
  std::int64_t fired_ms = 0, decided_ms = 0;
};

struct TriggerList {
  std::string pipeline;
  std::vector<TriggerInfo> triggers;
};

// POST kPipelineDeploy (operator): move the alias to one of the pipeline's models.
struct DeployRequest {
  std::string digest;
  std::string reason;
};

// POST kPipelineRollback (operator): move the alias back to the model it held before.
struct RollbackRequest {
  std::string reason;
};

// The alias after a move, and its history (GET kPipeline's `aliases` log).
struct AliasMove {
  std::string alias, pipeline, digest, previous;
  std::int64_t trigger = -1, revision = 0;
  std::string actor, reason;
  std::int64_t at_ms = 0;
};

struct PipelineDetail {
  PipelineSummary summary;
  nlohmann::json spec = nlohmann::json::object();  // the manifest's pipeline, as parsed
  std::vector<AliasMove> alias_log;
};

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(IngestReply, pipeline, seq, digest, rows, first_sample,
                                   first_time_ns, last_time_ns, bytes, repeated)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PipelineSummary, name, model, trigger, source, strategy, state,
                                   error, segments, samples, read_samples, triggers, training,
                                   alias, deployed, deployed_trigger, features, features_model,
                                   features_since_seq, trigger_cpu_s, trigger_wall_s)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PipelineList, pipelines)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TriggerInfo, index, window_begin, end_sample, time_ns, reason,
                                   stats, job_id, initial_weights, baseline, outcome, model,
                                   metrics, gate, fired_ms, decided_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TriggerList, pipeline, triggers)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(DeployRequest, digest, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RollbackRequest, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(AliasMove, alias, pipeline, digest, previous, trigger, revision,
                                   actor, reason, at_ms)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(PipelineDetail, summary, spec, alias_log)

}  // namespace tv::fleet::api
