// TriggerPluginFor<T>: the TriggerPlugin of trigger class T, which provides
//   static plugin::Descriptor descriptor();
//   struct Settings;
//   static Settings read_settings(plugin_params::ParamReader& in);  // refuses bad values via `in`
// and either a constructor `explicit T(const Settings&)`, or, when creating it can fail or needs
// the host's services,
//   static std::unique_ptr<plugin::Trigger> make(const Settings& settings,
//                                                const plugin::TriggerServices& services,
//                                                std::string& error);  // null with `error`
// create() turns a refused parameter, a failed make() or anything thrown into its `error` value,
// so no exception leaves the plugin.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/plugin_params.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::triggers {

inline constexpr const char* kTriggerVersion = "1.0.0";

inline plugin::Descriptor trigger_descriptor(std::string name, std::string summary,
                                             std::vector<plugin::ParamSpec> params) {
  return plugin_params::plugin_descriptor(plugin::Kind::kTrigger, std::move(name), kTriggerVersion,
                                          std::move(summary), std::move(params));
}

template <class T>
class TriggerPluginFor final : public plugin::TriggerPlugin {
 public:
  plugin::Descriptor describe() const override { return T::descriptor(); }

  std::unique_ptr<plugin::Trigger> create(const plugin::Params& params,
                                          const plugin::TriggerServices& services,
                                          std::string& error) override {
    return plugin_params::create_from_params(
        params, error, [&](plugin_params::ParamReader& in) -> std::unique_ptr<plugin::Trigger> {
          const auto settings = T::read_settings(in);
          if (!in.ok()) return nullptr;
          if constexpr (requires { T::make(settings, services, error); }) {
            return T::make(settings, services, error);
          } else {
            return std::make_unique<T>(settings);
          }
        });
  }
};

}  // namespace tv::triggers
