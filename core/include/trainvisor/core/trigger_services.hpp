// The host side of plugin::TriggerServices: creates triggers from the loaded trigger plugins,
// with parameters checked against each plugin's schema (as text, the way an ensemble's members
// and a manifest give them, or as typed values), and hands every trigger the host's drift
// statistics.
//
// Thread-safety: const after construction; the registry and the statistics must outlive it, and
// it must outlive every trigger it creates (an ensemble keeps using it to hold its members).
// Errors: values, as across the plugin boundary: null with `error` naming the plugin, the
// parameter and the reason.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/plugin.hpp"

namespace tv {

class HostTriggerServices final : public plugin::TriggerServices {
 public:
  HostTriggerServices(const PluginRegistry& registry, const plugin::DriftStatistics& drift)
      : registry_(registry), drift_(drift) {}

  const plugin::DriftStatistics& drift() const override { return drift_; }

  // `params` as text: each value is converted to the type its key declares in the plugin's
  // schema (int64, float64, bool as true/false, string as it is), then checked as create_typed
  // checks it. An unknown plugin: the error lists the loaded trigger plugins.
  std::unique_ptr<plugin::Trigger> create_trigger(const std::string& plugin,
                                                  const std::map<std::string, std::string>& params,
                                                  std::string& error) const override;

  // `params` typed: checked against the plugin's schema (an int64 is accepted for a float64)
  // and completed with its defaults, then handed to the plugin's create().
  std::unique_ptr<plugin::Trigger> create_typed(const std::string& plugin,
                                                const plugin::Params& params,
                                                std::string& error) const;

 private:
  const PluginRegistry& registry_;
  const plugin::DriftStatistics& drift_;
};

// `text` as a value of `spec`'s type; nothing when it is not one ("1h" for an int64, "yes" for
// a bool). Ranges and allowed values are not checked here (check_param_value does).
std::optional<plugin::ParamValue> param_value_from_text(const plugin::ParamSpec& spec,
                                                        std::string_view text);

}  // namespace tv
