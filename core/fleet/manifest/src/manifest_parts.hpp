// The pieces a manifest's [[jobs]] and [[pipelines]] tables share: positioned diagnostics, typed
// reads of TOML values, parameter tables checked against a plugin's schema, the hyper table, and
// a job's settings, constraints, model and policies. Private to tv_manifest.
#pragma once

#include <toml++/toml.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/fleet/pipeline_spec.hpp"

namespace tv {
class HostTriggerServices;
}

namespace tv::fleet::manifest_parts {

// Collects diagnostics with their source positions.
class Checker {
 public:
  explicit Checker(std::string_view path) : path_(path) {}

  void error(const toml::source_region& where, const std::string& what) {
    std::ostringstream s;
    s << path_ << ":" << where.begin.line << ":" << where.begin.column << ": " << what;
    diagnostics_.push_back(s.str());
  }
  bool ok() const { return diagnostics_.empty(); }
  std::vector<std::string>& diagnostics() { return diagnostics_; }

  // A host a job names (allowed_hosts), for manifest_warnings.
  void reference_host(const toml::source_region& where, const std::string& host,
                      const std::string& what) {
    std::ostringstream s;
    s << path_ << ":" << where.begin.line << ":" << where.begin.column;
    host_references_.push_back({host, what, s.str()});
  }
  std::vector<HostReference>& host_references() { return host_references_; }

 private:
  std::string path_;
  std::vector<std::string> diagnostics_;
  std::vector<HostReference> host_references_;
};

// "an integer", "a table", ... for diagnostics.
std::string type_of(const toml::node& n);

// `key` of `t` as a T (a finite number for double), nothing when absent; a diagnostic when it
// is of another type.
template <class T>
std::optional<T> get(Checker& c, const toml::table& t, std::string_view key,
                     const std::string& what, const char* expected) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return std::nullopt;
  if constexpr (std::is_same_v<T, double>) {
    if (auto i = n->value_exact<std::int64_t>()) return static_cast<double>(*i);
    if (auto v = n->value_exact<double>()) {
      if (std::isfinite(*v)) return *v;
      c.error(n->source(), what + ": '" + std::string(key) + "' must be a finite number, got " +
                               (std::isnan(*v) ? "nan" : "inf"));
      return std::nullopt;
    }
  } else if (auto v = n->value_exact<T>()) {
    return *v;
  }
  c.error(n->source(),
          what + ": '" + std::string(key) + "' must be " + expected + ", got " + type_of(*n));
  return std::nullopt;
}

// A TOML value as a ParamValue, or nothing for tables, arrays and dates.
std::optional<plugin::ParamValue> scalar(const toml::node& n);
// Checks `table` (each value with its position) against a schema; returns the values, normalised
// to their declared types. Keys in `skip` are left to the caller.
plugin::Params check_params(Checker& c, const std::vector<plugin::ParamSpec>& schema,
                            const toml::table& table, const std::string& what,
                            const std::set<std::string>& skip = {});
// A hyper table (nested tables and "a/b" keys both name key paths), checked against the
// trainer's knob schema, into `out`.
void flatten(Checker& c, const toml::table& t, const std::string& prefix, const std::string& what,
             plugin::ConfigView& out);
std::vector<std::string> get_strings(Checker& c, const toml::table& t, std::string_view key,
                                     const std::string& what);
// Every key of `t` not in `known` is an error, with the closest known key as a suggestion.
void reject_unknown(Checker& c, const toml::table& t, const std::vector<std::string>& known,
                    const std::string& what);

extern const std::string kHostNameRule;

// The job parts: mode, seed, max_attempts, priority; constraints; the model and its params; the
// data recipe and the hyper table; the policies.
void parse_job_settings(Checker& c, const toml::table& t, const std::string& what, JobSpec& job);
JobConstraints parse_constraints(Checker& c, const toml::table& t, const std::string& what);
void parse_model(Checker& c, const toml::table& t, const std::string& what,
                 const PluginRegistry& plugins, JobSpec& job);
// A command job's trainer, workdir and host_workdir (command_manifest.cpp); a shipped workdir,
// relative to `manifest_dir`, is packed into `shipped` once per folder.
void parse_command(Checker& c, const toml::table& t, const std::string& what,
                   const std::filesystem::path& manifest_dir, JobSpec& job,
                   std::vector<Manifest::ShippedFolder>& shipped);
void parse_data_and_hyper(Checker& c, const toml::table& t, const std::string& what, JobSpec& job);
void parse_policies(Checker& c, const toml::table& t, const std::string& what,
                    const PluginRegistry& plugins, JobSpec& job);

// The [[pipelines]] array (pipeline_manifest.cpp). With `services`, each trigger is made once.
std::vector<PipelineSpec> parse_pipelines(Checker& c, const toml::table& root,
                                          const PluginRegistry& plugins,
                                          const HostTriggerServices* services);

}  // namespace tv::fleet::manifest_parts
