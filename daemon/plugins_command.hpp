// `trainvisor plugins list|show`: what the plugin directories hold, and each plugin's schema.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "trainvisor/core/plugin_registry.hpp"

namespace tv::cli {

void add_plugins_commands(CLI::App& app);

// Adds the repeatable --plugin-dir option to `cmd`, storing into `dirs`.
void add_plugin_dir_option(CLI::App& cmd, std::vector<std::string>& dirs);

// Loads the plugins of `extra_dirs` (searched first) and of default_plugin_dirs().
PluginRegistry load_plugins(const std::vector<std::string>& extra_dirs);

}  // namespace tv::cli
