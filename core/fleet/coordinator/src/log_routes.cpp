// The trainer-log routes (kJobLog): the holder's tail, cleaned and kept in memory (job_logs.hpp),
// and its read for readers. The events channel pushes the same tail (event_routes.cpp).
#include "coordinator_state.hpp"
#include "log_lines.hpp"
#include "trainvisor/fleet/api/job_log.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;

Response over_limit(const std::string& job, std::size_t n, std::size_t limit, const char* unit) {
  return Response::error(413, "job " + job + ": a log tail of " + std::to_string(n) + " " + unit +
                                  " is over the limit of " + std::to_string(limit) + " " + unit);
}

// The bounds come first, then the lease: a refused tail writes nothing. The lease is checked as
// an upload's is, by the queue's heartbeat (the holder, with its token): a tail is proof of life.
Response log_post(CoordinatorState& s, Request& req, const std::string& host) {
  const std::string& job = req.params[0];
  if (req.body.size() > api::kMaxLogTailBytes)
    return over_limit(job, req.body.size(), api::kMaxLogTailBytes, "bytes");
  const bool truncated = query_number(req, "truncated", 0, 0, 1) == 1;
  std::vector<std::string> lines = log_lines(req.body);
  if (lines.size() > api::kMaxLogTailLines)
    return over_limit(job, lines.size(), api::kMaxLogTailLines, "lines");
  const HeartbeatReply h =
      s.queue.heartbeat(job, req.header(api::header_key(api::kLeaseTokenHeader)), host);
  if (h.result != QueueResult::kOk) return lease_reply(s, h.result, job, host);
  const std::size_t kept = lines.size();
  s.logs.put({job, host, s.now_ms(), std::move(lines), truncated});
  return Response::json(200, {{"ok", true}, {"lines", kept}});
}

Response log_get(CoordinatorState& s, Request& req) {
  const std::string& job = req.params[0];
  if (!s.queue.get(job)) return Response::error(404, no_such_job(job));
  if (const auto tail = s.logs.get(job)) return Response::json(200, nlohmann::json(tail->log));
  return Response::json(200, nlohmann::json(api::JobLog{job, {}, {}, {}, false}));
}

}  // namespace

void add_log_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kJobLog),
               for_hosts(s, [&s](Request& req, BodyStream*, const std::string& host) {
                 return log_post(s, req, host);
               })});
  r.push_back({"GET", std::string(api::kJobLog),
               for_readers(s, [&s](Request& req, BodyStream*) { return log_get(s, req); })});
}

}  // namespace tv::fleet::coordinator
