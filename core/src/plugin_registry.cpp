#include "trainvisor/core/plugin_registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <charconv>
#include <cmath>
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

bool value_has_type(const ParamValue& v, ParamType t) {
  switch (t) {
    case ParamType::kFloat64:
      return std::holds_alternative<double>(v);
    case ParamType::kInt64:
      return std::holds_alternative<std::int64_t>(v);
    case ParamType::kBool:
      return std::holds_alternative<bool>(v);
    case ParamType::kString:
      return std::holds_alternative<std::string>(v);
  }
  return false;
}

std::optional<double> as_number(const ParamValue& v) {
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  return std::nullopt;
}

std::string number_text(double d) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  return std::string(buf, r.ptr);
}

// Why `v` does not satisfy `spec`, or "" when it does.
std::string check_value(const ParamSpec& spec, const ParamValue& v) {
  if (!value_has_type(v, spec.type)) {
    return "expects " + std::string(param_type_name(spec.type)) + ", got " + param_value_text(v);
  }
  if (const auto n = as_number(v)) {
    if (!std::isfinite(*n)) return "must be a finite number, got " + param_value_text(v);
    if (spec.min && *n < *spec.min) {
      return param_value_text(v) + " is below the minimum " + number_text(*spec.min);
    }
    if (spec.max && *n > *spec.max) {
      return param_value_text(v) + " is above the maximum " + number_text(*spec.max);
    }
  }
  if (const auto* s = std::get_if<std::string>(&v); s && !spec.allowed.empty()) {
    if (std::find(spec.allowed.begin(), spec.allowed.end(), *s) == spec.allowed.end()) {
      std::string list;
      for (const auto& a : spec.allowed)
        list += (list.empty() ? "" : ", ") + a;
      return "\"" + *s + "\" is not one of: " + list;
    }
  }
  return {};
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string_view kind_name(Kind kind) noexcept {
  switch (kind) {
    case Kind::kModel:
      return "model";
    case Kind::kPolicy:
      return "policy";
    case Kind::kTrigger:
      return "trigger";
  }
  return "unknown";
}

std::string_view param_type_name(ParamType type) noexcept {
  switch (type) {
    case ParamType::kFloat64:
      return "float64";
    case ParamType::kInt64:
      return "int64";
    case ParamType::kBool:
      return "bool";
    case ParamType::kString:
      return "string";
  }
  return "unknown";
}

std::string param_value_text(const ParamValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>) {
          return number_text(x);
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(x);
        } else if constexpr (std::is_same_v<T, bool>) {
          return x ? "true" : "false";
        } else {
          return "\"" + x + "\"";
        }
      },
      v);
}

std::string check_param_value(const ParamSpec& spec, const ParamValue& value) {
  return check_value(spec, value);
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = std::max<std::size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(word, c);
    // A candidate that contains the word (or the reverse) is close whatever its length: "lr" in
    // "learning_rate" is not, "learning" in "learning_rate" is.
    if (word.size() >= 4 &&
        (c.find(word) != std::string::npos || word.find(c) != std::string::npos)) {
      d = std::min<std::size_t>(d, 1);
    }
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::string validate_descriptor(const Descriptor& d) {
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
    if (const std::string why = check_value(p, p.default_value); !why.empty()) {
      return where + ": invalid default: " + why;
    }
  }
  return {};
}

Params resolve_params(const std::vector<ParamSpec>& schema, const Params& given,
                      std::string_view what) {
  Params out;
  std::vector<std::string> keys;
  for (const ParamSpec& p : schema)
    keys.push_back(p.key);
  for (const auto& [key, value] : given) {
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&](const ParamSpec& p) { return p.key == key; });
    if (spec == schema.end()) {
      const std::string close = did_you_mean(key, keys);
      throw std::invalid_argument(std::string(what) + " has no parameter '" + key + "'" +
                                  (close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
    ParamValue v = value;
    if (spec->type == ParamType::kFloat64) {
      if (const auto* i = std::get_if<std::int64_t>(&value)) v = static_cast<double>(*i);
    }
    if (const std::string why = check_value(*spec, v); !why.empty()) {
      throw std::invalid_argument(std::string(what) + " parameter '" + key + "': " + why);
    }
    out[key] = std::move(v);
  }
  for (const ParamSpec& p : schema)
    out.try_emplace(p.key, p.default_value);
  return out;
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
  Descriptor d;
  try {
    d = plugin->describe();
  } catch (const std::exception& e) {
    return refuse(std::string("describe() threw: ") + e.what());
  } catch (...) {
    return refuse("describe() threw a non-standard exception");
  }
  if (std::string why = validate_descriptor(d); !why.empty()) {
    return refuse("invalid descriptor: " + why);
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
