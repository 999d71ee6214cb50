#include "trainvisor/fleet/api/jobs.hpp"

#include <limits>
#include <stdexcept>

#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/command_trainer_json.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/pipeline_training_json.hpp"

namespace tv::fleet {

using nlohmann::json;

namespace {

template <class T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

using api::checked_int;
using api::checked_uint;
using api::kMaxStored;

constexpr std::int64_t kMaxInt = std::numeric_limits<std::int64_t>::max();
constexpr double kMaxDouble = std::numeric_limits<double>::max();

// A time or revision that may be unknown (null), 0..kMaxStored.
std::optional<std::int64_t> optional_int(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return checked_int(*it, key, 0, kMaxInt);
}
std::optional<std::uint64_t> optional_uint(const json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  return checked_uint(*it, key, 0, kMaxStored);
}

}  // namespace

json job_spec_json(const JobSpec& s) {
  json policies = json::array();
  for (const auto& p : s.policies)
    policies.push_back({{"name", p.name}, {"params", params_json(p.params)}});
  json out = {{"id", s.id},
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
  if (s.pipeline) out["pipeline"] = pipeline_training_json(*s.pipeline);
  if (s.command) out["trainer"] = command_trainer_json(*s.command);
  return out;
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
  const json& data = j.at("data");
  s.data.max_train_samples =
      checked_int(data.at("max_train_samples"), "data.max_train_samples", 0, kMaxInt);
  s.data.max_val_samples =
      checked_int(data.at("max_val_samples"), "data.max_val_samples", 0, kMaxInt);
  for (const auto& p : j.at("policies"))
    s.policies.push_back({p.at("name"), params_from_json(p.at("params"))});
  const auto& c = j.at("constraints");
  s.constraints.require_cuda = c.at("require_cuda");
  s.constraints.prefer_cuda = c.at("prefer_cuda");
  s.constraints.min_vram_gib =
      api::checked_double(c.at("min_vram_gib"), "constraints.min_vram_gib", 0, kMaxDouble);
  s.constraints.min_ram_gib =
      api::checked_double(c.at("min_ram_gib"), "constraints.min_ram_gib", 0, kMaxDouble);
  s.constraints.allowed_hosts = c.at("allowed_hosts").get<std::vector<std::string>>();
  s.seed = checked_uint(j.at("seed"), "seed", 0, kMaxStored);
  s.max_attempts = checked_int(j.at("max_attempts"), "max_attempts", 1, 100);
  s.priority =
      checked_int(j.at("priority"), "priority", std::numeric_limits<std::int64_t>::min(), kMaxInt);
  if (const auto p = j.find("pipeline"); p != j.end()) s.pipeline = pipeline_training_from_json(*p);
  if (const auto c = j.find("trainer"); c != j.end()) s.command = command_trainer_from_json(*c);
  return s;
}

void to_json(json& j, const JobSpec& m) {
  j = job_spec_json(m);
}
void from_json(const json& j, JobSpec& m) {
  m = job_spec_from_json(j);
}

void to_json(json& j, const HostCapability& c) {
  j = {{"hostname", c.hostname},
       {"cores", c.cores},
       {"ram_gib", c.ram_gib},
       {"cuda", c.cuda},
       {"cuda_devices", c.cuda_devices},
       {"vram_gib", c.vram_gib},
       {"torch_version", c.torch_version},
       {"trainvisor_version", c.trainvisor_version}};
}

void from_json(const json& j, HostCapability& c) {
  using namespace api;
  constexpr std::string_view p = "capability";
  if (!j.is_object()) throw std::invalid_argument("capability: must be an object");
  c.hostname = text_field(j, p, "hostname", kMaxLabelBytes);
  c.cores = int_field(j, p, "cores", 0, 0, kMaxCores);
  c.ram_gib = double_field(j, p, "ram_gib", 0, 0, kMaxMemoryGib);
  c.cuda = bool_field(j, p, "cuda", false);
  c.cuda_devices = int_field(j, p, "cuda_devices", 0, 0, kMaxCudaDevices);
  c.vram_gib = double_field(j, p, "vram_gib", 0, 0, kMaxMemoryGib);
  c.torch_version = text_field(j, p, "torch_version", kMaxLabelBytes);
  c.trainvisor_version = text_field(j, p, "trainvisor_version", kMaxLabelBytes);
}

namespace api {

std::string required_string(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string() || j[key].get<std::string>().empty()) {
    throw std::invalid_argument(std::string("missing field '") + key + "' (a non-empty string)");
  }
  return text_field(j, "", key, kMaxLabelBytes);
}

void to_json(json& j, const ClaimRequest& m) {
  j = {{"worker", m.worker}, {"capability", m.capability}};
}

void from_json(const json& j, ClaimRequest& m) {
  m.worker = name_field(j, "", "worker");
  if (!j.contains("capability") || !j["capability"].is_object())
    throw std::invalid_argument("missing field 'capability' (an object)");
  m.capability = j["capability"].get<HostCapability>();
}

void to_json(json& j, const ClaimReply& m) {
  if (!m.job) {
    j = {{"job", nullptr}};
    return;
  }
  j = {{"job", *m.job},
       {"attempt", m.attempt},
       {"lease_token", m.lease_token},
       {"lease_expires_ms", m.lease_expires_ms},
       {"generation", m.generation}};
}

void from_json(const json& j, ClaimReply& m) {
  m = {};
  if (j.at("job").is_null()) return;
  m.job = j["job"].get<JobSpec>();
  m.attempt = checked_int(j.at("attempt"), "attempt", 0, kMaxInt);
  m.lease_token = required_string(j, "lease_token");
  m.lease_expires_ms = int_field(j, "", "lease_expires_ms", 0, 0, kMaxInt);
  m.generation = int_field(j, "", "generation", 0, 0, kMaxInt);
}

void to_json(json& j, const LeaseRequest& m) {
  j = {{"lease_token", m.lease_token}};
}

void from_json(const json& j, LeaseRequest& m) {
  m.lease_token = required_string(j, "lease_token");
}

void to_json(json& j, const HeartbeatReply& m) {
  j = {{"ok", true},
       {"cancel_requested", m.cancel_requested},
       {"lease_expires_ms", m.lease_expires_ms}};
}

void from_json(const json& j, HeartbeatReply& m) {
  m.cancel_requested = bool_field(j, "", "cancel_requested", false);
  m.lease_expires_ms = int_field(j, "", "lease_expires_ms", 0, 0, kMaxInt);
}

void to_json(json& j, const CompleteRequest& m) {
  j = {{"lease_token", m.lease_token}};
  if (m.artifact) j["artifact"] = *m.artifact;
  if (m.early_stopped) j["early_stopped"] = true;
}

void from_json(const json& j, CompleteRequest& m) {
  m.lease_token = required_string(j, "lease_token");
  m.artifact.reset();
  if (j.contains("artifact") && j["artifact"].is_string())
    m.artifact = text_field(j, "", "artifact", kMaxLabelBytes);
  m.early_stopped = bool_field(j, "", "early_stopped", false);
}

void to_json(json& j, const FailRequest& m) {
  j = {{"lease_token", m.lease_token},
       {"class", std::string(to_string(m.failure))},
       {"reason", m.reason}};
}

void from_json(const json& j, FailRequest& m) {
  const std::string cls = required_string(j, "class");
  const auto failure = value_named(kFailureClassNames, cls);
  if (!failure) {
    throw std::invalid_argument("unknown failure class '" + cls + "' (expected " +
                                names_of(kFailureClassNames) + ")");
  }
  m.failure = *failure;
  m.lease_token = required_string(j, "lease_token");
  m.reason = text_field(j, "", "reason", kMaxTextBytes);
}

void to_json(json& j, const CancelReply& m) {
  j = {{"ok", true}, {"was_running", m.was_running}, {"worker", m.worker}};
}

void from_json(const json& j, CancelReply& m) {
  m.was_running = j.at("was_running");
  m.worker = text_field(j, "", "worker", kMaxLabelBytes);
}

void to_json(json& j, const ConfigLag& m) {
  j = {{"desired_revision", optional_json(m.desired_revision)},
       {"applied_revision", optional_json(m.applied_revision)}};
}

void from_json(const json& j, ConfigLag& m) {
  m.desired_revision = optional_uint(j, "desired_revision");
  m.applied_revision = optional_uint(j, "applied_revision");
}

void to_json(json& j, const JobInfo& r) {
  j = {{"id", r.spec.id},
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
       {"claimed_ms", optional_json(r.claimed_ms)},
       {"finished_ms", optional_json(r.finished_ms)},
       {"heartbeat_ms", optional_json(r.heartbeat_ms)},
       {"last_error", r.last_error},
       {"artifact", r.artifact},
       {"spec", r.spec},
       {"config", r.config},
       {"stopped_by", r.stopped_by},
       {"stop_reason", r.stop_reason}};
}

void from_json(const json& j, JobInfo& r) {
  r.spec = j.at("spec").get<JobSpec>();
  const std::string status = j.at("status");
  const auto s = value_named(kJobStatusNames, status);
  if (!s) throw std::invalid_argument("job " + r.spec.id + ": unknown status '" + status + "'");
  r.status = *s;
  r.attempt = checked_int(j.at("attempt"), "attempt", 0, kMaxInt);
  r.counted_failures = api::int_field(j, "", "counted_failures", 0, 0, kMaxInt);
  r.worker = j.at("worker");
  r.cancel_requested = api::bool_field(j, "", "cancel_requested", false);
  r.created_ms = api::int_field(j, "", "created_ms", 0, 0, kMaxInt);
  r.updated_ms = api::int_field(j, "", "updated_ms", 0, 0, kMaxInt);
  r.not_before_ms = api::int_field(j, "", "not_before_ms", 0, 0, kMaxInt);
  r.claimed_ms = optional_int(j, "claimed_ms");
  r.finished_ms = optional_int(j, "finished_ms");
  r.heartbeat_ms = optional_int(j, "heartbeat_ms");
  r.last_error = j.value("last_error", std::string());
  r.artifact = j.value("artifact", std::string());
  r.config = j.value("config", json::object()).get<ConfigLag>();
  r.stopped_by = j.value("stopped_by", std::string());
  r.stop_reason = j.value("stop_reason", std::string());
}

void to_json(json& j, const HostVerdict& h) {
  j = {{"host", h.host},
       {"registered", h.registered},
       {"eligible", h.reason.empty()},
       {"reason", h.reason}};
}

void from_json(const json& j, HostVerdict& h) {
  h.host = j.at("host");
  h.registered = j.at("registered");
  h.reason = j.at("reason");
}

void to_json(json& j, const WorkerInfo& w) {
  j = {{"name", w.name},
       {"capability", w.capability},
       {"registered_ms", w.registered_ms},
       {"last_seen_ms", w.last_seen_ms}};
}

void from_json(const json& j, WorkerInfo& w) {
  w.name = j.at("name");
  w.capability = j.at("capability").get<HostCapability>();
  w.registered_ms = checked_int(j.at("registered_ms"), "registered_ms", 0, kMaxInt);
  w.last_seen_ms = checked_int(j.at("last_seen_ms"), "last_seen_ms", 0, kMaxInt);
}

void to_json(json& j, const Health& m) {
  j = {{"ok", true}, {"jobs", m.jobs}};
}

void from_json(const json& j, Health& m) {
  m.jobs.clear();
  for (const auto& [status, n] : j.at("jobs").items())
    m.jobs[status] = checked_int(n, "jobs." + status, 0, kMaxInt);
}

}  // namespace api
}  // namespace tv::fleet
