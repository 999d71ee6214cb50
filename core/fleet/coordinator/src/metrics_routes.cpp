// GET /metrics: the coordinator's metrics in the Prometheus text format, readable as the API's
// reads are (public where reads are public, else the read, operator or worker token).
#include "coordinator_state.hpp"
#include "trainvisor/fleet/api/paths.hpp"

namespace tv::fleet::coordinator {

void add_metrics_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back(
      {"GET", std::string(api::kMetrics), for_readers(s, [&s](http::Request&, http::BodyStream*) {
         http::Response res;
         res.content_type = std::string(metrics::kContentType);
         res.body = s.metrics.registry.render();
         return res;
       })});
}

}  // namespace tv::fleet::coordinator
