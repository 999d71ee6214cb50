#include "trainvisor/core/trigger_services.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "trainvisor/core/param_schema.hpp"

namespace tv {
using namespace tv::plugin;

namespace {

template <class Number>
std::optional<Number> number_from_text(std::string_view text) {
  Number value{};
  const char* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, value);
  if (result.ec != std::errc() || result.ptr != end) return std::nullopt;
  return value;
}

std::string trigger_what(const std::string& plugin) {
  return "trigger '" + plugin + "'";
}

}  // namespace

std::optional<ParamValue> param_value_from_text(const ParamSpec& spec, std::string_view text) {
  switch (spec.type) {
    case ParamType::kInt64:
      if (const auto v = number_from_text<std::int64_t>(text)) return *v;
      return std::nullopt;
    case ParamType::kFloat64:
      if (const auto v = number_from_text<double>(text)) return *v;
      return std::nullopt;
    case ParamType::kBool:
      if (text == "true") return true;
      if (text == "false") return false;
      return std::nullopt;
    case ParamType::kString:
      return std::string(text);
  }
  return std::nullopt;
}

std::unique_ptr<Trigger> HostTriggerServices::create_trigger(
    const std::string& plugin, const std::map<std::string, std::string>& params,
    std::string& error) const {
  const LoadedPlugin* loaded = registry_.find(plugin);
  if (loaded == nullptr || loaded->descriptor.kind != Kind::kTrigger) {
    return create_typed(plugin, {}, error);  // the registry's message, with what is loaded
  }
  const std::vector<ParamSpec>& schema = loaded->descriptor.params;
  Params typed;
  for (const auto& entry : params) {
    // Named, not a structured binding: clang 14 (the fuzz build) captures none in a lambda.
    const std::string& key = entry.first;
    const std::string& text = entry.second;
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&](const ParamSpec& p) { return p.key == key; });
    if (spec == schema.end()) {
      typed[key] = text;  // resolve_params names the unknown key, with a did-you-mean
      continue;
    }
    auto value = param_value_from_text(*spec, text);
    if (!value) {
      error = trigger_what(plugin) + " parameter '" + key + "': \"" + text + "\" is not " +
              (spec->type == ParamType::kInt64 ? "an " : "a ") +
              std::string(param_type_name(spec->type)) +
              (spec->type == ParamType::kBool ? " (true or false)" : "");
      return nullptr;
    }
    typed[key] = std::move(*value);
  }
  return create_typed(plugin, typed, error);
}

std::unique_ptr<Trigger> HostTriggerServices::create_typed(const std::string& plugin,
                                                           const Params& params,
                                                           std::string& error) const {
  TriggerPlugin* trigger_plugin = nullptr;
  Params resolved;
  try {
    trigger_plugin = &registry_.trigger(plugin);
    resolved =
        resolve_params(registry_.find(plugin)->descriptor.params, params, trigger_what(plugin));
  } catch (const std::exception& e) {
    error = e.what();
    return nullptr;
  }
  std::string plugin_error;
  auto trigger = trigger_plugin->create(resolved, *this, plugin_error);
  if (!trigger) {
    error = trigger_what(plugin) + ": " +
            (plugin_error.empty() ? std::string("create() returned no trigger and no reason")
                                  : plugin_error);
  }
  return trigger;
}

}  // namespace tv
