// The coordinator's HTTP routes and headers: one definition for the server, which registers the
// patterns, and every client, which fills them with target(). A pattern's {name} parts are path
// parameters, filled in order.
//
// Who may call what (the coordinator enforces it, see coordinator.hpp):
//   anyone:   health, the dashboard's bundle (/ and /assets/NAME: no data in it)
//   reader:   jobs, job, job by reference, explain, workers, artifacts, artifact(+stat),
//             config, config log, config markers, telemetry and curve (read), the knob schema,
//             a job's log tail (read), the events push channel (its hello message carries the
//             read token), the Prometheus metrics: the read, operator or worker token, a host
//             credential, or none where reads are public
//   worker token: enrol a host name that has no credential yet (trust on first use); a config
//             write as policy:NAME from a policy running as its own process (NAME its own, by
//             api::policy_name_problem's rule and none of the job's plugin policies; the job
//             claimed or running; held by freezes, validation and human wins like any policy)
//   host (X-Host-Credential, the host named by it, never by a body): claim (as itself);
//             heartbeat, running, complete, fail, upload, its trainer's log tail (the job's
//             holder, with the lease token); telemetry and config stream (the job's holder); a
//             config write as policy:NAME (the job's holder, NAME one of the job's policies)
//   operator: cancel, requeue, freeze, unfreeze, manifest reload, enrol (a new credential
//             whatever the name's state), revoke; a config write as human:NAME; a pipeline's
//             deploy and rollback
//   ingest (the ingest, worker or operator token): a pipeline's samples
//   reader also: pipelines, pipeline, its triggers, its deployed model, a segment
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tv::fleet::api {

inline constexpr std::string_view kHealth = "/v1/health";
inline constexpr std::string_view kJobs = "/v1/jobs";  // ?status=S
inline constexpr std::string_view kJob = "/v1/job/{id}";
// A job by full id, name or id prefix (at least 4 characters): 200 with the job, 404 when
// nothing matches, 409 listing the ids and statuses when several jobs match (a name shared by
// the jobs a reload replaced and their replacements). The one place a name becomes an id.
inline constexpr std::string_view kJobByRef = "/v1/jobs/{ref}";
inline constexpr std::string_view kJobExplain = "/v1/job/{id}/explain";
inline constexpr std::string_view kWorkers = "/v1/workers";
inline constexpr std::string_view kClaim = "/v1/job/claim";
inline constexpr std::string_view kJobHeartbeat = "/v1/job/{id}/heartbeat";
inline constexpr std::string_view kJobRunning = "/v1/job/{id}/running";
inline constexpr std::string_view kJobComplete = "/v1/job/{id}/complete";
inline constexpr std::string_view kJobFail = "/v1/job/{id}/fail";
inline constexpr std::string_view kJobCancel = "/v1/job/{id}/cancel";
inline constexpr std::string_view kJobRequeue = "/v1/job/{id}/requeue";
inline constexpr std::string_view kJobArtifactUpload = "/v1/job/{id}/artifact/{name}";
inline constexpr std::string_view kJobArtifacts = "/v1/job/{id}/artifacts";
inline constexpr std::string_view kArtifact = "/v1/artifact/{digest}";
inline constexpr std::string_view kArtifactStat = "/v1/artifact/{digest}/stat";
inline constexpr std::string_view kJobConfig = "/v1/job/{id}/config";
inline constexpr std::string_view kJobConfigStream = "/v1/job/{id}/config/stream";  // ?from=REV
inline constexpr std::string_view kJobConfigFreeze = "/v1/job/{id}/config/freeze";
inline constexpr std::string_view kJobConfigUnfreeze = "/v1/job/{id}/config/unfreeze";
inline constexpr std::string_view kJobConfigLog = "/v1/job/{id}/config/log";  // ?after=&limit=
// The config log grouped by change, with the step each took effect at (api::ConfigMarkers):
// ?after=SEQ&limit=N (audit entries, as for the log), refusals included.
inline constexpr std::string_view kJobConfigMarkers = "/v1/job/{id}/config/markers";
inline constexpr std::string_view kJobTelemetry = "/v1/job/{id}/telemetry";  // ?max_points=N
// One metric downsampled into buckets (api::MetricCurve):
// ?metric=M&x=step|time&buckets=N&from=X&to=X; M one of api::kCurveMetricNames, N 1..10000
// (default 1000), from/to the x range (default: the job's whole curve). A bad parameter: 400
// naming it and what it may be.
inline constexpr std::string_view kJobCurve = "/v1/job/{id}/curve";
// The trainer's live knobs (GET, reader): {"knobs":[{"key","type":"float64"|"int64"|"bool"|
// "string","default","min"|null,"max"|null,"allowed":[...],"help","takes_effect":"next_step"|
// "next_epoch"|"start"|"agent"}]}, values typed as config values are (a float keeps its decimal
// point); takes_effect says when the trainer acts on a change (knobs::takes_effect).
inline constexpr std::string_view kKnobs = "/v1/knobs";
// The tail of a job's trainer log (api/job_log.hpp). POST (the holder, X-Lease-Token): the body
// is the tail's bytes, whole lines, ?truncated=1 when older lines were left out; it replaces the
// one kept (200 {"ok":true,"lines":N}; 413 over a bound). GET (reader): api::JobLog, lines
// cleaned; 404 for an unknown job.
inline constexpr std::string_view kJobLog = "/v1/job/{id}/log";
// The dashboard's push channel, a WebSocket (its protocol: events.hpp).
inline constexpr std::string_view kEvents = "/v1/events";
inline constexpr std::string_view kManifestReload = "/v1/manifest/reload";  // ?dry_run=1
inline constexpr std::string_view kHostEnrol = "/v1/hosts/{name}/enrol";
inline constexpr std::string_view kHostRevoke = "/v1/hosts/{name}/revoke";
inline constexpr std::string_view kPipelines = "/v1/pipelines";
inline constexpr std::string_view kPipeline = "/v1/pipeline/{name}";
inline constexpr std::string_view kPipelineSamples = "/v1/pipeline/{name}/samples";
inline constexpr std::string_view kPipelineTriggers = "/v1/pipeline/{name}/triggers";
inline constexpr std::string_view kPipelineModel = "/v1/pipeline/{name}/model";
inline constexpr std::string_view kPipelineDeploy = "/v1/pipeline/{name}/deploy";
inline constexpr std::string_view kPipelineRollback = "/v1/pipeline/{name}/rollback";
inline constexpr std::string_view kSegment = "/v1/segment/{digest}";
// The Prometheus text exposition format 0.0.4, outside /v1 where scrapers look for it.
inline constexpr std::string_view kMetrics = "/metrics";

// Request headers, as clients send them (the server matches them case-insensitively).
inline constexpr std::string_view kWorkerTokenHeader = "X-Worker-Token";
inline constexpr std::string_view kOperatorTokenHeader = "X-Operator-Token";
inline constexpr std::string_view kReadTokenHeader = "X-Read-Token";
inline constexpr std::string_view kIngestTokenHeader = "X-Ingest-Token";
inline constexpr std::string_view kIdempotencyKeyHeader = "Idempotency-Key";
inline constexpr std::string_view kOperatorNameHeader = "X-Operator-Name";
inline constexpr std::string_view kLeaseTokenHeader = "X-Lease-Token";
// A host's credential, "NAME:SECRET" as its enrolment returned it.
inline constexpr std::string_view kHostCredentialHeader = "X-Host-Credential";
inline constexpr std::string_view kContentSha256Header = "X-Content-SHA256";

using Query = std::vector<std::pair<std::string, std::string>>;

// The request target for `pattern` with its {params} replaced, in order, by `params`
// (percent-encoded) and `query` appended. Throws std::invalid_argument when the counts differ:
// that is a programming error, never a user's.
std::string target(std::string_view pattern, std::initializer_list<std::string_view> params,
                   const Query& query = {});

// The lowercase form of a header name, as http::Request::header wants it.
std::string header_key(std::string_view name);

}  // namespace tv::fleet::api
