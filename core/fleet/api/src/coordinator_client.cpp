#include "trainvisor/fleet/api/coordinator_client.hpp"

#include <stdexcept>

#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::api {
namespace {

using nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Who a request comes from: a reader, the worker token (enrolment only), an enrolled host (its
// credential) or an operator.
enum class Role { kAnyone, kWorker, kHost, kOperator };

// The refusal in a non-2xx reply; a body that is not JSON is quoted as text.
ErrorReply refusal_of(const http::Response& r) {
  json j;
  try {
    j = json::parse(r.body);
  } catch (const json::exception&) {
    return error_reply_from_json(nullptr, r.status, r.body.substr(0, 200));
  }
  return error_reply_from_json(j, r.status, r.body.substr(0, 200));
}

// The reply decoded by `decode`, or the refusal. A 2xx reply this protocol cannot read throws.
template <class F>
auto reply_of(const http::Response& r, F decode) -> Reply<decltype(decode(json()))> {
  using T = decltype(decode(json()));
  if (r.status < 200 || r.status >= 300) return Reply<T>::refused(refusal_of(r));
  try {
    return Reply<T>::accepted(r.status, decode(json::parse(r.body)));
  } catch (const std::exception& e) {
    throw std::runtime_error("coordinator answered " + std::to_string(r.status) +
                             " with a reply this client cannot read (" + e.what() +
                             "): " + r.body.substr(0, 200));
  }
}

Ok ok_of(const json&) {
  return {};
}

// The list in field `member` of a reply of type List.
template <class List, class T>
auto listed(std::vector<T> List::*member) {
  return [member](const json& j) { return j.get<List>().*member; };
}

// The reply's message of type T.
template <class T>
T decoded(const json& j) {
  return j.get<T>();
}

}  // namespace

struct CoordinatorClient::Impl {
  CoordinatorClientOptions o;
  http::Client http;

  Headers headers(Role role) const {
    switch (role) {
      case Role::kWorker:
        return {{std::string(kWorkerTokenHeader), o.worker_token}};
      case Role::kHost:
        return {{std::string(kHostCredentialHeader), o.host_credential}};
      case Role::kOperator:
        return {{std::string(kOperatorTokenHeader), o.operator_token},
                {std::string(kOperatorNameHeader), o.operator_name}};
      case Role::kAnyone:
        break;
    }
    return {};
  }
  // A coordinator whose reads are not public takes any token this client holds.
  Headers read_headers() const {
    Headers h;
    for (const auto& [name, token] : {std::pair{kReadTokenHeader, &o.read_token},
                                      std::pair{kOperatorTokenHeader, &o.operator_token},
                                      std::pair{kWorkerTokenHeader, &o.worker_token},
                                      std::pair{kHostCredentialHeader, &o.host_credential}}) {
      if (!token->empty()) h.emplace_back(std::string(name), *token);
    }
    return h;
  }

  http::Response get(const std::string& target) {
    return http.request("GET", target, {}, read_headers());
  }
  http::Response post(Role role, const std::string& target, const json& body) {
    return http.request("POST", target, body.dump(), headers(role));
  }
};

CoordinatorClient::CoordinatorClient(CoordinatorClientOptions options)
    : impl_(std::make_unique<Impl>(Impl{options, http::Client(options.http)})) {}

CoordinatorClient::~CoordinatorClient() = default;
CoordinatorClient::CoordinatorClient(CoordinatorClient&&) noexcept = default;

const CoordinatorClientOptions& CoordinatorClient::options() const {
  return impl_->o;
}

void CoordinatorClient::set_host_credential(std::string credential) {
  impl_->o.host_credential = std::move(credential);
}

Reply<ClaimReply> CoordinatorClient::claim(const ClaimRequest& request) {
  return reply_of(impl_->post(Role::kHost, target(kClaim, {}), json(request)), decoded<ClaimReply>);
}

Reply<HeartbeatReply> CoordinatorClient::heartbeat(const std::string& job,
                                                   const std::string& lease_token) {
  return reply_of(
      impl_->post(Role::kHost, target(kJobHeartbeat, {job}), json(LeaseRequest{lease_token})),
      decoded<HeartbeatReply>);
}

Reply<Ok> CoordinatorClient::mark_running(const std::string& job, const std::string& lease_token) {
  return reply_of(
      impl_->post(Role::kHost, target(kJobRunning, {job}), json(LeaseRequest{lease_token})), ok_of);
}

Reply<Ok> CoordinatorClient::complete(const std::string& job, const CompleteRequest& request) {
  return reply_of(impl_->post(Role::kHost, target(kJobComplete, {job}), json(request)), ok_of);
}

Reply<Ok> CoordinatorClient::fail(const std::string& job, const FailRequest& request) {
  return reply_of(impl_->post(Role::kHost, target(kJobFail, {job}), json(request)), ok_of);
}

Reply<std::uint64_t> CoordinatorClient::send_telemetry(const std::string& job,
                                                       const TelemetryBatch& batch) {
  return reply_of(
      impl_->post(Role::kHost, target(kJobTelemetry, {job}), json(batch)),
      [](const json& j) { return checked_uint(j.at("stored"), "stored", 0, kMaxStored); });
}

Reply<Ok> CoordinatorClient::send_log(const std::string& job, const std::string& lease_token,
                                      const std::string& tail, bool truncated) {
  Headers h = impl_->headers(Role::kHost);
  h.emplace_back(std::string(kLeaseTokenHeader), lease_token);
  h.emplace_back("Content-Type", "text/plain");
  const Query q = {{"truncated", truncated ? "1" : "0"}};
  return reply_of(impl_->http.request("POST", target(kJobLog, {job}, q), tail, h), ok_of);
}

Reply<UploadReply> CoordinatorClient::upload(const std::string& job, const std::string& name,
                                             const std::string& path, const std::string& sha256,
                                             const std::string& lease_token) {
  Headers h = impl_->headers(Role::kHost);
  h.emplace_back(std::string(kLeaseTokenHeader), lease_token);
  h.emplace_back(std::string(kContentSha256Header), sha256);
  return reply_of(impl_->http.send_file("PUT", target(kJobArtifactUpload, {job, name}), path, h),
                  decoded<UploadReply>);
}

Reply<ConfigWriteReply> CoordinatorClient::write_config(const std::string& job,
                                                        const ConfigWriteRequest& request) {
  const Role role = request.policy ? Role::kHost : Role::kOperator;
  return reply_of(impl_->post(role, target(kJobConfig, {job}), json(request)),
                  decoded<ConfigWriteReply>);
}

Reply<EnrolReply> CoordinatorClient::enrol_self(const std::string& host) {
  return reply_of(impl_->post(Role::kWorker, target(kHostEnrol, {host}), json::object()),
                  decoded<EnrolReply>);
}

Reply<EnrolReply> CoordinatorClient::enrol(const std::string& host) {
  return reply_of(impl_->post(Role::kOperator, target(kHostEnrol, {host}), json::object()),
                  decoded<EnrolReply>);
}

Reply<RevokeReply> CoordinatorClient::revoke(const std::string& host) {
  return reply_of(impl_->post(Role::kOperator, target(kHostRevoke, {host}), json::object()),
                  decoded<RevokeReply>);
}

Reply<CancelReply> CoordinatorClient::cancel(const std::string& job) {
  return reply_of(impl_->post(Role::kOperator, target(kJobCancel, {job}), json::object()),
                  decoded<CancelReply>);
}

Reply<Ok> CoordinatorClient::requeue(const std::string& job, bool from_checkpoint) {
  return reply_of(impl_->post(Role::kOperator, target(kJobRequeue, {job}),
                              json(RequeueRequest{from_checkpoint})),
                  ok_of);
}

Reply<std::vector<std::string>> CoordinatorClient::freeze(const std::string& job,
                                                          const std::string& prefix) {
  return set_frozen(kJobConfigFreeze, job, prefix);
}

Reply<std::vector<std::string>> CoordinatorClient::unfreeze(const std::string& job,
                                                            const std::string& prefix) {
  return set_frozen(kJobConfigUnfreeze, job, prefix);
}

Reply<std::vector<std::string>> CoordinatorClient::set_frozen(std::string_view route,
                                                              const std::string& job,
                                                              const std::string& prefix) {
  return reply_of(impl_->post(Role::kOperator, target(route, {job}), json(FreezeRequest{prefix})),
                  listed(&FrozenList::frozen));
}

Reply<ReloadReply> CoordinatorClient::reload_manifest(bool dry_run) {
  const Query q = dry_run ? Query{{"dry_run", "1"}} : Query{};
  return reply_of(impl_->post(Role::kOperator, target(kManifestReload, {}, q), json::object()),
                  decoded<ReloadReply>);
}

Reply<Health> CoordinatorClient::health() {
  return reply_of(impl_->get(target(kHealth, {})), decoded<Health>);
}

Reply<std::vector<JobInfo>> CoordinatorClient::jobs(std::optional<JobStatus> status) {
  const Query q = status ? Query{{"status", std::string(to_string(*status))}} : Query{};
  return reply_of(impl_->get(target(kJobs, {}, q)), listed(&JobList::jobs));
}

Reply<JobInfo> CoordinatorClient::job(const std::string& job) {
  return reply_of(impl_->get(target(kJob, {job})), decoded<JobInfo>);
}

Reply<JobInfo> CoordinatorClient::job_by_ref(const std::string& ref) {
  return reply_of(impl_->get(target(kJobByRef, {ref})), decoded<JobInfo>);
}

Reply<std::vector<HostVerdict>> CoordinatorClient::explain(const std::string& job) {
  return reply_of(impl_->get(target(kJobExplain, {job})), listed(&Explanation::hosts));
}

Reply<std::vector<WorkerInfo>> CoordinatorClient::workers() {
  return reply_of(impl_->get(target(kWorkers, {})), listed(&WorkerList::workers));
}

Reply<ArtifactStat> CoordinatorClient::artifact_stat(const std::string& digest) {
  return reply_of(impl_->get(target(kArtifactStat, {digest})), decoded<ArtifactStat>);
}

Reply<std::vector<ArtifactInfo>> CoordinatorClient::artifacts(const std::string& job) {
  return reply_of(impl_->get(target(kJobArtifacts, {job})), listed(&ArtifactList::artifacts));
}

Reply<Ok> CoordinatorClient::download_artifact(const std::string& digest, const std::string& path) {
  const http::Response r =
      impl_->http.download(target(kArtifact, {digest}), path, impl_->read_headers());
  if (r.status != 200) return Reply<Ok>::refused(refusal_of(r));
  return Reply<Ok>::accepted(r.status, Ok{});
}

Reply<Ok> CoordinatorClient::download_segment(const std::string& digest, const std::string& path) {
  const http::Response r =
      impl_->http.download(target(kSegment, {digest}), path, impl_->read_headers());
  if (r.status != 200) return Reply<Ok>::refused(refusal_of(r));
  return Reply<Ok>::accepted(r.status, Ok{});
}

Reply<IngestReply> CoordinatorClient::ingest(const std::string& pipeline, const std::string& body,
                                             const std::string& idempotency_key) {
  Headers h = impl_->headers(Role::kOperator);
  h.emplace_back("Content-Type", kSampleBatchContentType);
  if (!idempotency_key.empty()) h.emplace_back(std::string(kIdempotencyKeyHeader), idempotency_key);
  return reply_of(impl_->http.request("POST", target(kPipelineSamples, {pipeline}), body, h),
                  decoded<IngestReply>);
}

Reply<std::vector<PipelineSummary>> CoordinatorClient::pipelines() {
  return reply_of(impl_->get(target(kPipelines, {})), listed(&PipelineList::pipelines));
}

Reply<PipelineDetail> CoordinatorClient::pipeline(const std::string& name) {
  return reply_of(impl_->get(target(kPipeline, {name})), decoded<PipelineDetail>);
}

Reply<TriggerList> CoordinatorClient::pipeline_triggers(const std::string& name) {
  return reply_of(impl_->get(target(kPipelineTriggers, {name})), decoded<TriggerList>);
}

Reply<AliasMove> CoordinatorClient::deploy(const std::string& pipeline,
                                           const DeployRequest& request) {
  return reply_of(impl_->post(Role::kOperator, target(kPipelineDeploy, {pipeline}), json(request)),
                  decoded<AliasMove>);
}

Reply<AliasMove> CoordinatorClient::rollback(const std::string& pipeline,
                                             const RollbackRequest& request) {
  return reply_of(
      impl_->post(Role::kOperator, target(kPipelineRollback, {pipeline}), json(request)),
      decoded<AliasMove>);
}

Reply<ConfigInfo> CoordinatorClient::config(const std::string& job) {
  return reply_of(impl_->get(target(kJobConfig, {job})), decoded<ConfigInfo>);
}

Reply<std::vector<AuditRecord>> CoordinatorClient::config_log(const std::string& job,
                                                              std::uint64_t after,
                                                              std::uint64_t limit) {
  const Query q = {{"after", std::to_string(after)}, {"limit", std::to_string(limit)}};
  return reply_of(impl_->get(target(kJobConfigLog, {job}, q)), listed(&AuditLog::entries));
}

Reply<TelemetryCurve> CoordinatorClient::telemetry(const std::string& job,
                                                   std::uint64_t max_points) {
  const Query q = {{"max_points", std::to_string(max_points)}};
  return reply_of(impl_->get(target(kJobTelemetry, {job}, q)), decoded<TelemetryCurve>);
}

Reply<JobLog> CoordinatorClient::job_log(const std::string& job) {
  return reply_of(impl_->get(target(kJobLog, {job})), decoded<JobLog>);
}

ConfigStreamReader::ConfigStreamReader(const http::ClientOptions& coordinator,
                                       const std::string& host_credential, const std::string& job,
                                       std::uint64_t from_revision)
    : ws_(std::make_unique<http::WebSocketClient>(
          coordinator, target(kJobConfigStream, {job}, {{"from", std::to_string(from_revision)}}),
          Headers{{std::string(kHostCredentialHeader), host_credential}})) {}

ConfigStreamReader::~ConfigStreamReader() = default;

StreamMessage ConfigStreamReader::next(std::chrono::milliseconds idle) {
  const std::string text = ws_->receive(idle);
  try {
    return json::parse(text).get<StreamMessage>();
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("config stream: unreadable message (") + e.what() +
                             "): " + text.substr(0, 200));
  }
}

void ConfigStreamReader::interrupt() {
  ws_->interrupt();
}

void ConfigStreamReader::close() {
  ws_->close();
}

}  // namespace tv::fleet::api
