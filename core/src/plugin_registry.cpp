#include "trainvisor/core/plugin_registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>

namespace tv {
namespace fs = std::filesystem;
using namespace tv::plugin;

namespace {

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > 64) return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
}

bool valid_param_key(std::string_view k) {
  if (k.empty() || k.size() > 64) return false;
  return std::all_of(k.begin(), k.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  });
}

}  // namespace

std::optional<std::string> validate_descriptor(const Descriptor& d) {
  if (!valid_name(d.name)) {
    return "invalid plugin name '" + d.name + "' (1-64 of a-z, 0-9, '_', '-')";
  }
  if (d.version.empty()) return "plugin '" + d.name + "' has no version";
  if (d.kind != Kind::kModel && d.kind != Kind::kPolicy && d.kind != Kind::kTrigger) {
    return "plugin '" + d.name + "' has unknown kind " +
           std::to_string(static_cast<std::uint32_t>(d.kind));
  }
  std::set<std::string> keys;
  for (const ParamSpec& p : d.params) {
    const std::string where = "plugin '" + d.name + "' parameter '" + p.key + "'";
    if (!valid_param_key(p.key)) return where + ": invalid key (1-64 of a-z, 0-9, '_')";
    if (!keys.insert(p.key).second) return where + ": declared twice";
    if (p.min && p.max && *p.min > *p.max) return where + ": min is above max";
    if ((p.min || p.max) && p.type != ParamType::kFloat64 && p.type != ParamType::kInt64) {
      return where + ": a range on a " + std::string(param_type_name(p.type)) + " parameter";
    }
    if (!p.allowed.empty() && p.type != ParamType::kString) {
      return where + ": allowed values on a " + std::string(param_type_name(p.type)) + " parameter";
    }
    if (const auto why = check_param_value(p, p.default_value)) {
      return where + ": invalid default: " + *why;
    }
  }
  return std::nullopt;
}

PluginRegistry PluginRegistry::load(const std::vector<std::string>& dirs) {
  PluginRegistry r;
  std::set<fs::path> seen;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    const fs::file_status status = fs::status(dir, ec);
    // Missing (ENOENT, or a component that is a file) is normal: most default folders are absent.
    if (status.type() == fs::file_type::not_found) continue;
    const auto unreadable = [&] {
      r.errors_.push_back({dir, "cannot read the plugin directory: " + ec.message()});
    };
    if (ec) {
      unreadable();
      continue;
    }
    if (!fs::is_directory(status)) {
      r.errors_.push_back({dir, "not a directory (a plugin path names folders of .so files)"});
      continue;
    }
    std::vector<fs::path> files;
    fs::directory_iterator it(dir, ec);
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      if (it->path().extension() == ".so") files.push_back(it->path());
    }
    if (ec) {
      unreadable();
      continue;
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      const fs::path canonical = fs::weakly_canonical(f, ec);
      if (!seen.insert(canonical).second) continue;  // the same file through two directories
      r.load_file(f.string());
    }
  }
  return r;
}

bool PluginRegistry::load_file(const std::string& path) {
  const auto refuse = [&](std::string reason) {
    errors_.push_back({path, std::move(reason)});
    return false;
  };
  // Never unloaded: every library ever loaded stays in this process-wide table (reachable, never
  // destroyed), and a library loaded again (a manifest reload) reuses its handle.
  static std::mutex libraries_mu;
  static auto* libraries = new std::map<std::string, boost::dll::shared_library>();
  boost::dll::shared_library* lib = nullptr;
  {
    std::lock_guard lock(libraries_mu);
    std::error_code ec;
    const std::string key = fs::weakly_canonical(path, ec).string();
    auto it = libraries->find(key);
    if (it == libraries->end()) {
      boost::dll::shared_library loaded;
      try {
        loaded.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
      } catch (const std::exception& e) {
        return refuse(std::string("not a loadable shared library: ") + e.what());
      }
      it = libraries->emplace(key, std::move(loaded)).first;
    }
    lib = &it->second;
  }
  if (!lib->has(kFactoryAlias)) {
    return refuse(std::string("no factory: the library does not export '") + kFactoryAlias +
                  "' (end the plugin with TRAINVISOR_PLUGIN(YourClass))");
  }
  FactoryCall call;
  call.host_abi_version = kAbiVersion;
  try {
    lib->get_alias<FactoryFn>(kFactoryAlias)(&call);
  } catch (const std::exception& e) {
    return refuse(std::string("factory threw: ") + e.what());
  } catch (...) {
    return refuse("factory threw a non-standard exception");
  }
  if (call.plugin_abi_version != kAbiVersion) {
    return refuse("built for plugin ABI version " + std::to_string(call.plugin_abi_version) +
                  "; this host speaks version " + std::to_string(kAbiVersion) +
                  " (rebuild the plugin against this trainvisor)");
  }
  std::shared_ptr<Plugin> plugin(call.plugin);
  if (!plugin) {
    call.error[sizeof call.error - 1] = '\0';
    return refuse(std::string("factory returned no plugin") +
                  (call.error[0] ? std::string(": ") + call.error : std::string()));
  }
  return add(path, std::move(plugin));
}

bool PluginRegistry::add(const std::string& path, std::shared_ptr<Plugin> plugin) {
  const auto refuse = [&](std::string reason) {
    errors_.push_back({path, std::move(reason)});
    return false;
  };
  Descriptor d;
  try {
    d = plugin->describe();
  } catch (const std::exception& e) {
    return refuse(std::string("describe() threw: ") + e.what());
  } catch (...) {
    return refuse("describe() threw a non-standard exception");
  }
  if (const auto why = validate_descriptor(d)) {
    return refuse("invalid descriptor: " + *why);
  }
  const bool kind_ok = (d.kind == Kind::kModel && dynamic_cast<ModelPlugin*>(plugin.get())) ||
                       (d.kind == Kind::kPolicy && dynamic_cast<PolicyPlugin*>(plugin.get())) ||
                       (d.kind == Kind::kTrigger && dynamic_cast<TriggerPlugin*>(plugin.get()));
  if (!kind_ok) {
    return refuse("plugin '" + d.name + "' declares kind " + std::string(kind_name(d.kind)) +
                  " but does not implement its interface");
  }
  if (const LoadedPlugin* other = find(d.name)) {
    return refuse("duplicate plugin name '" + d.name + "': already loaded from " + other->path);
  }
  plugins_.push_back({path, std::move(d), std::move(plugin)});
  return true;
}

const LoadedPlugin* PluginRegistry::find(std::string_view name) const noexcept {
  for (const LoadedPlugin& p : plugins_) {
    if (p.descriptor.name == name) return &p;
  }
  return nullptr;
}

const LoadedPlugin& PluginRegistry::require(Kind kind, std::string_view name) const {
  const LoadedPlugin* p = find(name);
  if (p != nullptr && p->descriptor.kind == kind) return *p;
  std::string msg =
      "no " + std::string(kind_name(kind)) + " plugin named '" + std::string(name) + "'";
  if (p != nullptr) {
    msg += " ('" + std::string(name) + "' is a " + std::string(kind_name(p->descriptor.kind)) +
           " plugin)";
  }
  std::vector<std::string> names;
  for (const LoadedPlugin& q : plugins_) {
    if (q.descriptor.kind == kind) names.push_back(q.descriptor.name);
  }
  if (const std::string close = did_you_mean(name, names); !close.empty()) {
    msg += " (did you mean '" + close + "'?)";
  }
  std::string list;
  for (const auto& n : names)
    list += (list.empty() ? "" : ", ") + n;
  msg += "; loaded: " + (list.empty() ? std::string("none") : list);
  for (const PluginLoadError& e : errors_) {
    if (fs::path(e.path).filename().string().find(std::string(name)) != std::string::npos) {
      msg += "; refused: " + e.message();
    }
  }
  throw std::runtime_error(msg);
}

ModelPlugin& PluginRegistry::model(std::string_view name) const {
  return dynamic_cast<ModelPlugin&>(*require(Kind::kModel, name).plugin);
}
PolicyPlugin& PluginRegistry::policy(std::string_view name) const {
  return dynamic_cast<PolicyPlugin&>(*require(Kind::kPolicy, name).plugin);
}
TriggerPlugin& PluginRegistry::trigger(std::string_view name) const {
  return dynamic_cast<TriggerPlugin&>(*require(Kind::kTrigger, name).plugin);
}

std::vector<std::string> default_plugin_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("TRAINVISOR_PLUGIN_PATH")) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const auto colon = rest.find(':');
      if (colon != 0) dirs.emplace_back(rest.substr(0, colon));
      if (colon == std::string_view::npos) break;
      rest = rest.substr(colon + 1);
    }
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path prefix = exe.parent_path().parent_path();
    dirs.push_back((prefix / "lib" / "trainvisor" / "plugins").string());
    dirs.push_back((prefix / "plugins").string());  // build tree: build/bin/ -> build/plugins/
  }
  return dirs;
}

}  // namespace tv
