#include "manifest_parts.hpp"

#include <algorithm>

#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/names.hpp"

namespace tv::fleet::manifest_parts {

using plugin::ParamSpec;
using plugin::ParamType;
using plugin::ParamValue;

namespace {

const std::vector<ParamSpec>& data_schema() {
  static const std::vector<ParamSpec> s = {
      {"max_train_samples", ParamType::kInt64, std::int64_t{0}, 0.0, {}, {}, "0: all"},
      {"max_val_samples", ParamType::kInt64, std::int64_t{0}, 0.0, {}, {}, "0: all"}};
  return s;
}

}  // namespace

std::string type_of(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a bool";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    default:
      return "a date or time";
  }
}

// A TOML value as a ParamValue, or nullopt for tables, arrays and dates.
std::optional<ParamValue> scalar(const toml::node& n) {
  if (auto v = n.value_exact<std::int64_t>()) return ParamValue(*v);
  if (auto v = n.value_exact<double>()) return ParamValue(*v);
  if (auto v = n.value_exact<bool>()) return ParamValue(*v);
  if (auto v = n.value_exact<std::string>()) return ParamValue(*v);
  return std::nullopt;
}

// Checks `given` (with each value's position) against a schema, with resolve_params' words as
// positioned diagnostics. Returns the values as given, normalised to their declared types.
plugin::Params check_params(Checker& c, const std::vector<ParamSpec>& schema,
                            const toml::table& table, const std::string& what,
                            const std::set<std::string>& skip) {
  plugin::Params out;
  std::vector<std::string> keys;
  for (const auto& s : schema)
    keys.push_back(s.key);
  for (auto&& [k, node] : table) {
    const std::string key(k.str());
    if (skip.count(key)) continue;
    const auto spec = std::find_if(schema.begin(), schema.end(),
                                   [&](const ParamSpec& s) { return s.key == key; });
    if (spec == schema.end()) {
      const std::string close = did_you_mean(key, keys);
      c.error(k.source(), what + " has no parameter '" + key + "'" +
                              (close.empty() ? "" : " (did you mean '" + close + "'?)"));
      continue;
    }
    const auto v = scalar(node);
    if (!v) {
      c.error(node.source(), what + " parameter '" + key + "' expects " +
                                 std::string(param_type_name(spec->type)) + ", got " +
                                 type_of(node));
      continue;
    }
    const ParamValue value = as_declared_type(*spec, *v);
    if (const auto why = check_param_value(*spec, value)) {
      c.error(node.source(), what + " parameter '" + key + "': " + *why);
      continue;
    }
    out[key] = value;
  }
  return out;
}

// The hyper table: nested tables and "a/b" keys both name key paths.
void flatten(Checker& c, const toml::table& t, const std::string& prefix, const std::string& what,
             plugin::ConfigView& out) {
  std::vector<std::string> knob_keys;
  for (const auto& s : knobs::schema()) {
    if (s.key != knobs::kRevision) knob_keys.push_back(s.key);
  }
  for (auto&& [k, node] : t) {
    const std::string path =
        prefix.empty() ? std::string(k.str()) : prefix + "/" + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(c, *sub, path, what, out);
      continue;
    }
    const ParamSpec* spec = knobs::find(path);
    if (spec == nullptr || path == knobs::kRevision) {
      const std::string close = did_you_mean(path, knob_keys);
      c.error(k.source(), what + ": hyperparameter '" + path + "' is not a trainer knob" +
                              (close.empty() ? "" : " (did you mean '" + close + "'?)"));
      continue;
    }
    const auto v = scalar(node);
    if (!v) {
      c.error(node.source(), what + ": hyperparameter '" + path + "' expects " +
                                 std::string(param_type_name(spec->type)) + ", got " +
                                 type_of(node));
      continue;
    }
    const ParamValue value = as_declared_type(*spec, *v);
    if (const auto why = check_param_value(*spec, value)) {
      c.error(node.source(), what + ": hyperparameter '" + path + "': " + *why);
      continue;
    }
    out[path] = value;
  }
}

std::vector<std::string> get_strings(Checker& c, const toml::table& t, std::string_view key,
                                     const std::string& what) {
  std::vector<std::string> out;
  const toml::node* n = t.get(key);
  if (n == nullptr) return out;
  const toml::array* a = n->as_array();
  if (a == nullptr) {
    c.error(n->source(),
            what + ": '" + std::string(key) + "' must be an array of strings, got " + type_of(*n));
    return out;
  }
  for (const toml::node& e : *a) {
    if (auto s = e.value_exact<std::string>()) {
      out.push_back(*s);
    } else {
      c.error(e.source(),
              what + ": '" + std::string(key) + "' must hold strings, got " + type_of(e));
    }
  }
  return out;
}

void reject_unknown(Checker& c, const toml::table& t, const std::vector<std::string>& known,
                    const std::string& what) {
  for (auto&& [k, node] : t) {
    const std::string key(k.str());
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    const std::string close = did_you_mean(key, known);
    c.error(k.source(), what + " has no key '" + key + "'" +
                            (close.empty() ? "" : " (did you mean '" + close + "'?)"));
  }
}

const std::string kHostNameRule =
    "invalid host name (letters, digits, '.', '_', '-'; not starting with '.' or '-'; at most " +
    std::to_string(kMaxHostNameBytes) + ")";

// A job's mode, seed, max_attempts and priority.
void parse_job_settings(Checker& c, const toml::table& t, const std::string& what, JobSpec& job) {
  job.mode = get<std::string>(c, t, "mode", what, "a string").value_or("train");
  if (job.mode != "train") {
    c.error(t.get("mode")->source(),
            what + ": mode '" + job.mode + "' is not supported (modes: train)");
  }
  const auto seed = get<std::int64_t>(c, t, "seed", what, "an integer").value_or(0);
  if (seed < 0) c.error(t.get("seed")->source(), what + ": seed must not be negative");
  job.seed = static_cast<std::uint64_t>(std::max<std::int64_t>(seed, 0));
  job.max_attempts = get<std::int64_t>(c, t, "max_attempts", what, "an integer").value_or(3);
  if (job.max_attempts < 1 || job.max_attempts > 100) {
    c.error(t.get("max_attempts")->source(), what + ": max_attempts must be in 1..100");
  }
  job.priority = get<std::int64_t>(c, t, "priority", what, "an integer").value_or(0);
}

JobConstraints parse_constraints(Checker& c, const toml::table& t, const std::string& what) {
  JobConstraints out;
  out.require_cuda = get<bool>(c, t, "require_cuda", what, "a bool").value_or(false);
  out.prefer_cuda = get<bool>(c, t, "prefer_cuda", what, "a bool").value_or(false);
  for (auto [k, field] : {std::pair{"min_vram_gib", &JobConstraints::min_vram_gib},
                          std::pair{"min_ram_gib", &JobConstraints::min_ram_gib}}) {
    out.*field = get<double>(c, t, k, what, "a number").value_or(0);
    if (out.*field < 0) c.error(t.get(k)->source(), what + ": " + k + " must not be negative");
  }
  out.allowed_hosts = get_strings(c, t, "allowed_hosts", what);
  if (const toml::array* hosts = t.get_as<toml::array>("allowed_hosts")) {
    for (const toml::node& h : *hosts) {
      const auto name = h.value_exact<std::string>();
      if (!name) continue;  // get_strings said so
      if (valid_host_name(*name)) {
        c.reference_host(h.source(), *name, what);
      } else {
        c.error(h.source(), what + ": allowed_hosts: '" + *name + "': " + kHostNameRule);
      }
    }
  }
  return out;
}

// The job's model and its [jobs.params], checked against the model plugin's schema.
void parse_model(Checker& c, const toml::table& t, const std::string& what,
                 const PluginRegistry& plugins, JobSpec& job) {
  const toml::node* model_node = t.get("model");
  const auto model = get<std::string>(c, t, "model", what, "a string");
  if (!model) {
    if (model_node == nullptr)
      c.error(t.source(), what + " has no 'model' (or 'trainer', a command to run)");
    return;
  }
  job.model = *model;
  const plugin::ModelPlugin* mp = nullptr;
  try {
    mp = &plugins.model(job.model);
  } catch (const std::runtime_error& e) {
    c.error(model_node->source(), what + ": " + e.what());
  }
  if (const toml::node* params = t.get("params")) {
    if (const toml::table* pt = params->as_table(); pt && mp) {
      job.model_params =
          check_params(c, mp->describe().params, *pt, what + ": model '" + job.model + "'");
    } else if (!pt) {
      c.error(params->source(), what + ": 'params' must be a table");
    }
  }
}

// [jobs.data] (the split recipe) and [jobs.hyper] (the initial config tree).
void parse_data_and_hyper(Checker& c, const toml::table& t, const std::string& what, JobSpec& job) {
  if (const toml::node* data = t.get("data")) {
    if (const toml::table* dt = data->as_table()) {
      const plugin::Params d = check_params(c, data_schema(), *dt, what + ": data");
      if (d.count("max_train_samples"))
        job.data.max_train_samples = std::get<std::int64_t>(d.at("max_train_samples"));
      if (d.count("max_val_samples"))
        job.data.max_val_samples = std::get<std::int64_t>(d.at("max_val_samples"));
    } else {
      c.error(data->source(), what + ": 'data' must be a table");
    }
  }
  if (const toml::node* hyper = t.get("hyper")) {
    if (const toml::table* ht = hyper->as_table()) {
      flatten(c, *ht, "", what, job.hyper);
    } else {
      c.error(hyper->source(), what + ": 'hyper' must be a table");
    }
  }
}

// [[jobs.policies]], each checked against its policy plugin's schema.
void parse_policies(Checker& c, const toml::table& t, const std::string& what,
                    const PluginRegistry& plugins, JobSpec& job) {
  const toml::node* pol = t.get("policies");
  if (pol == nullptr) return;
  const toml::array* pa = pol->as_array();
  if (pa == nullptr) {
    c.error(pol->source(), what + ": 'policies' must be an array of [[jobs.policies]] tables");
    return;
  }
  for (const toml::node& pn : *pa) {
    const toml::table* pt = pn.as_table();
    const toml::node* pname = pt ? pt->get("name") : nullptr;
    const auto name_v = pname ? pname->value_exact<std::string>() : std::nullopt;
    if (!name_v) {
      c.error(pn.source(), what + ": each policy needs a 'name' string");
      continue;
    }
    try {
      const plugin::PolicyPlugin& pp = plugins.policy(*name_v);
      // human_grace_evals/steps are the supervisor's keys, kept in params for the host to take
      // out (supervisor.hpp): the plugin never sees them.
      std::vector<ParamSpec> schema = pp.describe().params;
      for (ParamSpec& g : human_grace_params())
        schema.push_back(std::move(g));
      const plugin::Params params =
          check_params(c, schema, *pt, what + ": policy '" + *name_v + "'", {"name"});
      job.policies.push_back({*name_v, params});
    } catch (const std::runtime_error& e) {
      c.error(pname->source(), what + ": " + e.what());
    }
  }
}

}  // namespace tv::fleet::manifest_parts
