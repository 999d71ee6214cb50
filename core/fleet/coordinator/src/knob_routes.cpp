// The knob schema's route (kKnobs, readers): the trainer's live knobs with their types, bounds
// and when a change takes effect, for a dashboard's config editor.
#include "coordinator_state.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/param_json.hpp"

namespace tv::fleet::coordinator {
namespace {

using nlohmann::json;
using plugin::ParamSpec;

// A bound in the knob's own type: an int64 knob's bounds are integers, a float64's keep their
// decimal point.
json bound_json(const ParamSpec& spec, const std::optional<double>& bound) {
  if (!bound) return nullptr;
  if (spec.type == plugin::ParamType::kInt64) return static_cast<std::int64_t>(*bound);
  return *bound;
}

json knob_json(const ParamSpec& spec) {
  return {{"key", spec.key},
          {"type", param_type_name(spec.type)},
          {"default", param_value_json(spec.default_value)},
          {"min", bound_json(spec, spec.min)},
          {"max", bound_json(spec, spec.max)},
          {"allowed", spec.allowed},
          {"help", spec.help},
          {"takes_effect", knobs::effect_name(knobs::takes_effect(spec.key))}};
}

}  // namespace

void add_knob_routes(CoordinatorState& s, std::vector<http::Route>& r) {
  r.push_back(
      {"GET", std::string(api::kKnobs), for_readers(s, [](http::Request&, http::BodyStream*) {
         json list = json::array();
         for (const ParamSpec& spec : knobs::schema())
           list.push_back(knob_json(spec));
         return http::Response::json(200, {{"knobs", std::move(list)}});
       })});
}

}  // namespace tv::fleet::coordinator
