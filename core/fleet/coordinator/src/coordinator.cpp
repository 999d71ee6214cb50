#include "trainvisor/fleet/coordinator.hpp"

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/artifact_store.hpp"
#include "trainvisor/fleet/config_hub.hpp"
#include "trainvisor/fleet/coordinator_store.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using http::Request;
using http::Response;
using nlohmann::json;

std::optional<std::int64_t> opt_ms(const std::optional<UnixMillis>& v) {
  return v;
}

int status_of(QueueResult r) {
  switch (r) {
    case QueueResult::kOk:
      return 200;
    case QueueResult::kStaleLease:
      return 409;
    case QueueResult::kNotFound:
      return 404;
    case QueueResult::kWrongState:
      return 409;
  }
  return 500;
}

Response queue_reply(QueueResult r, const std::string& job_id) {
  if (r == QueueResult::kOk) return Response::json(200, {{"ok", true}});
  std::string why = "job " + job_id + ": ";
  switch (r) {
    case QueueResult::kStaleLease:
      why += "the lease token is not the job's current lease (swept or requeued)";
      break;
    case QueueResult::kNotFound:
      why += "no such job";
      break;
    case QueueResult::kWrongState:
      why += "the job's status does not allow this";
      break;
    case QueueResult::kOk:
      break;
  }
  return Response::error(status_of(r), why);
}

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
  }
  return 500;
}

json body_json(const Request& r) {
  if (r.body.empty()) return json::object();
  json j = json::parse(r.body);
  if (!j.is_object()) throw std::invalid_argument("the request body must be a JSON object");
  return j;
}

std::string required_string(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
    throw std::invalid_argument(std::string("missing field '") + key + "' (a non-empty string)");
  }
  return j[key].get<std::string>();
}

double number_or_nan(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  return it->get<double>();
}

std::uint64_t query_number(const Request& req, const char* key, std::uint64_t dflt) {
  const auto it = req.query.find(key);
  if (it == req.query.end()) return dflt;
  if (it->second.empty() || it->second.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument(std::string("query parameter '") + key + "' is not a number");
  return std::stoull(it->second);
}

json applied_json(const std::optional<AppliedConfig>& a) {
  if (!a) return nullptr;
  return {{"revision", a->revision}, {"since_step", a->since_step}, {"last_step", a->last_step},
          {"host", a->host},         {"time_ms", a->time_ms},       {"points", a->points},
          {"missed", a->missed}};
}

}  // namespace

json telemetry_point_json(const plugin::TelemetryPoint& p) {
  return {{"step", p.step},
          {"epoch", p.epoch},
          {"flags", p.flags},
          {"wall_time_ns", p.wall_time_ns},
          {"loss", p.loss},
          {"grad_norm", p.grad_norm},
          {"learning_rate", p.learning_rate},
          {"config_revision", p.config_revision},
          {"val_loss", p.val_loss},
          {"val_accuracy", p.val_accuracy},
          {"samples_per_sec", p.samples_per_sec}};
}

plugin::TelemetryPoint telemetry_point_from_json(const json& j) {
  plugin::TelemetryPoint p;
  p.step = j.at("step").get<std::uint64_t>();
  p.epoch = j.value("epoch", std::uint32_t{0});
  p.flags = j.value("flags", std::uint32_t{0});
  p.wall_time_ns = j.value("wall_time_ns", std::int64_t{0});
  p.loss = number_or_nan(j, "loss");
  p.grad_norm = number_or_nan(j, "grad_norm");
  p.learning_rate = number_or_nan(j, "learning_rate");
  p.config_revision = j.value("config_revision", std::uint64_t{0});
  p.val_loss = number_or_nan(j, "val_loss");
  p.val_accuracy = number_or_nan(j, "val_accuracy");
  p.samples_per_sec = number_or_nan(j, "samples_per_sec");
  return p;
}

json config_values_json(const plugin::ConfigView& values) {
  return params_json(values);
}

plugin::ConfigView config_values_from_json(const json& j) {
  return params_from_json<plugin::ConfigView>(j);
}

json job_spec_json(const JobSpec& s) {
  json policies = json::array();
  for (const auto& p : s.policies)
    policies.push_back({{"name", p.name}, {"params", params_json(p.params)}});
  return {{"id", s.id},
          {"name", s.name},
          {"model", s.model},
          {"mode", s.mode},
          {"hyper", params_json(plugin::Params(s.hyper.begin(), s.hyper.end()))},
          {"model_params", params_json(s.model_params)},
          {"data",
           {{"max_train_samples", s.data.max_train_samples},
            {"max_val_samples", s.data.max_val_samples}}},
          {"policies", policies},
          {"constraints",
           {{"require_cuda", s.constraints.require_cuda},
            {"prefer_cuda", s.constraints.prefer_cuda},
            {"min_vram_gib", s.constraints.min_vram_gib},
            {"min_ram_gib", s.constraints.min_ram_gib},
            {"allowed_hosts", s.constraints.allowed_hosts}}},
          {"seed", s.seed},
          {"max_attempts", s.max_attempts},
          {"priority", s.priority}};
}

JobSpec job_spec_from_json(const json& j) {
  JobSpec s;
  s.id = j.at("id");
  s.name = j.at("name");
  s.model = j.at("model");
  s.mode = j.at("mode");
  const plugin::Params hyper = params_from_json(j.at("hyper"));
  s.hyper = plugin::ConfigView(hyper.begin(), hyper.end());
  s.model_params = params_from_json(j.at("model_params"));
  s.data.max_train_samples = j.at("data").at("max_train_samples");
  s.data.max_val_samples = j.at("data").at("max_val_samples");
  for (const auto& p : j.at("policies"))
    s.policies.push_back({p.at("name"), params_from_json(p.at("params"))});
  const auto& c = j.at("constraints");
  s.constraints.require_cuda = c.at("require_cuda");
  s.constraints.prefer_cuda = c.at("prefer_cuda");
  s.constraints.min_vram_gib = c.at("min_vram_gib");
  s.constraints.min_ram_gib = c.at("min_ram_gib");
  s.constraints.allowed_hosts = c.at("allowed_hosts").get<std::vector<std::string>>();
  s.seed = j.at("seed");
  s.max_attempts = j.at("max_attempts");
  s.priority = j.at("priority");
  return s;
}

json capability_json(const HostCapability& c) {
  return {{"hostname", c.hostname},
          {"cores", c.cores},
          {"ram_gib", c.ram_gib},
          {"cuda", c.cuda},
          {"cuda_devices", c.cuda_devices},
          {"vram_gib", c.vram_gib},
          {"torch_version", c.torch_version},
          {"trainvisor_version", c.trainvisor_version}};
}

HostCapability capability_from_json(const json& j) {
  HostCapability c;
  c.hostname = j.value("hostname", "");
  c.cores = j.value("cores", std::int64_t{0});
  c.ram_gib = j.value("ram_gib", 0.0);
  c.cuda = j.value("cuda", false);
  c.cuda_devices = j.value("cuda_devices", std::int64_t{0});
  c.vram_gib = j.value("vram_gib", 0.0);
  c.torch_version = j.value("torch_version", "");
  c.trainvisor_version = j.value("trainvisor_version", "");
  return c;
}

json job_row_json(const JobRow& r) {
  return {{"id", r.spec.id},
          {"name", r.spec.name},
          {"model", r.spec.model},
          {"status", std::string(to_string(r.status))},
          {"attempt", r.attempt},
          {"counted_failures", r.counted_failures},
          {"max_attempts", r.spec.max_attempts},
          {"worker", r.worker},
          {"cancel_requested", r.cancel_requested},
          {"created_ms", r.created_ms},
          {"updated_ms", r.updated_ms},
          {"not_before_ms", r.not_before_ms},
          {"claimed_ms", opt_ms(r.claimed_ms) ? json(*r.claimed_ms) : json(nullptr)},
          {"finished_ms", r.finished_ms ? json(*r.finished_ms) : json(nullptr)},
          {"heartbeat_ms", r.heartbeat_ms ? json(*r.heartbeat_ms) : json(nullptr)},
          {"last_error", r.last_error},
          {"artifact", r.artifact_digest},
          {"spec", job_spec_json(r.spec)}};
}

// Fills `buf` from the body (a read hands over only what has arrived) and returns how much it
// holds: less than its size only at the body's end, 0 after it. Whole pieces of the store's
// write buffer size go to the file without a copy into that buffer.
static std::size_t read_full(http::BodyStream& body, std::span<std::byte> buf) {
  std::size_t filled = 0;
  while (filled < buf.size()) {
    const std::size_t n = body.read(buf.subspan(filled));
    if (n == 0) break;
    filled += n;
  }
  return filled;
}

struct Coordinator::Impl {
  CoordinatorOptions options;
  CoordinatorStore state;  // the queue, the config hub and telemetry, in one database
  JobQueue& queue;
  ConfigHub& hub;
  TelemetryStore& telemetry;
  std::optional<ArtifactStore> store;
  std::mutex reload_mu;
  std::unique_ptr<http::Server> server;
  std::thread sweeper;
  std::mutex sweep_mu;
  std::condition_variable sweep_cv;
  bool stopping = false;

  static CoordinatorOptions prepared(CoordinatorOptions o) {
    if (o.data_dir.empty()) throw std::invalid_argument("the coordinator needs a data directory");
    std::error_code ec;
    fs::create_directories(o.data_dir, ec);
    if (ec)
      throw std::runtime_error("cannot create the data directory " + o.data_dir + ": " +
                               ec.message());
    return o;
  }

  explicit Impl(CoordinatorOptions o)
      : options(prepared(std::move(o))),
        state(CoordinatorStore::open(options.data_dir, options.queue)),
        queue(state.queue()),
        hub(state.config()),
        telemetry(state.telemetry()) {
    StoreOptions so;
    so.max_bytes = options.max_artifact_bytes;
    auto s = ArtifactStore::open(fs::path(options.data_dir) / "artifacts", so);
    if (!s) throw std::runtime_error(s.error().message);
    store.emplace(std::move(s).value());
  }

  // Workers claim every few seconds; their row is written when their capability changes and
  // refreshed (last_seen) at most every 10 s, not on every claim: each write is an fsync.
  std::mutex workers_mu;
  std::map<std::string, std::pair<json, std::chrono::steady_clock::time_point>> seen_workers;
  void note_worker(const std::string& name, const HostCapability& cap) {
    const json c = capability_json(cap);
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(workers_mu);
      auto it = seen_workers.find(name);
      if (it != seen_workers.end() && it->second.first == c &&
          now - it->second.second < std::chrono::seconds(10)) {
        return;
      }
      seen_workers[name] = {c, now};
    }
    queue.register_worker(name, cap);
  }

  bool authorised(const Request& r, const std::string& header, const std::string& expected) const {
    return http::tokens_equal(r.header(header), expected);
  }

  ReloadSummary reload(bool dry_run) {
    std::lock_guard lock(reload_mu);
    ReloadSummary out;
    if (options.manifest_path.empty()) return out;
    std::vector<std::string> dirs = options.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    const PluginRegistry plugins = PluginRegistry::load(dirs);
    const Manifest m = load_manifest(options.manifest_path, plugins);
    std::set<std::string> ids;
    for (const JobSpec& j : m.jobs) {
      ids.insert(j.id);
      (queue.get(j.id) ? out.unchanged : out.added).push_back(j.name);
    }
    for (const JobRow& r : queue.list()) {
      if (!ids.count(r.spec.id)) out.removed.push_back(r.spec.name);
    }
    if (!dry_run) {
      out.report = queue.upsert_manifest(m.jobs);
      queue.upsert_hosts(m.hosts);
      // Every job's config tree starts as its manifest's hyper table, once: a reload never
      // overwrites live values.
      for (const JobSpec& j : m.jobs)
        hub.seed(j.id, j.hyper);
    }
    return out;
  }

  std::vector<http::Route> routes() {
    using http::Route;
    std::vector<Route> r;
    const auto worker = [this](auto f) {
      return [this, f](Request& req, http::BodyStream* body) -> Response {
        if (!authorised(req, "x-worker-token", options.worker_token)) {
          return Response::error(401, "missing or wrong X-Worker-Token");
        }
        return f(req, body);
      };
    };
    const auto operator_ = [this](auto f) {
      return [this, f](Request& req, http::BodyStream* body) -> Response {
        if (!authorised(req, "x-operator-token", options.operator_token)) {
          return Response::error(401, "missing or wrong X-Operator-Token");
        }
        return f(req, body);
      };
    };
    r.push_back({"GET", "/v1/health", [this](Request&, http::BodyStream*) {
                   json counts = json::object();
                   for (const auto& [s, n] : queue.counts())
                     counts[std::string(to_string(s))] = n;
                   return Response::json(200, {{"ok", true}, {"jobs", counts}});
                 }});
    r.push_back({"GET", "/v1/jobs", [this](Request& req, http::BodyStream*) {
                   std::optional<JobStatus> filter;
                   if (const auto it = req.query.find("status"); it != req.query.end()) {
                     try {
                       filter = parse_job_status(it->second);
                     } catch (const std::exception& e) {
                       return Response::error(400, e.what());
                     }
                   }
                   json jobs = json::array();
                   for (const JobRow& row : queue.list(filter)) {
                     json j = job_row_json(row);
                     j["config"] = config_lag_json(row.spec.id);
                     jobs.push_back(std::move(j));
                   }
                   return Response::json(200, {{"jobs", jobs}});
                 }});
    r.push_back({"GET", "/v1/job/{id}", [this](Request& req, http::BodyStream*) {
                   const auto row = queue.get(req.params[0]);
                   if (!row) return Response::error(404, "job " + req.params[0] + ": no such job");
                   json j = job_row_json(*row);
                   j["config"] = config_lag_json(row->spec.id);
                   return Response::json(200, j);
                 }});
    r.push_back({"GET", "/v1/job/{id}/explain", [this](Request& req, http::BodyStream*) {
                   try {
                     json hosts = json::array();
                     const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count();
                     for (const Explanation& e : queue.explain(
                              req.params[0], options.queue.clock ? options.queue.clock() : now)) {
                       hosts.push_back({{"host", e.host},
                                        {"registered", e.registered},
                                        {"eligible", e.reason.empty()},
                                        {"reason", e.reason}});
                     }
                     return Response::json(200, {{"job", req.params[0]}, {"hosts", hosts}});
                   } catch (const QueueError& e) {
                     return Response::error(404, e.what());
                   }
                 }});
    r.push_back({"GET", "/v1/workers", [this](Request&, http::BodyStream*) {
                   json ws = json::array();
                   for (const WorkerRow& w : queue.workers()) {
                     ws.push_back({{"name", w.name},
                                   {"capability", capability_json(w.capability)},
                                   {"registered_ms", w.registered_ms},
                                   {"last_seen_ms", w.last_seen_ms}});
                   }
                   return Response::json(200, {{"workers", ws}});
                 }});
    r.push_back({"POST", "/v1/job/claim", worker([this](Request& req, http::BodyStream*) {
                   const json b = body_json(req);
                   const std::string name = required_string(b, "worker");
                   if (!b.contains("capability") || !b["capability"].is_object()) {
                     throw std::invalid_argument("missing field 'capability' (an object)");
                   }
                   const HostCapability cap = capability_from_json(b["capability"]);
                   note_worker(name, cap);
                   const auto claim = queue.claim_next(name, cap);
                   if (!claim) return Response::json(200, {{"job", nullptr}});
                   return Response::json(200, {{"job", job_spec_json(claim->spec)},
                                               {"attempt", claim->attempt},
                                               {"lease_token", claim->lease_token},
                                               {"lease_expires_ms", claim->lease_expires_ms}});
                 })});
    r.push_back({"POST", "/v1/job/{id}/heartbeat", worker([this](Request& req, http::BodyStream*) {
                   const json b = body_json(req);
                   const HeartbeatReply h =
                       queue.heartbeat(req.params[0], required_string(b, "lease_token"));
                   if (h.result != QueueResult::kOk) return queue_reply(h.result, req.params[0]);
                   return Response::json(200, {{"ok", true},
                                               {"cancel_requested", h.cancel_requested},
                                               {"lease_expires_ms", h.lease_expires_ms}});
                 })});
    r.push_back({"POST", "/v1/job/{id}/running", worker([this](Request& req, http::BodyStream*) {
                   const json b = body_json(req);
                   return queue_reply(
                       queue.mark_running(req.params[0], required_string(b, "lease_token")),
                       req.params[0]);
                 })});
    r.push_back({"POST", "/v1/job/{id}/complete", worker([this](Request& req, http::BodyStream*) {
                   const json b = body_json(req);
                   std::optional<std::string> digest;
                   if (b.contains("artifact") && b["artifact"].is_string()) {
                     digest = b["artifact"].get<std::string>();
                     if (!store->contains(*digest)) {
                       return Response::error(400, "job " + req.params[0] + ": artifact " +
                                                       *digest + " was never uploaded");
                     }
                   }
                   return queue_reply(
                       queue.complete(req.params[0], required_string(b, "lease_token"), digest),
                       req.params[0]);
                 })});
    r.push_back({"POST", "/v1/job/{id}/fail", worker([this](Request& req, http::BodyStream*) {
                   const json b = body_json(req);
                   FailureClass cls;
                   try {
                     cls = parse_failure_class(required_string(b, "class"));
                   } catch (const QueueError& e) {
                     return Response::error(400, e.what());
                   }
                   return queue_reply(queue.fail(req.params[0], required_string(b, "lease_token"),
                                                 cls, b.value("reason", std::string())),
                                      req.params[0]);
                 })});
    r.push_back(
        {"PUT", "/v1/job/{id}/artifact/{name}",
         worker([this](Request& req, http::BodyStream* body) {
           const std::string& job = req.params[0];
           // Fenced like every other worker call: only the lease holder may upload.
           const HeartbeatReply h = queue.heartbeat(job, req.header("x-lease-token"));
           if (h.result != QueueResult::kOk) return queue_reply(h.result, job);
           if (h.cancel_requested)
             return Response::error(409, "job " + job + ": cancelled by an operator");
           std::optional<std::uint64_t> size;
           if (auto n = body->content_length()) size = *n;
           auto up = store->begin_upload(req.header("x-content-sha256"), size, job, req.params[1]);
           if (!up) return Response::error(artifact_status(up.error().code), up.error().message);
           std::vector<std::byte> buf(std::size_t{1} << 20);  // the store's write buffer size
           while (std::size_t n = read_full(*body, buf)) {
             auto w = up.value().write(std::span<const std::byte>(buf.data(), n));
             if (!w) return Response::error(artifact_status(w.error().code), w.error().message);
           }
           auto done = up.value().commit();
           if (!done)
             return Response::error(artifact_status(done.error().code), done.error().message);
           return Response::json(200, {{"digest", done.value().digest},
                                       {"size", done.value().size},
                                       {"deduplicated", done.value().deduplicated}});
         }),
         true});
    r.push_back({"GET", "/v1/artifact/{digest}/stat", [this](Request& req, http::BodyStream*) {
                   const auto info = store->stat(req.params[0]);
                   if (!info)
                     return Response::error(404, "artifact " + req.params[0] + ": not stored");
                   return Response::json(200, {{"digest", info->digest}, {"size", info->size}});
                 }});
    r.push_back({"GET", "/v1/artifact/{digest}", [this](Request& req, http::BodyStream*) {
                   const auto info = store->stat(req.params[0]);
                   if (!info)
                     return Response::error(404, "artifact " + req.params[0] + ": not stored");
                   Response res;
                   res.content_type = "application/octet-stream";
                   res.file_path = info->path.string();
                   return res;
                 }});
    r.push_back({"GET", "/v1/job/{id}/artifacts", [this](Request& req, http::BodyStream*) {
                   auto list = store->list_for_job(req.params[0]);
                   if (!list)
                     return Response::error(artifact_status(list.error().code),
                                            list.error().message);
                   json a = json::array();
                   for (const auto& ref : list.value()) {
                     a.push_back({{"name", ref.name},
                                  {"digest", ref.digest},
                                  {"size", ref.size},
                                  {"uploaded_at", ref.uploaded_at}});
                   }
                   return Response::json(200, {{"artifacts", a}});
                 }});
    r.push_back({"POST", "/v1/job/{id}/cancel", operator_([this](Request& req, http::BodyStream*) {
                   const CancelReply c = queue.cancel(req.params[0]);
                   if (c.result != QueueResult::kOk) return queue_reply(c.result, req.params[0]);
                   return Response::json(
                       200, {{"ok", true}, {"was_running", c.was_held()}, {"worker", c.worker}});
                 })});
    r.push_back({"POST", "/v1/job/{id}/requeue", operator_([this](Request& req, http::BodyStream*) {
                   return queue_reply(queue.requeue(req.params[0]), req.params[0]);
                 })});
    // The config hub. Reads are open; a write is a human's with the operator token
    // (X-Operator-Name names them) or a policy's with the worker token (body field "policy").
    r.push_back({"GET", "/v1/job/{id}/config", [this](Request& req, http::BodyStream*) {
                   try {
                     const ConfigTree t = hub.get(req.params[0]);
                     return Response::json(
                         200, {{"job", req.params[0]},
                               {"revision", t.revision},
                               {"values", params_json(t.values)},
                               {"frozen", hub.frozen(req.params[0])},
                               {"applied", applied_json(telemetry.applied(req.params[0]))}});
                   } catch (const ConfigHubError& e) {
                     return Response::error(404, e.what());
                   }
                 }});
    r.push_back({"GET", "/v1/job/{id}/config/stream",
                 [this](Request& req, http::BodyStream*) {
                   if (!authorised(req, "x-worker-token", options.worker_token))
                     return Response::error(401, "missing or wrong X-Worker-Token");
                   query_number(req, "from", 0);
                   try {
                     hub.get(req.params[0]);
                   } catch (const ConfigHubError& e) {
                     return Response::error(404, e.what());
                   }
                   Response ok;
                   ok.status = 101;
                   return ok;
                 },
                 false,
                 [this](const Request& req, http::WebSocketSession& ws) { stream(req, ws); }});
    r.push_back(
        {"POST", "/v1/job/{id}/telemetry", worker([this](Request& req, http::BodyStream*) {
           const json b = body_json(req);
           const std::string host = required_string(b, "host");
           const auto row = queue.get(req.params[0]);
           if (!row) return Response::error(404, "job " + req.params[0] + ": no such job");
           // A cancelled job's holder keeps reporting until its trainer has stopped.
           if (row->worker != host ||
               (row->status != JobStatus::kClaimed && row->status != JobStatus::kRunning &&
                row->status != JobStatus::kCancelled)) {
             return Response::error(409, "job " + req.params[0] + ": not held by " + host);
           }
           std::vector<plugin::TelemetryPoint> points;
           for (const json& p : b.value("points", json::array()))
             points.push_back(telemetry_point_from_json(p));
           telemetry.append(req.params[0], points, host, b.value("missed", std::uint64_t{0}),
                            std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count());
           for (const json& f : b.value("refusals", json::array())) {
             try {
               hub.record_agent_refusal(req.params[0], f.at("revision").get<std::uint64_t>(),
                                        "host " + host + ": " + f.at("reason").get<std::string>());
             } catch (const ConfigHubError& e) {
               return Response::error(400, e.what());
             }
           }
           return Response::json(200, {{"ok", true}, {"stored", points.size()}});
         })});
    r.push_back({"GET", "/v1/job/{id}/telemetry", [this](Request& req, http::BodyStream*) {
                   if (!queue.get(req.params[0]))
                     return Response::error(404, "job " + req.params[0] + ": no such job");
                   json points = json::array();
                   for (const auto& p : telemetry.curve(
                            req.params[0],
                            std::min<std::uint64_t>(query_number(req, "max_points", 500), 100000)))
                     points.push_back(telemetry_point_json(p));
                   std::optional<std::uint64_t> desired;
                   try {
                     desired = hub.get(req.params[0]).revision;
                   } catch (const ConfigHubError&) {
                   }
                   return Response::json(
                       200, {{"job", req.params[0]},
                             {"desired_revision", desired ? json(*desired) : json(nullptr)},
                             {"applied", applied_json(telemetry.applied(req.params[0]))},
                             {"points", points}});
                 }});
    r.push_back({"POST", "/v1/job/{id}/config", [this](Request& req, http::BodyStream*) {
                   std::string actor;
                   const json b = body_json(req);
                   if (authorised(req, "x-operator-token", options.operator_token)) {
                     const std::string name = req.header("x-operator-name");
                     actor = "human:" + (name.empty() ? std::string("operator") : name);
                   } else if (authorised(req, "x-worker-token", options.worker_token)) {
                     actor = "policy:" + required_string(b, "policy");
                   } else {
                     return Response::error(
                         401, "missing or wrong X-Operator-Token (or X-Worker-Token for a policy)");
                   }
                   if (!b.contains("writes") || !b["writes"].is_object() || b["writes"].empty()) {
                     throw std::invalid_argument(
                         "missing field 'writes' (an object of key path -> value)");
                   }
                   std::vector<ConfigWrite> writes;
                   for (const auto& [k, v] : params_from_json(b["writes"]))
                     writes.push_back({k, v});
                   const ConfigWriteResult w =
                       hub.write(req.params[0], writes, actor, b.value("reason", std::string()));
                   if (!w.applied) return Response::error(w.status, w.refusal);
                   return Response::json(200, {{"revision", w.revision}, {"actor", actor}});
                 }});
    for (const bool freezing : {true, false}) {
      r.push_back({"POST", freezing ? "/v1/job/{id}/config/freeze" : "/v1/job/{id}/config/unfreeze",
                   operator_([this, freezing](Request& req, http::BodyStream*) {
                     const json b = body_json(req);
                     const std::string name = req.header("x-operator-name");
                     const std::string actor =
                         "human:" + (name.empty() ? std::string("operator") : name);
                     try {
                       if (freezing) {
                         hub.freeze(req.params[0], required_string(b, "prefix"), actor);
                       } else {
                         hub.unfreeze(req.params[0], required_string(b, "prefix"), actor);
                       }
                     } catch (const ConfigHubError& e) {
                       return Response::error(400, e.what());
                     }
                     return Response::json(200, {{"frozen", hub.frozen(req.params[0])}});
                   })});
    }
    r.push_back(
        {"GET", "/v1/job/{id}/config/log", [this](Request& req, http::BodyStream*) {
           const auto num = [&](const char* key, std::uint64_t dflt) -> std::uint64_t {
             const auto it = req.query.find(key);
             if (it == req.query.end()) return dflt;
             try {
               return std::stoull(it->second);
             } catch (...) {
               throw std::invalid_argument(std::string("query parameter '") + key +
                                           "' is not a number");
             }
           };
           const auto value = [](const plugin::ParamValue& v) { return param_value_json(v); };
           json entries = json::array();
           for (const AuditEntry& e : hub.audit(req.params[0], num("after", 0),
                                                std::min<std::uint64_t>(num("limit", 100), 1000))) {
             entries.push_back({{"seq", e.seq},
                                {"kind", e.kind},
                                {"revision", e.revision},
                                {"actor", e.actor},
                                {"reason", e.reason},
                                {"path", e.path},
                                {"old", e.old_value ? value(*e.old_value) : json(nullptr)},
                                {"new", value(e.new_value)},
                                {"time_ms", e.time_ms},
                                {"accepted", e.accepted},
                                {"refusal", e.refusal}});
           }
           return Response::json(200, {{"entries", entries}});
         }});
    r.push_back({"POST", "/v1/manifest/reload", operator_([this](Request& req, http::BodyStream*) {
                   const bool dry = req.query.count("dry_run") && req.query["dry_run"] != "0";
                   try {
                     const ReloadSummary s = reload(dry);
                     return Response::json(200, {{"dry_run", dry},
                                                 {"added", s.added},
                                                 {"unchanged", s.unchanged},
                                                 {"removed", s.removed},
                                                 {"written", s.report.added + s.report.updated}});
                   } catch (const ManifestError& e) {
                     return Response::json(400, {{"error", "invalid manifest"},
                                                 {"status", 400},
                                                 {"diagnostics", e.diagnostics()}});
                   }
                 })});
    return r;
  }

  // Desired (the hub's) and applied (the trainer's last report) revision: the job's config lag.
  json config_lag_json(const std::string& job) {
    json out = {{"desired_revision", nullptr}, {"applied_revision", nullptr}};
    try {
      out["desired_revision"] = hub.get(job).revision;
    } catch (const ConfigHubError&) {
    }
    if (const auto a = telemetry.applied(job)) out["applied_revision"] = a->revision;
    return out;
  }

  // One host agent's config stream for one job (the protocol is in coordinator.hpp).
  void stream(const Request& req, http::WebSocketSession& ws) {
    const std::string job = req.params[0];
    const std::uint64_t from = query_number(req, "from", 0);
    // Read before subscribing: a change between the two wakes the loop rather than being lost.
    std::uint64_t seen = hub.wait_for_change(~std::uint64_t{0}, std::chrono::milliseconds(0));
    ConfigStream s = hub.subscribe(job, from);
    std::uint64_t sent_revision = from;
    int deltas = 0, messages = 0;
    const auto& fault = options.stream_fault;
    const auto send = [&](const json& m) {
      ws.send(m.dump());
      ++messages;
      return !(fault.close_every > 0 && messages % fault.close_every == 0);
    };
    if (s.snapshot) {
      sent_revision = s.tree.revision;
      if (!send({{"type", "snapshot"},
                 {"revision", s.tree.revision},
                 {"values", config_values_json(s.tree.values)},
                 {"frozen", s.frozen}})) {
        return;
      }
    } else if (!send({{"type", "resume"}, {"frozen", s.frozen}})) {
      return;
    }
    std::vector<ConfigEvent> events = std::move(s.events);
    auto next_keepalive = std::chrono::steady_clock::now();
    while (ws.open()) {
      for (const ConfigEvent& e : events) {
        if (!e.prefix.empty()) {
          if (!send({{"type", "freeze"}, {"prefix", e.prefix}, {"frozen", e.frozen}})) return;
          continue;
        }
        sent_revision = e.delta.revision;
        json writes = json::object();
        for (const ConfigWrite& w : e.delta.writes)
          writes[w.path] = param_value_json(w.value);
        if (fault.skip_every > 0 && ++deltas % fault.skip_every == 0) continue;
        if (!send({{"type", "delta"},
                   {"revision", e.delta.revision},
                   {"actor", e.delta.actor},
                   {"writes", writes}})) {
          return;
        }
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_keepalive) {
        if (!send({{"type", "keepalive"}, {"revision", sent_revision}})) return;
        next_keepalive = now + options.stream_keepalive;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          next_keepalive - std::chrono::steady_clock::now());
      seen = hub.wait_for_change(seen, std::max(wait, std::chrono::milliseconds(1)));
      events = hub.events_after(job, s.cursor);
    }
  }

  void sweep_loop() {
    std::unique_lock lock(sweep_mu);
    while (!sweep_cv.wait_for(lock, options.sweep_every, [&] { return stopping; })) {
      lock.unlock();
      try {
        queue.sweep_stale();
      } catch (...) {
        // The next sweep tries again; a busy database is not a reason to stop sweeping.
      }
      lock.lock();
    }
  }
};

Coordinator::Coordinator(CoordinatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->reload(false);
  impl_->server = std::make_unique<http::Server>(impl_->options.http, impl_->routes());
  impl_->sweeper = std::thread([this] { impl_->sweep_loop(); });
}

Coordinator::~Coordinator() {
  stop();
}

std::uint16_t Coordinator::port() const {
  return impl_->server->port();
}

std::string Coordinator::url() const {
  const bool tls = !impl_->options.http.tls_cert_file.empty();
  return std::string(tls ? "https://" : "http://") + impl_->options.http.bind + ":" +
         std::to_string(port());
}

ReloadSummary Coordinator::reload(bool dry_run) {
  return impl_->reload(dry_run);
}

void Coordinator::stop() {
  {
    std::lock_guard lock(impl_->sweep_mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->sweep_cv.notify_all();
  if (impl_->sweeper.joinable()) impl_->sweeper.join();
  if (impl_->server) impl_->server->stop();
}

}  // namespace tv::fleet
