// The job and worker endpoints' messages: what a host sends to claim and hold a lease, and what
// an operator reads about jobs and hosts. Routes are in paths.hpp, the JSON rules in json.hpp.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/fleet/api/json.hpp"
#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/job_status.hpp"

namespace tv::fleet {

// The JSON forms of the fleet's shared types (also through ADL: nlohmann::json(spec)).
nlohmann::json job_spec_json(const JobSpec& spec);
JobSpec job_spec_from_json(const nlohmann::json& j);
TV_API_JSON(JobSpec);
// A capability's absent fields decode as zero (an older host may not send them all); present
// ones are checked against the bounds in checked.hpp.
TV_API_JSON(HostCapability);
inline nlohmann::json capability_json(const HostCapability& c) {
  return c;
}
inline HostCapability capability_from_json(const nlohmann::json& j) {
  return j.get<HostCapability>();
}

namespace api {

// POST kClaim (worker). The reply's `job` is nullopt when nothing may run on this host now.
struct ClaimRequest {
  std::string worker;  // a host name (valid_host_name)
  HostCapability capability;
};
struct ClaimReply {
  std::optional<JobSpec> job;
  std::int64_t attempt = 0;
  std::string lease_token;
  std::int64_t lease_expires_ms = 0;
  // A checkpoint written in another generation (before a requeue that starts over) must not
  // be resumed: the host starts the trainer from step 0. Absent in JSON: 0.
  std::int64_t generation = 0;
};

// POST kJobHeartbeat / kJobRunning (worker): the body is the lease token.
struct LeaseRequest {
  std::string lease_token;
};
struct HeartbeatReply {
  bool cancel_requested = false;
  std::int64_t lease_expires_ms = 0;
};

// POST kJobComplete / kJobFail (worker).
struct CompleteRequest {
  std::string lease_token;
  std::optional<std::string> artifact;  // the bundle's digest, uploaded before
  // The trainer exited with the early-stop code: the job ends `stopped`, and the coordinator
  // names who stopped it from its config hub's audit log.
  bool early_stopped = false;
};
struct FailRequest {
  std::string lease_token;
  FailureClass failure = FailureClass::kTrainerFailure;
  std::string reason;  // at most kMaxTextBytes (checked.hpp)
};

// POST kHostEnrol (the worker token for a new name, or an operator): the host's credential
// "NAME:SECRET", shown this once (the coordinator keeps only its digest).
struct EnrolReply {
  std::string host;
  std::string credential;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EnrolReply, host, credential)

// POST kHostRevoke (operator).
struct RevokeReply {
  std::string host;
  bool revoked = true;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RevokeReply, host, revoked)

// POST kJobRequeue (operator). An empty body starts over from step 0.
struct RequeueRequest {
  bool from_checkpoint = false;  // resume from the checkpoint the next host finds
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
  // Status stopped: the actor of the early_stop write ("policy:divergence", "human:ana") and
  // its reason. Empty otherwise.
  std::string stopped_by;
  std::string stop_reason;
};
struct JobList {
  std::vector<JobInfo> jobs;
};

// GET kJobExplain: per known host, whether the job may run there and if not, why.
struct HostVerdict {
  std::string host;
  bool registered = false;
  std::string reason;  // empty: eligible
};
struct Explanation {
  std::string job;
  std::vector<HostVerdict> hosts;
};

// GET kWorkers.
struct WorkerInfo {
  std::string name;
  HostCapability capability;
  std::int64_t registered_ms = 0;
  std::int64_t last_seen_ms = 0;
};
struct WorkerList {
  std::vector<WorkerInfo> workers;
};

// GET kHealth: job counts by status name.
struct Health {
  std::map<std::string, std::int64_t> jobs;
};

TV_API_JSON(ClaimRequest);
TV_API_JSON(ClaimReply);
TV_API_JSON(LeaseRequest);
TV_API_JSON(HeartbeatReply);
TV_API_JSON(CompleteRequest);
TV_API_JSON(FailRequest);  // an unknown failure class: std::invalid_argument
TV_API_JSON(CancelReply);
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(RequeueRequest, from_checkpoint)
TV_API_JSON(ConfigLag);
TV_API_JSON(JobInfo);
TV_API_JSON(HostVerdict);
TV_API_JSON(Health);
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(JobList, jobs)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(Explanation, job, hosts)
TV_API_JSON(WorkerInfo);
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(WorkerList, workers)

}  // namespace api
}  // namespace tv::fleet
