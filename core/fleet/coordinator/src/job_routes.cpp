// The job and worker routes: reads for readers (a job by reference included: the one place a
// name becomes an id; health for anyone), the lease calls for workers, cancel and requeue for
// operators.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;
using nlohmann::json;

// The job `ref` names: its full id; else the jobs named `ref`; else those whose id starts with
// it (4 characters at least). Several matches are 409, listing each id with its status: after a
// reload that changed a job's spec, its name names the old job and its replacement.
Response job_by_ref(CoordinatorState& s, const std::string& ref) {
  if (const auto row = s.queue.get(ref))
    return Response::json(200, nlohmann::json(s.job_info(*row)));
  std::vector<JobRow> named, prefixed;
  for (JobRow& row : s.queue.list()) {
    if (row.spec.name == ref) {
      named.push_back(std::move(row));
    } else if (ref.size() >= 4 && row.spec.id.rfind(ref, 0) == 0) {
      prefixed.push_back(std::move(row));
    }
  }
  const std::vector<JobRow>& hits = named.empty() ? prefixed : named;
  if (hits.size() == 1) return Response::json(200, nlohmann::json(s.job_info(hits[0])));
  if (hits.empty())
    return Response::error(404, "no job named or with an id starting '" + ref + "'");
  std::string list;
  for (const JobRow& row : hits)
    list += "\n  " + row.spec.id + " (" + std::string(to_string(row.status)) + ")";
  return Response::error(409, "'" + ref + "' " + (named.empty() ? "starts the ids of " : "names ") +
                                  std::to_string(hits.size()) +
                                  " jobs; give one of their ids (or a unique prefix):" + list);
}

// Who stopped a job whose trainer exited with the early-stop code: the latest accepted write of
// training/control/early_stop in the job's audit log, when it set it true. A trainer that
// stopped without one in force (a requeue cleared it, the block was edited) is named as such.
StopCause stop_cause(CoordinatorState& s, const std::string& job) {
  const auto last = s.hub.last_write(job, plugin::knob::kEarlyStop);
  if (last && last->new_value == plugin::ParamValue(true)) return {last->actor, last->reason};
  return {"trainer", "exited with the early-stop code; no early_stop write is in force"};
}

// A requeued job runs again: an early_stop the hub still holds would stop it at its first step,
// so the operator's requeue sets it back to false (an audited write in their name).
void clear_early_stop(CoordinatorState& s, Request& req) {
  const std::string& job = req.params[0];
  ConfigTree tree;
  try {
    tree = s.hub.get(job);
  } catch (const ConfigHubError&) {
    return;  // no config tree: nothing to clear
  }
  const auto it = tree.values.find(plugin::knob::kEarlyStop);
  if (it == tree.values.end() || it->second != plugin::ParamValue(true)) return;
  const std::string actor = operator_actor(req);
  const ConfigWriteResult w =
      s.hub.write(job, {{plugin::knob::kEarlyStop, false}}, actor, "requeued: the job runs again");
  s.metrics.config_write(actor, w.applied);
  if (w.applied) s.metrics.apply_lag.written(job, w.revision, s.now_ms());
  if (!w.applied) s.log_error("job " + job + ": requeue could not clear early_stop: " + w.refusal);
}

void add_read_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"GET", std::string(api::kHealth), [&s](Request&, BodyStream*) {
                 api::Health h;
                 for (const auto& [status, n] : s.queue.counts())
                   h.jobs[std::string(to_string(status))] = n;
                 return Response::json(200, nlohmann::json(h));
               }});
  r.push_back({"GET", std::string(api::kJobs), for_readers(s, [&s](Request& req, BodyStream*) {
                 std::optional<JobStatus> filter;
                 if (const auto it = req.query.find("status"); it != req.query.end()) {
                   try {
                     filter = parse_job_status(it->second);
                   } catch (const QueueError& e) {
                     return Response::error(400, e.what());
                   }
                 }
                 std::vector<api::JobInfo> jobs;
                 for (const JobRow& row : s.queue.list(filter))
                   jobs.push_back(s.job_info(row));
                 return Response::json(200, nlohmann::json(api::JobList{jobs}));
               })});
  r.push_back({"GET", std::string(api::kJob), for_readers(s, [&s](Request& req, BodyStream*) {
                 const auto row = s.queue.get(req.params[0]);
                 if (!row) return Response::error(404, no_such_job(req.params[0]));
                 return Response::json(200, nlohmann::json(s.job_info(*row)));
               })});
  r.push_back({"GET", std::string(api::kJobByRef), for_readers(s, [&s](Request& req, BodyStream*) {
                 return job_by_ref(s, req.params[0]);
               })});
  r.push_back(
      {"GET", std::string(api::kJobExplain), for_readers(s, [&s](Request& req, BodyStream*) {
         std::vector<api::HostVerdict> hosts;
         try {
           for (const Explanation& e : s.queue.explain(req.params[0], s.now_ms()))
             hosts.push_back({e.host, e.registered, e.reason});
         } catch (const QueueError& e) {
           return Response::error(404, e.what());
         }
         return Response::json(200, nlohmann::json(api::Explanation{req.params[0], hosts}));
       })});
  r.push_back({"GET", std::string(api::kWorkers), for_readers(s, [&s](Request&, BodyStream*) {
                 std::vector<api::WorkerInfo> ws;
                 for (const WorkerRow& w : s.queue.workers())
                   ws.push_back({w.name, w.capability, w.registered_ms, w.last_seen_ms});
                 return Response::json(200, nlohmann::json(api::WorkerList{ws}));
               })});
}

// A host's failure report: the trainer's own failure or a lost host. Only an operator's cancel
// ends a job cancelled; the queue refuses a host's "cancelled" on a job no operator cancelled.
Response fail_job(CoordinatorState& s, Request& req, const std::string& host) {
  const auto f = body_json(req).get<api::FailRequest>();
  try {
    return lease_reply(s, s.queue.fail(req.params[0], f.lease_token, f.failure, f.reason, host),
                       req.params[0], host);
  } catch (const QueueError& e) {
    return Response::error(400, e.what());
  }
}

void add_lease_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kClaim),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 const api::ClaimRequest c = body_json(req).get<api::ClaimRequest>();
                 if (c.worker != host) {
                   return Response::error(403, "this credential is host " + host +
                                                   "'s; it cannot claim as " + c.worker);
                 }
                 s.note_worker(host, c.capability);
                 api::ClaimReply reply;
                 if (auto claim = s.queue.claim_next(host, c.capability)) {
                   reply = {std::move(claim->spec), claim->attempt, claim->lease_token,
                            claim->lease_expires_ms, claim->generation};
                   s.metrics.claims_granted.inc();
                 } else {
                   s.metrics.claims_none.inc();
                 }
                 return Response::json(200, nlohmann::json(reply));
               })});
  r.push_back({"POST", std::string(api::kJobHeartbeat),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 const auto lease = body_json(req).get<api::LeaseRequest>();
                 const HeartbeatReply h = s.queue.heartbeat(req.params[0], lease.lease_token, host);
                 if (h.result != QueueResult::kOk)
                   return lease_reply(s, h.result, req.params[0], host);
                 return Response::json(200, nlohmann::json(api::HeartbeatReply{
                                                h.cancel_requested, h.lease_expires_ms}));
               })});
  r.push_back({"POST", std::string(api::kJobRunning),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 const auto lease = body_json(req).get<api::LeaseRequest>();
                 return lease_reply(s, s.queue.mark_running(req.params[0], lease.lease_token, host),
                                    req.params[0], host);
               })});
  r.push_back(
      {"POST", std::string(api::kJobComplete),
       for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
         const auto c = body_json(req).get<api::CompleteRequest>();
         if (c.artifact && !s.artifacts->contains(*c.artifact)) {
           return Response::error(
               400, "job " + req.params[0] + ": artifact " + *c.artifact + " was never uploaded");
         }
         std::optional<StopCause> stopped;
         if (c.early_stopped) stopped = stop_cause(s, req.params[0]);
         const QueueResult done =
             s.queue.complete(req.params[0], c.lease_token, c.artifact, stopped, host);
         // A pipeline's training is judged now; the sweeper retries what fails here.
         if (done == QueueResult::kOk) {
           try {
             if (const auto row = s.queue.get(req.params[0])) settle_training(s, *row);
           } catch (const std::exception& e) {
             s.log_error("job " + req.params[0] + ": settling its pipeline training: " + e.what());
           }
         }
         return lease_reply(s, done, req.params[0], host);
       })});
  r.push_back({"POST", std::string(api::kJobFail),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 return fail_job(s, req, host);
               })});
}

void add_operator_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back(
      {"POST", std::string(api::kJobCancel), for_operators(s, [&s](Request& req, BodyStream*) {
         const CancelReply c = s.queue.cancel(req.params[0]);
         if (c.result != QueueResult::kOk) return queue_reply(c.result, req.params[0]);
         return Response::json(200, nlohmann::json(api::CancelReply{c.was_held(), c.worker}));
       })});
  r.push_back(
      {"POST", std::string(api::kJobRequeue), for_operators(s, [&s](Request& req, BodyStream*) {
         const auto q = body_json(req).get<api::RequeueRequest>();
         const QueueResult result = s.queue.requeue(
             req.params[0], q.from_checkpoint ? RequeueFrom::kCheckpoint : RequeueFrom::kStart);
         if (result == QueueResult::kOk) clear_early_stop(s, req);
         return queue_reply(result, req.params[0]);
       })});
}

}  // namespace

void add_job_routes(CoordinatorState& s, std::vector<http::Route>& routes) {
  add_read_routes(s, routes);
  add_lease_routes(s, routes);
  add_operator_routes(s, routes);
}

}  // namespace tv::fleet::coordinator
