// The job and worker routes: reads for readers (health for anyone), the lease calls for workers,
// cancel and requeue for operators.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;
using nlohmann::json;

std::int64_t now_ms(const CoordinatorState& s) {
  if (s.options.queue.clock) return s.options.queue.clock();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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
  r.push_back(
      {"GET", std::string(api::kJobExplain), for_readers(s, [&s](Request& req, BodyStream*) {
         std::vector<api::HostVerdict> hosts;
         try {
           for (const Explanation& e : s.queue.explain(req.params[0], now_ms(s)))
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

void add_lease_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kClaim), for_workers(s, [&s](Request& req, BodyStream*) {
                 const api::ClaimRequest c = body_json(req).get<api::ClaimRequest>();
                 s.note_worker(c.worker, c.capability);
                 api::ClaimReply reply;
                 if (auto claim = s.queue.claim_next(c.worker, c.capability)) {
                   reply = {std::move(claim->spec), claim->attempt, claim->lease_token,
                            claim->lease_expires_ms};
                 }
                 return Response::json(200, nlohmann::json(reply));
               })});
  r.push_back(
      {"POST", std::string(api::kJobHeartbeat), for_workers(s, [&s](Request& req, BodyStream*) {
         const auto lease = body_json(req).get<api::LeaseRequest>();
         const HeartbeatReply h = s.queue.heartbeat(req.params[0], lease.lease_token);
         if (h.result != QueueResult::kOk) return queue_reply(h.result, req.params[0]);
         return Response::json(
             200, nlohmann::json(api::HeartbeatReply{h.cancel_requested, h.lease_expires_ms}));
       })});
  r.push_back(
      {"POST", std::string(api::kJobRunning), for_workers(s, [&s](Request& req, BodyStream*) {
         const auto lease = body_json(req).get<api::LeaseRequest>();
         return queue_reply(s.queue.mark_running(req.params[0], lease.lease_token), req.params[0]);
       })});
  r.push_back(
      {"POST", std::string(api::kJobComplete), for_workers(s, [&s](Request& req, BodyStream*) {
         const auto c = body_json(req).get<api::CompleteRequest>();
         if (c.artifact && !s.artifacts->contains(*c.artifact)) {
           return Response::error(
               400, "job " + req.params[0] + ": artifact " + *c.artifact + " was never uploaded");
         }
         return queue_reply(s.queue.complete(req.params[0], c.lease_token, c.artifact),
                            req.params[0]);
       })});
  r.push_back({"POST", std::string(api::kJobFail), for_workers(s, [&s](Request& req, BodyStream*) {
                 const auto f = body_json(req).get<api::FailRequest>();
                 return queue_reply(s.queue.fail(req.params[0], f.lease_token, f.failure, f.reason),
                                    req.params[0]);
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
         return queue_reply(s.queue.requeue(req.params[0]), req.params[0]);
       })});
}

}  // namespace

void add_job_routes(CoordinatorState& s, std::vector<http::Route>& routes) {
  add_read_routes(s, routes);
  add_lease_routes(s, routes);
  add_operator_routes(s, routes);
}

}  // namespace tv::fleet::coordinator
