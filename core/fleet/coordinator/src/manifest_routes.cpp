// The manifest route: an operator's reload (or dry run) of the coordinator's manifest.
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/manifest.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/manifest.hpp"

namespace tv::fleet::coordinator {

void add_manifest_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back(
      {"POST", std::string(api::kManifestReload),
       for_operators(s, [&s](http::Request& req, http::BodyStream*) {
         const bool dry = req.query.count("dry_run") && req.query["dry_run"] != "0";
         try {
           const ReloadSummary sum = s.reload(dry);
           return http::Response::json(
               200, nlohmann::json(api::ReloadReply{dry, sum.added, sum.unchanged, sum.removed,
                                                    sum.report.added + sum.report.updated,
                                                    sum.replaced, sum.warnings}));
         } catch (const ManifestError& e) {
           return http::Response::json(
               400, nlohmann::json(api::ErrorReply{"invalid manifest", 400, e.diagnostics()}));
         }
       })});
}

}  // namespace tv::fleet::coordinator
