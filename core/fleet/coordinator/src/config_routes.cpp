// The config hub's routes: reads for readers; a write from a human (operator token), one of the
// job's policies (its holder's host credential) or a policy running as its own process (the
// worker token) while the job may still run; freezes for operators; the config stream for the
// job's holder's agent.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/api/checked.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/param_json.hpp"

namespace tv::fleet::coordinator {
namespace {

using api::StreamMessage;
using http::BodyStream;
using http::Request;
using http::Response;

// The most audit entries one page of the config log holds.
constexpr std::uint64_t kMaxAuditPage = 1000;

int refusal_status(ConfigRefusal r) {
  switch (r) {
    case ConfigRefusal::kUnknownJob:
      return 404;
    case ConfigRefusal::kFrozen:
      return 409;
    case ConfigRefusal::kSuperseded:
      return 412;  // the decision's precondition, the config it was made from, no longer holds
    case ConfigRefusal::kInvalid:
    case ConfigRefusal::kNone:
      break;
  }
  return 400;
}

Response config_get(CoordinatorState& s, const std::string& job) {
  try {
    const ConfigTree t = s.hub.get(job);
    return Response::json(200, nlohmann::json(api::ConfigInfo{job, t.revision, t.values,
                                                              s.hub.frozen(job), s.applied(job)}));
  } catch (const ConfigHubError& e) {
    return Response::error(404, e.what());
  }
}

// Who may write as `policy`: the host holding the job (its credential, not the body, names it),
// for a policy the job's spec runs. nullopt: allowed; otherwise the refusal.
std::optional<Response> policy_refusal(CoordinatorState& s, const std::string& job,
                                       const std::string& policy, const std::string& host) {
  const auto row = s.queue.get(job);
  if (!row) return Response::error(404, no_such_job(job));
  // A pending job has no holder, whoever held it last.
  if (row->worker != host || row->status == JobStatus::kPending)
    return not_the_holder(job, row->status == JobStatus::kPending ? "" : row->worker, host);
  for (const PolicySpec& p : row->spec.policies) {
    if (p.name == policy) return std::nullopt;
  }
  std::string has;
  for (const PolicySpec& p : row->spec.policies)
    has += (has.empty() ? "" : ", ") + p.name;
  return Response::error(403, "job " + job + " runs no policy '" + policy +
                                  "' (its policies: " + (has.empty() ? std::string("none") : has) +
                                  "); a host writes only as one of them");
}

// Who may write as `policy` with the worker token: a policy running as a process of its own (a
// supervisor beside the fleet), under a name of its own, for a job a trainer runs now. Its writes
// then meet the hub's freeze, validation, human-wins and audit exactly as a plugin policy's do.
// nullopt: allowed; otherwise the refusal. A finished job is refused later, as for every writer.
std::optional<Response> worker_policy_refusal(CoordinatorState& s, const std::string& job,
                                              const std::string& policy) {
  if (const auto why = api::policy_name_problem(policy)) return Response::error(400, *why);
  const auto row = s.queue.get(job);
  if (!row) return Response::error(404, no_such_job(job));
  if (row->status == JobStatus::kPending) {
    return Response::error(409, "job '" + row->spec.name + "' (" + job +
                                    ") is pending: no trainer runs it to apply policy:" + policy +
                                    "'s write; a policy writes to a claimed or running job");
  }
  // The job's own policies run on its host: the log must never take another writer for one.
  for (const PolicySpec& p : row->spec.policies) {
    if (p.name == policy) {
      return Response::error(403, "job " + job + " runs the policy '" + policy +
                                      "' on its host; a policy writing with the worker token "
                                      "needs a name of its own");
    }
  }
  return std::nullopt;
}

Response config_write(CoordinatorState& s, Request& req) {
  const bool human = is_operator(s, req);
  // A request that sends a host credential is a host's, whatever else it sends.
  const bool as_host = !human && !req.header(api::header_key(api::kHostCredentialHeader)).empty();
  const std::optional<std::string> host = as_host ? credited_host(s, req) : std::nullopt;
  const bool worker_policy = !human && !as_host && is_worker(s, req);
  if (!human && !host && !worker_policy) {
    return Response::error(401,
                           "missing or wrong X-Operator-Token (or, for a policy, "
                           "X-Host-Credential or X-Worker-Token)");
  }
  const nlohmann::json body = body_json(req);
  // A policy names itself; a human is named by the request's header.
  const std::string policy = human ? std::string() : api::required_string(body, "policy");
  const api::ConfigWriteRequest w = body.get<api::ConfigWriteRequest>();
  const std::optional<Response> refused =
      host ? policy_refusal(s, req.params[0], policy, *host)
           : (worker_policy ? worker_policy_refusal(s, req.params[0], policy) : std::nullopt);
  const std::string actor = human ? operator_actor(req) : api::Actor::policy(policy).str();
  if (refused) {
    s.metrics.config_write(actor, false);
    return *refused;
  }
  std::vector<ConfigWrite> writes;
  for (const auto& [k, v] : w.writes)
    writes.push_back({k, v});
  // A finished job has no trainer to apply a write: accepting it would only mislead the writer
  // into believing it changed something. A requeue makes the job writable again.
  if (const auto row = s.queue.get(req.params[0]); row && is_finished(row->status)) {
    s.metrics.config_write(actor, false);
    return Response::error(409, "job '" + row->spec.name + "' (" + row->spec.id + ") is " +
                                    std::string(to_string(row->status)) +
                                    ": no trainer will apply this write (requeue the job first)");
  }
  const ConfigWriteResult r =
      s.hub.write(req.params[0], writes, actor, w.reason, human ? 0 : w.decided_from);
  s.metrics.config_write(actor, r.applied);
  if (!r.applied) return Response::error(refusal_status(r.refused), r.refusal);
  s.metrics.apply_lag.written(req.params[0], r.revision, s.now_ms());
  return Response::json(200, nlohmann::json(api::ConfigWriteReply{r.revision, actor}));
}

Response config_freeze(CoordinatorState& s, Request& req, bool freezing) {
  const api::FreezeRequest f = body_json(req).get<api::FreezeRequest>();
  try {
    if (freezing) {
      s.hub.freeze(req.params[0], f.prefix, operator_actor(req));
    } else {
      s.hub.unfreeze(req.params[0], f.prefix, operator_actor(req));
    }
  } catch (const ConfigHubError& e) {
    return Response::error(400, e.what());
  }
  return Response::json(200, nlohmann::json(api::FrozenList{s.hub.frozen(req.params[0])}));
}

Response config_log(CoordinatorState& s, Request& req) {
  const std::vector<AuditEntry> out =
      s.hub.audit(req.params[0], query_number(req, "after", 0, 0, api::kMaxStored),
                  query_number(req, "limit", 100, 0, kMaxAuditPage));
  return Response::json(200, nlohmann::json(api::AuditLog{out}));
}

// Whether `e` is one more entry of the change `m` (a write of several keys is one entry a key).
bool same_change(const api::ConfigMarker& m, const AuditEntry& e) {
  return m.kind == e.kind && m.revision == e.revision && m.actor == e.actor &&
         m.accepted == e.accepted && m.refusal == e.refusal && m.reason == e.reason &&
         m.time_ms == e.time_ms;
}

// The first step at which a revision at or after `revision` was applied, from the steps each
// revision was first reported at.
std::optional<std::uint64_t> applied_step(const std::map<std::uint64_t, std::uint64_t>& steps,
                                          std::uint64_t revision) {
  std::optional<std::uint64_t> out;
  for (auto it = steps.lower_bound(revision); it != steps.end(); ++it)
    out = std::min(out.value_or(it->second), it->second);
  return out;
}

Response config_markers(CoordinatorState& s, Request& req) {
  const std::string& job = req.params[0];
  const std::uint64_t after = query_number(req, "after", 0, 0, api::kMaxStored);
  const std::vector<AuditEntry> log =
      s.hub.audit(job, after, query_number(req, "limit", 100, 0, kMaxAuditPage));
  const std::map<std::uint64_t, std::uint64_t> steps = s.telemetry.revision_steps(job);
  api::ConfigMarkers out{{}, after};
  for (const AuditEntry& e : log) {
    out.after = e.seq;
    if (out.markers.empty() || !same_change(out.markers.back(), e)) {
      api::ConfigMarker m{e.seq,     e.seq,      e.kind,    e.revision, e.actor, e.reason,
                          e.time_ms, e.accepted, e.refusal, e.count,    {},      {}};
      if (e.kind == "write" && e.accepted) m.applied_step = applied_step(steps, e.revision);
      out.markers.push_back(std::move(m));
    }
    api::ConfigMarker& m = out.markers.back();
    m.last_seq = e.seq;
    m.keys.push_back({e.path, e.old_value, e.new_value});
  }
  return Response::json(200, nlohmann::json(out));
}

// The stream's admission: the credential of the host that holds (or last held) the job, a
// readable `from`, a known job.
Response stream_admission(CoordinatorState& s, Request& req) {
  const std::optional<std::string> host = credited_host(s, req);
  if (!host) return no_host_credential();
  query_number(req, "from", 0, 0, api::kMaxStored);
  if (const auto row = s.queue.get(req.params[0]); row && row->worker != *host)
    return not_the_holder(req.params[0], row->worker, *host);
  try {
    s.hub.get(req.params[0]);
  } catch (const ConfigHubError& e) {
    return Response::error(404, e.what());
  }
  Response ok;
  ok.status = 101;
  return ok;
}

// One host agent's config stream for one job (the protocol is in api/config.hpp). Returns when
// the agent goes away or the server stops.
class StreamSession {
 public:
  StreamSession(CoordinatorState& s, const Request& req, http::WebSocketSession& ws)
      : s_(s),
        ws_(ws),
        job_(req.params[0]),
        from_(query_number(req, "from", 0, 0, api::kMaxStored)) {}

  void run() {
    const metrics::GaugeHold open(s_.metrics.config_streams);
    // Read before subscribing: a change between the two wakes the loop rather than being lost.
    std::uint64_t seen = s_.hub.wait_for_change(~std::uint64_t{0}, std::chrono::milliseconds(0));
    ConfigStream sub = s_.hub.subscribe(job_, from_);
    sent_revision_ = from_;
    if (sub.snapshot) {
      sent_revision_ = sub.tree.revision;
      if (!send(StreamMessage::snapshot(sub.tree.revision, sub.tree.values, sub.frozen))) return;
    } else if (!send(StreamMessage::resume(sub.frozen))) {
      return;
    }
    std::vector<ConfigEvent> events = std::move(sub.events);
    auto next_keepalive = std::chrono::steady_clock::now();
    while (ws_.open()) {
      if (!send_events(events)) return;
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_keepalive) {
        if (!send(StreamMessage::keepalive(sent_revision_))) return;
        next_keepalive = now + s_.options.stream_keepalive;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
          next_keepalive - std::chrono::steady_clock::now());
      seen = s_.hub.wait_for_change(seen, std::max(wait, std::chrono::milliseconds(1)));
      events = s_.hub.events_after(job_, sub.cursor);
    }
  }

 private:
  // False once the connection is to be closed (the fault hook's close_every).
  bool send(const StreamMessage& m) {
    ws_.send(nlohmann::json(m).dump());
    ++messages_;
    const auto& fault = s_.options.stream_fault;
    return !(fault.close_every > 0 && messages_ % fault.close_every == 0);
  }

  bool send_events(const std::vector<ConfigEvent>& events) {
    const auto& fault = s_.options.stream_fault;
    for (const ConfigEvent& e : events) {
      if (!e.prefix.empty()) {
        if (!send(StreamMessage::freeze(e.prefix, e.frozen))) return false;
        continue;
      }
      sent_revision_ = e.delta.revision;
      plugin::ConfigView writes;
      for (const ConfigWrite& w : e.delta.writes)
        writes[w.path] = w.value;
      if (fault.skip_every > 0 && ++deltas_ % fault.skip_every == 0) continue;
      if (!send(StreamMessage::delta(e.delta.revision, e.delta.actor, std::move(writes))))
        return false;
    }
    return true;
  }

  CoordinatorState& s_;
  http::WebSocketSession& ws_;
  const std::string job_;
  const std::uint64_t from_;
  std::uint64_t sent_revision_ = 0;
  int deltas_ = 0;
  int messages_ = 0;
};

}  // namespace

void add_config_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"GET", std::string(api::kJobConfig), for_readers(s, [&s](Request& req, BodyStream*) {
                 return config_get(s, req.params[0]);
               })});
  r.push_back({"POST", std::string(api::kJobConfig),
               [&s](Request& req, BodyStream*) { return config_write(s, req); }});
  for (const bool freezing : {true, false}) {
    r.push_back({"POST", std::string(freezing ? api::kJobConfigFreeze : api::kJobConfigUnfreeze),
                 for_operators(s, [&s, freezing](Request& req, BodyStream*) {
                   return config_freeze(s, req, freezing);
                 })});
  }
  r.push_back({"GET", std::string(api::kJobConfigLog),
               for_readers(s, [&s](Request& req, BodyStream*) { return config_log(s, req); })});
  r.push_back({"GET", std::string(api::kJobConfigMarkers),
               for_readers(s, [&s](Request& req, BodyStream*) { return config_markers(s, req); })});
  r.push_back(
      {"GET", std::string(api::kJobConfigStream),
       [&s](Request& req, BodyStream*) { return stream_admission(s, req); }, false,
       [&s](const Request& req, http::WebSocketSession& ws) { StreamSession(s, req, ws).run(); }});
}

}  // namespace tv::fleet::coordinator
