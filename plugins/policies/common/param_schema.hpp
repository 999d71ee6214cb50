// The parameter schema side of the policy plugins: builders for the ParamSpecs they declare and
// ParamReader, which reads the values the host hands to create().
//
// The host validates params against the schema and completes them with defaults, so a missing
// or mistyped key can only be a host bug. ParamReader reports it as create()'s error instead of
// falling back to a default, which would hide the bug and duplicate every default.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::policies {

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

// Every policy has it, with the same contract (see DecisionBuilder).
inline plugin::ParamSpec dry_run_param() {
  return flag_param("dry_run", false,
                    "compute and report decisions without acting: writes are marked 'dry run: ' "
                    "and the job is never stopped");
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

}  // namespace tv::policies
