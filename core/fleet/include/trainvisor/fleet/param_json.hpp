// The one JSON form of a parameter or config value, shared by the HTTP API, the job queue's
// columns and the config hub's log: each ParamValue keeps its alternative. An int64 is a JSON
// integer, a double a JSON number with a fraction or exponent (nlohmann writes 1.0, not 1), and a
// non-finite double, which JSON cannot spell, is {"$float": "nan" | "inf" | "-inf"}.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "trainvisor/plugin.hpp"

namespace tv::fleet {

inline nlohmann::json param_value_json(const plugin::ParamValue& value) {
  return std::visit(
      [](const auto& v) -> nlohmann::json {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, double>) {
          if (std::isnan(v)) return {{"$float", "nan"}};
          if (std::isinf(v)) return {{"$float", v > 0 ? "inf" : "-inf"}};
        }
        return nlohmann::json(v);
      },
      value);
}

// Throws std::invalid_argument naming `key` for a value of no ParamValue alternative.
inline plugin::ParamValue param_value_from_json(const nlohmann::json& j, const std::string& key) {
  // is_number_integer covers nlohmann's unsigned kind too: it parses every non-negative integer
  // as unsigned.
  if (j.is_number_integer()) {
    if (j.is_number_unsigned() &&
        j.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
      throw std::invalid_argument("'" + key + "' is out of the int64 range");
    }
    return j.get<std::int64_t>();
  }
  if (j.is_number_float()) return j.get<double>();
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.size() == 1 && j.contains("$float")) {
    const auto& tag = j.at("$float");
    if (tag == "nan") return std::numeric_limits<double>::quiet_NaN();
    if (tag == "inf") return std::numeric_limits<double>::infinity();
    if (tag == "-inf") return -std::numeric_limits<double>::infinity();
  }
  throw std::invalid_argument("'" + key + "' is not a number, bool or string: " + j.dump());
}

template <class Map>
nlohmann::json params_json(const Map& params) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : params)
    j[k] = param_value_json(v);
  return j;
}

// Throws std::invalid_argument for a non-object or a value of no ParamValue alternative.
template <class Map = plugin::Params>
Map params_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("expected an object of key -> value");
  Map out;
  for (const auto& [k, v] : j.items())
    out[k] = param_value_from_json(v, k);
  return out;
}

}  // namespace tv::fleet
