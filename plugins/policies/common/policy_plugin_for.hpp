// PolicyPluginFor<P>: the PolicyPlugin of policy class P, which provides
//   static plugin::Descriptor descriptor();
//   static Settings read_settings(ParamReader& in);   // refuses bad values through `in`
//   explicit P(const Settings& settings);
// create() turns a refused parameter or a throwing constructor into its `error` value, so no
// exception leaves the plugin.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/param_schema.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

inline constexpr const char* kPolicyVersion = "1.0.0";

// Every policy's descriptor: kind, version and the shared dry_run flag added to its own params.
inline plugin::Descriptor policy_descriptor(std::string name, std::string summary,
                                            std::vector<plugin::ParamSpec> params) {
  params.push_back(dry_run_param());
  return plugin_params::plugin_descriptor(plugin::Kind::kPolicy, std::move(name), kPolicyVersion,
                                          std::move(summary), std::move(params));
}

template <class P>
class PolicyPluginFor final : public plugin::PolicyPlugin {
 public:
  plugin::Descriptor describe() const override { return P::descriptor(); }

  std::unique_ptr<plugin::Policy> create(const plugin::Params& params,
                                         std::string& error) override {
    return plugin_params::create_from_params(
        params, error, [](ParamReader& in) -> std::unique_ptr<plugin::Policy> {
          const auto settings = P::read_settings(in);
          if (!in.ok()) return nullptr;
          return std::make_unique<P>(settings);
        });
  }
};

}  // namespace tv::policies
