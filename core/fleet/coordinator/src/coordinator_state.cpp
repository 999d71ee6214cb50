#include "coordinator_state.hpp"

#include <cstdio>
#include <filesystem>

#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/log.hpp"
#include "trainvisor/fleet/pipelines/training_plan.hpp"

namespace tv::fleet::coordinator {

using http::Request;
using http::Response;
namespace fs = std::filesystem;

namespace {

// The data directory, owner-only (0700): its database says who runs what and its artifacts are
// the fleet's models. One left readable by others (an older build, a wide umask) is narrowed,
// and the operator is told.
CoordinatorOptions prepared(CoordinatorOptions o) {
  if (o.data_dir.empty()) throw std::invalid_argument("the coordinator needs a data directory");
  std::error_code ec;
  const bool created = fs::create_directories(o.data_dir, ec);
  if (ec)
    throw std::runtime_error("cannot create the data directory " + o.data_dir + ": " +
                             ec.message());
  const fs::perms mode = fs::status(o.data_dir, ec).permissions() & fs::perms::all;
  if (ec)
    throw std::runtime_error("cannot read the data directory " + o.data_dir + ": " + ec.message());
  if (mode != fs::perms::owner_all) {
    fs::permissions(o.data_dir, fs::perms::owner_all, ec);
    if (ec)
      throw std::runtime_error("cannot make the data directory " + o.data_dir +
                               " owner-only (0700): " + ec.message());
    if (created) return o;  // made under this process's umask just now: nothing to tell
    char was[8];
    std::snprintf(was, sizeof was, "%04o", static_cast<unsigned>(mode));
    const std::string note =
        "data directory " + o.data_dir + " was mode " + was + "; made it 0700 (owner only)";
    if (o.on_error) {
      o.on_error(note);
    } else {
      log::emit({log::Level::kWarn, "coordinator", note, "", {}});
    }
  }
  return o;
}

// Only this machine can reach an address in 127.0.0.0/8 or ::1.
bool is_loopback(const std::string& bind) {
  return bind == "localhost" || bind == "::1" || bind == "[::1]" || bind.rfind("127.", 0) == 0;
}

std::function<std::int64_t()> queue_clock(const CoordinatorOptions& o) {
  return o.queue.clock;
}

ArtifactStore open_artifacts(const CoordinatorOptions& o) {
  StoreOptions so;
  so.max_bytes = o.max_artifact_bytes;
  auto s = ArtifactStore::open(fs::path(o.data_dir) / "artifacts", so);
  if (!s) throw std::runtime_error(s.error().message);
  return std::move(s).value();
}

}  // namespace

CoordinatorState::CoordinatorState(CoordinatorOptions o,
                                   std::function<ReloadSummary(bool)> reload_manifest)
    : options(prepared(std::move(o))),
      reads_public(options.public_reads.value_or(is_loopback(options.http.bind))),
      store(CoordinatorStore::open(options.data_dir, options.queue, options.telemetry)),
      queue(store.queue()),
      hub(store.config()),
      telemetry(store.telemetry()),
      hosts(store.hosts()),
      metrics(queue),
      artifacts(open_artifacts(options)),
      segments(pipelines::SegmentStore::open(store.path(),
                                             (fs::path(options.data_dir) / "segments").string())),
      pipeline_store(pipelines::PipelineStore::open(store.path(), queue_clock(options))),
      runner(
          std::make_unique<pipelines::TriggerRunner>(*segments, *pipeline_store, runner_hooks())),
      reload(std::move(reload_manifest)) {
  for (const std::string& removed : segments->recovered())
    log_error("segment store: removed " + removed + " (left by a crash)");
}

pipelines::RunnerHooks CoordinatorState::runner_hooks() {
  pipelines::RunnerHooks h;
  // A firing's job seeds its config tree from its hyper table, as a manifest's job does.
  h.enqueue = [this](const std::vector<JobSpec>& jobs) {
    queue.upsert_manifest(jobs);
    for (const JobSpec& j : jobs)
      hub.seed(j.id, j.hyper);
  };
  h.has_job = [this](const std::string& id) { return queue.get(id).has_value(); };
  h.preflight = [this](const PipelineSpec& p) { return pipeline_preflight(p); };
  h.log = [this](const std::string& line) { log_error(line); };
  return h;
}

std::optional<std::string> CoordinatorState::pipeline_preflight(const PipelineSpec& p) {
  if (p.initial_model.kind == InitialModelKind::kArtifact &&
      !artifacts->contains(p.initial_model.ref)) {
    return "initial_model: artifact " + p.initial_model.ref +
           " is not stored here (upload it, or name another initial model)";
  }
  if (!p.evaluation.set_digest.empty() && !artifacts->contains(p.evaluation.set_digest)) {
    return "evaluation set: artifact " + p.evaluation.set_digest + " is not stored here";
  }
  // Its trainings' constraints against the hosts known now; none known yet is no verdict.
  JobSpec probe = p.training;
  probe.name = pipelines::training_job_name(p.name, 0);
  probe.pipeline = PipelineTraining{};
  probe.pipeline->pipeline = p.name;
  std::string reasons;
  for (const Explanation& e : queue.explain(probe, 0, now_ms())) {
    if (e.reason.empty()) return std::nullopt;
    reasons += (reasons.empty() ? "" : "; ") + e.host + ": " + e.reason;
  }
  if (reasons.empty()) return std::nullopt;
  return "no known host can run its trainings (" + reasons +
         "); change its constraints or add a host, then reload";
}

void CoordinatorState::note_worker(const std::string& name, const HostCapability& capability) {
  const nlohmann::json c = capability_json(capability);
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(workers_mu_);
    auto it = seen_.find(name);
    if (it != seen_.end() && it->second.first == c &&
        now - it->second.second < std::chrono::seconds(10)) {
      return;
    }
    seen_[name] = {c, now};
  }
  queue.register_worker(name, capability);
}

std::optional<api::AppliedConfig> CoordinatorState::applied(const std::string& job) {
  return telemetry.applied(job);
}

std::optional<std::uint64_t> CoordinatorState::desired_revision(const std::string& job) {
  try {
    return hub.get(job).revision;
  } catch (const ConfigHubError&) {
    return std::nullopt;  // a job with no config tree (no hyper table): nothing desired
  }
}

api::ConfigLag CoordinatorState::config_lag(const std::string& job) {
  api::ConfigLag lag;
  lag.desired_revision = desired_revision(job);
  if (const auto a = telemetry.applied(job)) lag.applied_revision = a->revision;
  return lag;
}

api::JobInfo CoordinatorState::job_info(const JobRow& r) {
  return {r.spec,
          r.status,
          r.attempt,
          r.counted_failures,
          r.worker,
          r.cancel_requested,
          r.created_ms,
          r.updated_ms,
          r.not_before_ms,
          r.claimed_ms,
          r.finished_ms,
          r.heartbeat_ms,
          r.last_error,
          r.artifact_digest,
          config_lag(r.spec.id),
          r.stopped ? r.stopped->actor : std::string(),
          r.stopped ? r.stopped->reason : std::string()};
}

std::int64_t CoordinatorState::now_ms() const {
  if (options.queue.clock) return options.queue.clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void CoordinatorState::log_error(const std::string& what) const {
  if (options.on_error) {
    options.on_error(what);
  } else {
    log::emit({log::Level::kError, "coordinator", what, "", {}});
  }
}

bool is_worker(const CoordinatorState& s, const Request& req) {
  return http::tokens_equal(req.header(api::header_key(api::kWorkerTokenHeader)),
                            s.options.worker_token);
}

bool is_operator(const CoordinatorState& s, const Request& req) {
  return http::tokens_equal(req.header(api::header_key(api::kOperatorTokenHeader)),
                            s.options.operator_token);
}

std::optional<std::string> credited_host(const CoordinatorState& s, const Request& req) {
  const std::string credential = req.header(api::header_key(api::kHostCredentialHeader));
  if (credential.empty()) return std::nullopt;
  return s.hosts.verify(credential);
}

Response no_host_credential() {
  return Response::error(
      401,
      "missing, unknown or revoked X-Host-Credential: a host enrols its name with the "
      "worker token (POST /v1/hosts/NAME/enrol) and sends the credential it got");
}

Response not_the_holder(const std::string& job, const std::string& holder,
                        const std::string& host) {
  return Response::error(403, "job " + job + " is held by " +
                                  (holder.empty() ? std::string("no host") : holder) + ", not " +
                                  host);
}

Handler for_hosts(const CoordinatorState& s, HostHandler h) {
  return [&s, h = std::move(h)](Request& req, http::BodyStream* body) {
    const std::optional<std::string> host = credited_host(s, req);
    if (!host) return no_host_credential();
    return h(req, body, *host);
  };
}

Handler for_operators(const CoordinatorState& s, Handler h) {
  return [&s, h = std::move(h)](Request& req, http::BodyStream* body) {
    if (!is_operator(s, req)) return Response::error(401, "missing or wrong X-Operator-Token");
    return h(req, body);
  };
}

Handler for_ingesters(const CoordinatorState& s, Handler h) {
  return [&s, h = std::move(h)](Request& req, http::BodyStream* body) {
    if (!is_operator(s, req) && !is_worker(s, req) &&
        !http::tokens_equal(req.header(api::header_key(api::kIngestTokenHeader)),
                            s.options.ingest_token)) {
      return Response::error(401,
                             "ingest needs X-Ingest-Token, X-Worker-Token or X-Operator-Token");
    }
    return h(req, body);
  };
}

Handler for_readers(const CoordinatorState& s, Handler h) {
  return [&s, h = std::move(h)](Request& req, http::BodyStream* body) {
    if (!s.reads_public && !is_operator(s, req) && !is_worker(s, req) &&
        !http::tokens_equal(req.header(api::header_key(api::kReadTokenHeader)),
                            s.options.read_token) &&
        !credited_host(s, req)) {
      return Response::error(401,
                             "reads need a token here: X-Read-Token, X-Operator-Token, "
                             "X-Worker-Token or X-Host-Credential");
    }
    return h(req, body);
  };
}

std::string operator_actor(const Request& req) {
  const std::string name = req.header(api::header_key(api::kOperatorNameHeader));
  if (name.size() > api::kMaxLabelBytes) {
    throw std::invalid_argument(std::string(api::kOperatorNameHeader) + ": " +
                                std::to_string(name.size()) + " bytes is over the limit of " +
                                std::to_string(api::kMaxLabelBytes) + " bytes");
  }
  return api::Actor::human(name.empty() ? std::string("operator") : name).str();
}

Response queue_reply(QueueResult r, const std::string& job_id) {
  if (r == QueueResult::kOk) return Response::json(200, {{"ok", true}});
  std::string why = "job " + job_id + ": ";
  int status = 409;
  switch (r) {
    case QueueResult::kStaleLease:
      why += "the lease token is not the job's current lease (swept or requeued)";
      break;
    case QueueResult::kNotFound:
      why += "no such job";
      status = 404;
      break;
    case QueueResult::kWrongState:
      why += "the job's status does not allow this";
      break;
    case QueueResult::kNotHolder:
      why += "held by another host";
      status = 403;
      break;
    case QueueResult::kOk:
      break;
  }
  return Response::error(status, why);
}

Response lease_reply(CoordinatorState& s, QueueResult r, const std::string& job_id,
                     const std::string& host) {
  if (r != QueueResult::kNotHolder) return queue_reply(r, job_id);
  const auto row = s.queue.get(job_id);
  return not_the_holder(job_id, row ? row->worker : std::string(), host);
}

std::string no_such_job(const std::string& job) {
  return "job " + job + ": no such job";
}

std::uint64_t query_number(const Request& req, const char* key, std::uint64_t dflt,
                           std::uint64_t lo, std::uint64_t hi) {
  const auto it = req.query.find(key);
  if (it == req.query.end()) return dflt;
  return api::checked_param(it->second, key, lo, hi);
}

nlohmann::json body_json(const Request& r) {
  if (r.body.empty()) return nlohmann::json::object();
  nlohmann::json j = nlohmann::json::parse(r.body);
  if (!j.is_object()) throw std::invalid_argument("the request body must be a JSON object");
  return j;
}

}  // namespace tv::fleet::coordinator
