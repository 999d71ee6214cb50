// The parameter schema side of every plugin kind without libtorch (policies, triggers): builders
// for the ParamSpecs and the Descriptor they declare, ParamReader, which reads the values the
// host hands to create(), and create_from_params, which keeps every exception inside the plugin.
// Header-only: plugins link nothing of ours.
//
// The host validates params against the schema and completes them with defaults, so a missing
// or mistyped key can only be a host bug. ParamReader reports it as create()'s error instead of
// falling back to a default, which would hide the bug and duplicate every default.
#pragma once

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::plugin_params {

inline plugin::ParamSpec number_param(std::string key, double default_value, double min, double max,
                                      std::string help) {
  plugin::ParamSpec spec;
  spec.key = std::move(key);
  spec.type = plugin::ParamType::kFloat64;
  spec.default_value = default_value;
  spec.min = min;
  spec.max = max;
  spec.help = std::move(help);
  return spec;
}

inline plugin::ParamSpec integer_param(std::string key, std::int64_t default_value,
                                       std::int64_t min, std::int64_t max, std::string help) {
  plugin::ParamSpec spec;
  spec.key = std::move(key);
  spec.type = plugin::ParamType::kInt64;
  spec.default_value = default_value;
  spec.min = static_cast<double>(min);
  spec.max = static_cast<double>(max);
  spec.help = std::move(help);
  return spec;
}

inline plugin::ParamSpec flag_param(std::string key, bool default_value, std::string help) {
  plugin::ParamSpec spec;
  spec.key = std::move(key);
  spec.type = plugin::ParamType::kBool;
  spec.default_value = default_value;
  spec.help = std::move(help);
  return spec;
}

inline plugin::ParamSpec choice_param(std::string key, std::string default_value,
                                      std::vector<std::string> allowed, std::string help) {
  plugin::ParamSpec spec;
  spec.key = std::move(key);
  spec.type = plugin::ParamType::kString;
  spec.default_value = std::move(default_value);
  spec.allowed = std::move(allowed);
  spec.help = std::move(help);
  return spec;
}

inline plugin::ParamSpec text_param(std::string key, std::string default_value, std::string help) {
  plugin::ParamSpec spec;
  spec.key = std::move(key);
  spec.type = plugin::ParamType::kString;
  spec.default_value = std::move(default_value);
  spec.help = std::move(help);
  return spec;
}

class ParamReader {
 public:
  explicit ParamReader(const plugin::Params& params) : params_(params) {}

  double number(const std::string& key) { return read<double>(key, "float64"); }
  std::int64_t integer(const std::string& key) { return read<std::int64_t>(key, "int64"); }
  bool flag(const std::string& key) { return read<bool>(key, "bool"); }
  std::string text(const std::string& key) { return read<std::string>(key, "string"); }

  // For checks the schema cannot express (open intervals, unknown choices). Keeps the first
  // problem: later ones are usually its consequences.
  void refuse(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  template <class T>
  T read(const std::string& key, const char* type_name) {
    const auto it = params_.find(key);
    if (it == params_.end()) {
      refuse("parameter '" + key + "' is missing");
      return T{};
    }
    if (const T* value = std::get_if<T>(&it->second)) return *value;
    refuse("parameter '" + key + "' is not a " + type_name);
    return T{};
  }

  const plugin::Params& params_;
  std::string error_;
};

inline plugin::Descriptor plugin_descriptor(plugin::Kind kind, std::string name,
                                            std::string version, std::string summary,
                                            std::vector<plugin::ParamSpec> params) {
  plugin::Descriptor descriptor;
  descriptor.kind = kind;
  descriptor.name = std::move(name);
  descriptor.version = std::move(version);
  descriptor.summary = std::move(summary);
  descriptor.params = std::move(params);
  return descriptor;
}

// What a create() returns: make(reader) over `params`, which reads its settings, refuses bad
// values through the reader (or sets `error` and returns null) and builds the object. A refused
// parameter or anything thrown becomes `error` and a null result: no exception leaves a plugin.
template <class Make>
auto create_from_params(const plugin::Params& params, std::string& error, Make make)
    -> decltype(make(std::declval<ParamReader&>())) {
  try {
    ParamReader in(params);
    auto made = make(in);
    if (in.ok()) return made;
    error = in.error();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "creating the plugin's object threw a non-standard exception";
  }
  return nullptr;
}

}  // namespace tv::plugin_params
