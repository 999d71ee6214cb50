#include "trainvisor/core/param_schema.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace tv {
using namespace tv::plugin;

namespace {

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

std::optional<std::string> check_param_value(const ParamSpec& spec, const ParamValue& v) {
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
  return std::nullopt;
}

ParamValue as_declared_type(const ParamSpec& spec, const ParamValue& value) {
  if (spec.type == ParamType::kFloat64) {
    if (const auto* i = std::get_if<std::int64_t>(&value)) return static_cast<double>(*i);
  }
  return value;
}

Params resolve_params(const std::vector<ParamSpec>& schema, const Params& given,
                      std::string_view what) {
  Params out;
  std::vector<std::string> keys;
  for (const ParamSpec& p : schema)
    keys.push_back(p.key);
  for (const auto& entry : given) {
    // Named, not a structured binding: a lambda captures a binding only from C++20 compilers
    // newer than clang 14, which builds the fuzz targets.
    const std::string& key = entry.first;
    const auto& value = entry.second;
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&](const ParamSpec& p) { return p.key == key; });
    if (spec == schema.end()) {
      const std::string close = did_you_mean(key, keys);
      throw std::invalid_argument(std::string(what) + " has no parameter '" + key + "'" +
                                  (close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
    ParamValue v = as_declared_type(*spec, value);
    if (const auto why = check_param_value(*spec, v)) {
      throw std::invalid_argument(std::string(what) + " parameter '" + key + "': " + *why);
    }
    out[key] = std::move(v);
  }
  for (const ParamSpec& p : schema)
    out.try_emplace(p.key, p.default_value);
  return out;
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

}  // namespace tv
