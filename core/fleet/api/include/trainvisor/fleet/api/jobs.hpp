// The job and worker endpoints' messages and their JSON: what a host sends to claim and hold a
// lease, and what an operator reads about jobs and hosts. Routes are in paths.hpp.
//
// Decoding a request (the server's side) throws std::invalid_argument naming the field that is
// missing or of the wrong type, or nlohmann::json::exception for a value of the wrong JSON type:
// the server answers 400 with that text. Decoding a reply (a client's side) throws the same for
// a coordinator that does not speak this protocol.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/job_status.hpp"

namespace tv::fleet {

// The JSON forms of the fleet's shared types.
nlohmann::json job_spec_json(const JobSpec& spec);
JobSpec job_spec_from_json(const nlohmann::json& j);
nlohmann::json capability_json(const HostCapability& c);
HostCapability capability_from_json(const nlohmann::json& j);

namespace api {

// A non-empty string field of a request body; throws std::invalid_argument naming it.
std::string required_string(const nlohmann::json& body, const char* key);

// POST kClaim (worker).
struct ClaimRequest {
  std::string worker;
  HostCapability capability;
};
// nullopt `job`: nothing this host may run now.
struct ClaimReply {
  std::optional<JobSpec> job;
  std::int64_t attempt = 0;
  std::string lease_token;
  std::int64_t lease_expires_ms = 0;
};

// POST kJobHeartbeat / kJobRunning (worker): the body is the lease token.
struct LeaseRequest {
  std::string lease_token;
};
struct HeartbeatReply {
  bool cancel_requested = false;
  std::int64_t lease_expires_ms = 0;
};

// POST kJobComplete (worker).
struct CompleteRequest {
  std::string lease_token;
  std::optional<std::string> artifact;  // the bundle's digest, uploaded before
};

// POST kJobFail (worker).
struct FailRequest {
  std::string lease_token;
  FailureClass failure = FailureClass::kTrainerFailure;
  std::string reason;
};

// POST kJobCancel (operator).
struct CancelReply {
  bool was_running = false;
  std::string worker;  // the holder that stops its trainer, when was_running
};

// The hub's revision and the one the trainer last reported applying (nullopt: none yet).
struct ConfigLag {
  std::optional<std::uint64_t> desired_revision;
  std::optional<std::uint64_t> applied_revision;
};

// GET kJob, and each entry of GET kJobs. The lease token is never shown.
struct JobInfo {
  JobSpec spec;
  JobStatus status = JobStatus::kPending;
  std::int64_t attempt = 0;
  std::int64_t counted_failures = 0;
  std::string worker;
  bool cancel_requested = false;
  std::int64_t created_ms = 0;
  std::int64_t updated_ms = 0;
  std::int64_t not_before_ms = 0;
  std::optional<std::int64_t> claimed_ms;
  std::optional<std::int64_t> finished_ms;
  std::optional<std::int64_t> heartbeat_ms;
  std::string last_error;
  std::string artifact;  // the bundle's digest; empty: none
  ConfigLag config;
};

// GET kJobExplain: per known host, whether the job may run there and if not, why.
struct HostVerdict {
  std::string host;
  bool registered = false;
  std::string reason;  // empty: eligible
};

// GET kWorkers.
struct WorkerInfo {
  std::string name;
  HostCapability capability;
  std::int64_t registered_ms = 0;
  std::int64_t last_seen_ms = 0;
};

// GET kHealth: job counts by status name.
struct Health {
  std::map<std::string, std::int64_t> jobs;
};

nlohmann::json to_json(const ClaimRequest& m);
ClaimRequest claim_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ClaimReply& m);
ClaimReply claim_reply_from_json(const nlohmann::json& j);
nlohmann::json to_json(const LeaseRequest& m);
LeaseRequest lease_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const HeartbeatReply& m);
HeartbeatReply heartbeat_reply_from_json(const nlohmann::json& j);
nlohmann::json to_json(const CompleteRequest& m);
CompleteRequest complete_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const FailRequest& m);
// Throws std::invalid_argument for an unknown failure class.
FailRequest fail_request_from_json(const nlohmann::json& j);
nlohmann::json to_json(const CancelReply& m);
CancelReply cancel_reply_from_json(const nlohmann::json& j);
nlohmann::json to_json(const ConfigLag& m);
ConfigLag config_lag_from_json(const nlohmann::json& j);
nlohmann::json to_json(const JobInfo& m);
JobInfo job_info_from_json(const nlohmann::json& j);
nlohmann::json to_json(const std::vector<JobInfo>& jobs);  // {"jobs": [...]}
std::vector<JobInfo> job_list_from_json(const nlohmann::json& j);
nlohmann::json to_json(const std::string& job, const std::vector<HostVerdict>& hosts);
std::vector<HostVerdict> explain_from_json(const nlohmann::json& j);
nlohmann::json to_json(const std::vector<WorkerInfo>& workers);  // {"workers": [...]}
std::vector<WorkerInfo> worker_list_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Health& m);
Health health_from_json(const nlohmann::json& j);

}  // namespace api
}  // namespace tv::fleet
