#include "plugins_command.hpp"

#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string_view>

#include "trainvisor/core/trainer_knobs.hpp"

namespace tv::cli {
namespace {

using nlohmann::json;

json value_json(const plugin::ParamValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

json param_json(const plugin::ParamSpec& p) {
  json j = {{"key", p.key},
            {"type", std::string(param_type_name(p.type))},
            {"default", value_json(p.default_value)},
            {"help", p.help}};
  if (p.min) j["min"] = *p.min;
  if (p.max) j["max"] = *p.max;
  if (!p.allowed.empty()) j["allowed"] = p.allowed;
  return j;
}

json plugin_json(const LoadedPlugin& p, bool with_params) {
  const plugin::Descriptor& d = p.descriptor;
  json j = {{"name", d.name},
            {"kind", std::string(kind_name(d.kind))},
            {"version", d.version},
            {"summary", d.summary},
            {"path", p.path}};
  if (with_params) {
    j["params"] = json::array();
    for (const auto& s : d.params)
      j["params"].push_back(param_json(s));
  }
  return j;
}

// A parameter's range: "[min, max]" and/or the allowed values; "" when unbounded.
std::string range_text(const plugin::ParamSpec& s) {
  std::string range;
  if (s.min || s.max) {
    range = "[" + (s.min ? param_value_text(*s.min) : std::string("-inf")) + ", " +
            (s.max ? param_value_text(*s.max) : std::string("inf")) + "]";
  }
  for (const auto& a : s.allowed)
    range += (range.empty() ? "" : "|") + a;
  return range;
}

// A table of parameters, the first column as wide as the longest key.
void print_params(const std::vector<plugin::ParamSpec>& params, const char* heading) {
  int width = static_cast<int>(std::string_view(heading).size());
  for (const auto& s : params)
    width = std::max(width, static_cast<int>(s.key.size()));
  std::printf("%-*s %-8s %-12s %-22s %s\n", width, heading, "TYPE", "DEFAULT", "RANGE", "HELP");
  for (const auto& s : params) {
    std::printf("%-*s %-8s %-12s %-22s %s\n", width, s.key.c_str(),
                std::string(param_type_name(s.type)).c_str(),
                param_value_text(s.default_value).c_str(), range_text(s).c_str(), s.help.c_str());
  }
}

}  // namespace

void add_plugin_dir_option(CLI::App& cmd, std::vector<std::string>& dirs) {
  cmd.add_option("--plugin-dir", dirs,
                 "Extra plugin directory, searched before the defaults (repeatable; also "
                 "TRAINVISOR_PLUGIN_PATH)");
}

PluginRegistry load_plugins(const std::vector<std::string>& extra_dirs) {
  std::vector<std::string> dirs = extra_dirs;
  for (auto& d : default_plugin_dirs())
    dirs.push_back(std::move(d));
  return PluginRegistry::load(dirs);
}

void add_plugins_commands(CLI::App& app) {
  CLI::App* plugins = app.add_subcommand("plugins", "Model, policy and trigger plugins");
  plugins->require_subcommand(1);
  auto dirs = std::make_shared<std::vector<std::string>>();
  auto output = std::make_shared<std::string>("text");
  auto name = std::make_shared<std::string>();

  CLI::App* list = plugins->add_subcommand("list", "Every loaded plugin, and every refused file");
  CLI::App* show = plugins->add_subcommand("show", "One plugin's descriptor and parameter schema");
  for (CLI::App* c : {list, show}) {
    add_plugin_dir_option(*c, *dirs);
    c->add_option("-o,--output", *output, "Output format")->check(CLI::IsMember({"text", "json"}));
  }
  show->add_option("NAME", *name, "Plugin name")->required();

  list->callback([dirs, output] {
    const PluginRegistry r = load_plugins(*dirs);
    if (*output == "json") {
      json j = {{"plugins", json::array()}, {"errors", json::array()}};
      for (const auto& p : r.plugins())
        j["plugins"].push_back(plugin_json(p, true));
      for (const auto& e : r.errors())
        j["errors"].push_back({{"path", e.path}, {"reason", e.reason}});
      std::cout << j.dump(2) << "\n";
      return;
    }
    std::printf("%-18s %-8s %-9s %s\n", "NAME", "KIND", "VERSION", "SUMMARY");
    for (const auto& p : r.plugins()) {
      const auto& d = p.descriptor;
      std::printf("%-18s %-8s %-9s %s\n", d.name.c_str(), std::string(kind_name(d.kind)).c_str(),
                  d.version.c_str(), d.summary.c_str());
    }
    if (!r.errors().empty()) {
      std::printf("\nrefused:\n");
      for (const auto& e : r.errors())
        std::printf("  %s\n", e.message().c_str());
    }
  });

  show->callback([dirs, output, name] {
    const PluginRegistry r = load_plugins(*dirs);
    const LoadedPlugin* p = r.find(*name);
    if (p == nullptr) {
      std::vector<std::string> names;
      for (const auto& q : r.plugins())
        names.push_back(q.descriptor.name);
      const std::string close = did_you_mean(*name, names);
      throw std::invalid_argument("no plugin named '" + *name + "'" +
                                  (close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
    if (*output == "json") {
      std::cout << plugin_json(*p, true).dump(2) << "\n";
      return;
    }
    const auto& d = p->descriptor;
    std::printf("%s %s (%s plugin)\n%s\nfile: %s\n\n", d.name.c_str(), d.version.c_str(),
                std::string(kind_name(d.kind)).c_str(), d.summary.c_str(), p->path.c_str());
    print_params(d.params, "PARAMETER");
  });

  CLI::App* knobs = plugins->add_subcommand(
      "knobs",
      "The trainer's live knobs (what config set, freeze and policies name): key, type, "
      "default, range, help");
  knobs->add_option("-o,--output", *output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));
  knobs->callback([output] {
    if (*output == "json") {
      json j = {{"knobs", json::array()}};
      for (const auto& s : knobs::schema())
        j["knobs"].push_back(param_json(s));
      std::cout << j.dump(2) << "\n";
      return;
    }
    print_params(knobs::schema(), "KNOB");
  });
}

}  // namespace tv::cli
