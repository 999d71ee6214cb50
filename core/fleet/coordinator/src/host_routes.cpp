// The host routes: enrolment (a credential per host name) and revocation. A host holding the
// worker token enrols a name that never had a credential (trust on first use); an operator
// enrols any name, replacing its credential, and revokes one.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/names.hpp"

namespace tv::fleet::coordinator {
namespace {

using http::BodyStream;
using http::Request;
using http::Response;

Response enrol(CoordinatorState& s, Request& req) {
  const bool operator_call = is_operator(s, req);
  if (!operator_call && !is_worker(s, req))
    return Response::error(401, "enrolment needs X-Worker-Token (or X-Operator-Token)");
  const std::string& name = req.params[0];
  if (const std::string why = host_name_problem(name); !why.empty())
    return Response::error(400, why);
  if (operator_call)
    return Response::json(200,
                          nlohmann::json(api::EnrolReply{name, s.hosts.reissue(name, s.now_ms())}));
  const Enrolment e = s.hosts.enrol_new(name, s.now_ms());
  switch (e.result) {
    case Enrolment::Result::kIssued:
      return Response::json(200, nlohmann::json(api::EnrolReply{name, e.credential}));
    case Enrolment::Result::kAlreadyEnrolled:
      return Response::error(409, "host " + name +
                                      " is already enrolled; an operator can revoke it "
                                      "(trainvisor hosts revoke " +
                                      name + ") or enrol it again (trainvisor hosts enrol " + name +
                                      ")");
    case Enrolment::Result::kRevoked:
      break;
  }
  return Response::error(409, "host " + name +
                                  "'s credential was revoked; only an operator can enrol it "
                                  "again (trainvisor hosts enrol " +
                                  name + ")");
}

}  // namespace

void add_host_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back({"POST", std::string(api::kHostEnrol),
               [&s](Request& req, BodyStream*) { return enrol(s, req); }});
  r.push_back(
      {"POST", std::string(api::kHostRevoke), for_operators(s, [&s](Request& req, BodyStream*) {
         const std::string& name = req.params[0];
         if (!s.hosts.revoke(name, s.now_ms()))
           return Response::error(404, "host " + name + " was never enrolled");
         return Response::json(200, nlohmann::json(api::RevokeReply{name, true}));
       })});
}

}  // namespace tv::fleet::coordinator
