// Finds, loads and checks plugins (Boost.DLL), and resolves parameters against their schemas.
//
// PluginRegistry::load scans directories for *.so files and loads each one. A library is refused
// with a message naming the file and the reason when it is not a shared library, lacks the
// factory alias, speaks another plugin ABI version, its factory throws or returns nothing, its
// descriptor is invalid, or its name is already taken. One bad plugin never stops the others.
// Libraries are never unloaded: the registry leaks their handles on purpose (libtorch's static
// registrations crash at unload), so plugin objects outlive the registry safely.
//
// Thread-safety: load() builds a registry; afterwards it is read-only and may be shared.
// Errors: a refused library is a value (errors()), never an exception; asking for a plugin that
// is not there (model(), policy(), trigger()) throws. The parameter checks are in
// param_schema.hpp, included here for the registry's callers.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/plugin.hpp"

namespace tv {

struct LoadedPlugin {
  std::string path;
  plugin::Descriptor descriptor;
  std::shared_ptr<plugin::Plugin> plugin;
};

struct PluginLoadError {
  std::string path;
  std::string reason;
  std::string message() const { return path + ": " + reason; }
};

class PluginRegistry {
 public:
  // Loads every *.so directly in each directory (in name order). A directory that does not exist
  // is skipped; a path that is not a directory, or a directory that cannot be read (permissions, a
  // symlink loop), is an error naming the path. Nothing throws: failures land in errors().
  static PluginRegistry load(const std::vector<std::string>& dirs);

  // Adds one library; returns false and records the error when it is refused.
  bool load_file(const std::string& path);
  // Adds a plugin built into this process (a test, a fuzz target), checked as a library's is;
  // `path` names it in errors. Returns false and records the error when it is refused.
  bool add(const std::string& path, std::shared_ptr<plugin::Plugin> plugin);

  const std::vector<LoadedPlugin>& plugins() const noexcept { return plugins_; }
  const std::vector<PluginLoadError>& errors() const noexcept { return errors_; }
  const LoadedPlugin* find(std::string_view name) const noexcept;

  // The plugin of that kind and name. Throws std::runtime_error naming what was asked, what is
  // there (did-you-mean) and any load error for a file that might have been it.
  plugin::ModelPlugin& model(std::string_view name) const;
  plugin::PolicyPlugin& policy(std::string_view name) const;
  plugin::TriggerPlugin& trigger(std::string_view name) const;

 private:
  const LoadedPlugin& require(plugin::Kind kind, std::string_view name) const;

  std::vector<LoadedPlugin> plugins_;
  std::vector<PluginLoadError> errors_;
};

// The directories searched by default, in order: those in $TRAINVISOR_PLUGIN_PATH
// (':'-separated), the install's plugin folder (<prefix>/lib/trainvisor/plugins, next to the
// running binary), and the build's plugins/ folder next to the binary's bin/.
std::vector<std::string> default_plugin_dirs();

// Checks a descriptor: name, version, kind, and every ParamSpec (key, default of the declared
// type, min <= max, default in range, allowed values only for strings and containing the
// default). Nothing when valid, else the first problem.
std::optional<std::string> validate_descriptor(const plugin::Descriptor& d);

}  // namespace tv
