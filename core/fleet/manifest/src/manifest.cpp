#include "trainvisor/fleet/manifest.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/names.hpp"

namespace tv::fleet {
namespace {

using plugin::ParamSpec;
using plugin::ParamType;
using plugin::ParamValue;

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += (out.empty() ? "" : "\n") + l;
  return out;
}

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
                            const std::set<std::string>& skip = {}) {
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
void flatten(Checker& c, const toml::table& t, const std::string& prefix, const std::string& job,
             plugin::ConfigView& out) {
  std::vector<std::string> knob_keys;
  for (const auto& s : knobs::schema()) {
    if (s.key != knobs::kRevision) knob_keys.push_back(s.key);
  }
  for (auto&& [k, node] : t) {
    const std::string path =
        prefix.empty() ? std::string(k.str()) : prefix + "/" + std::string(k.str());
    if (const toml::table* sub = node.as_table()) {
      flatten(c, *sub, path, job, out);
      continue;
    }
    const ParamSpec* spec = knobs::find(path);
    if (spec == nullptr || path == knobs::kRevision) {
      const std::string close = did_you_mean(path, knob_keys);
      c.error(k.source(), "job '" + job + "': hyperparameter '" + path + "' is not a trainer knob" +
                              (close.empty() ? "" : " (did you mean '" + close + "'?)"));
      continue;
    }
    const auto v = scalar(node);
    if (!v) {
      c.error(node.source(), "job '" + job + "': hyperparameter '" + path + "' expects " +
                                 std::string(param_type_name(spec->type)) + ", got " +
                                 type_of(node));
      continue;
    }
    const ParamValue value = as_declared_type(*spec, *v);
    if (const auto why = check_param_value(*spec, value)) {
      c.error(node.source(), "job '" + job + "': hyperparameter '" + path + "': " + *why);
      continue;
    }
    out[path] = value;
  }
}

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

const std::vector<std::string> kJobKeys = {
    "name",          "model",        "mode",        "seed",         "max_attempts",
    "priority",      "require_cuda", "prefer_cuda", "min_vram_gib", "min_ram_gib",
    "allowed_hosts", "params",       "data",        "hyper",        "policies"};
const std::vector<std::string> kHostKeys = {"allow_jobs", "deny_jobs", "priority"};
const std::string kHostNameRule =
    "invalid host name (letters, digits, '.', '_', '-'; not starting with '.' or '-'; at most " +
    std::to_string(kMaxHostNameBytes) + ")";
const std::vector<ParamSpec>& data_schema() {
  static const std::vector<ParamSpec> s = {
      {"max_train_samples", ParamType::kInt64, std::int64_t{0}, 0.0, {}, {}, "0: all"},
      {"max_val_samples", ParamType::kInt64, std::int64_t{0}, 0.0, {}, {}, "0: all"}};
  return s;
}

nlohmann::json value_json(const ParamValue& v) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, v);
}

}  // namespace

ManifestError::ManifestError(std::vector<std::string> diagnostics)
    : std::runtime_error(join(diagnostics)), diagnostics_(std::move(diagnostics)) {}

std::string canonical_spec(const JobSpec& job) {
  nlohmann::json j = nlohmann::json::object();  // std::map underneath: keys in bytewise order
  auto hosts = job.constraints.allowed_hosts;
  std::sort(hosts.begin(), hosts.end());
  j["allowed_hosts"] = hosts;
  j["data"] = {{"max_train_samples", job.data.max_train_samples},
               {"max_val_samples", job.data.max_val_samples}};
  j["hyper"] = nlohmann::json::object();
  j["model_params"] = nlohmann::json::object();
  for (const auto& [k, v] : job.hyper)
    j["hyper"][k] = value_json(v);
  for (const auto& [k, v] : job.model_params)
    j["model_params"][k] = value_json(v);
  j["mode"] = job.mode;
  j["model"] = job.model;
  j["seed"] = job.seed;
  return j.dump();
}

namespace {

// [hosts.NAME] tables.
std::vector<HostPolicy> parse_hosts(Checker& c, const toml::table& root) {
  std::vector<HostPolicy> out;
  const toml::node* hosts = root.get("hosts");
  if (hosts == nullptr) return out;
  const toml::table* t = hosts->as_table();
  if (t == nullptr) {
    c.error(hosts->source(), "'hosts' must be a table of [hosts.NAME] tables");
    return out;
  }
  for (auto&& [k, node] : *t) {
    const std::string name(k.str());
    const std::string what = "host '" + name + "'";
    const toml::table* h = node.as_table();
    if (h == nullptr) {
      c.error(node.source(), what + " must be a table");
      continue;
    }
    if (!valid_host_name(name)) c.error(k.source(), what + ": " + kHostNameRule);
    reject_unknown(c, *h, kHostKeys, what);
    HostPolicy p;
    p.name = name;
    p.allow_jobs = get_strings(c, *h, "allow_jobs", what);
    p.deny_jobs = get_strings(c, *h, "deny_jobs", what);
    p.priority = get<std::int64_t>(c, *h, "priority", what, "an integer").value_or(0);
    out.push_back(std::move(p));
  }
  return out;
}

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
    if (model_node == nullptr) c.error(t.source(), what + " has no 'model'");
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
      flatten(c, *ht, "", job.name, job.hyper);
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

// One [[jobs]] table (the index-th, from 1); nothing when it has no usable name. `names` holds
// the names seen so far, to refuse a second job of one name.
std::optional<JobSpec> parse_job(Checker& c, const toml::table& t, std::size_t index,
                                 std::set<std::string>& names, const PluginRegistry& plugins) {
  JobSpec job;
  const auto name =
      get<std::string>(c, t, "name", "jobs[" + std::to_string(index) + "]", "a string");
  if (!name) {
    if (!t.contains("name"))
      c.error(t.source(), "jobs[" + std::to_string(index) + "] has no 'name'");
    return std::nullopt;
  }
  job.name = *name;
  const std::string what = "job '" + job.name + "'";
  if (!valid_name(job.name, kMaxJobNameBytes)) {
    c.error(t.get("name")->source(),
            what + ": invalid name (letters, digits, '.', '_', '-'; at most 100)");
  }
  if (!names.insert(job.name).second) c.error(t.get("name")->source(), what + " is defined twice");
  reject_unknown(c, t, kJobKeys, what);
  parse_job_settings(c, t, what, job);
  job.constraints = parse_constraints(c, t, what);
  parse_model(c, t, what, plugins, job);
  parse_data_and_hyper(c, t, what, job);
  parse_policies(c, t, what, plugins, job);
  job.canonical = canonical_spec(job);
  job.id = sha256_hex(job.canonical);
  return job;
}

// The [[jobs]] array. A 'jobs' that is not an array ends the parse at once.
std::vector<JobSpec> parse_jobs(Checker& c, const toml::table& root,
                                const PluginRegistry& plugins) {
  std::vector<JobSpec> out;
  const toml::node* jobs_node = root.get("jobs");
  if (jobs_node == nullptr) return out;
  const toml::array* jobs = jobs_node->as_array();
  if (jobs == nullptr) {
    c.error(jobs_node->source(), "'jobs' must be an array of [[jobs]] tables");
    throw ManifestError(c.diagnostics());
  }
  std::set<std::string> names;
  std::size_t index = 0;
  for (const toml::node& jn : *jobs) {
    ++index;
    const toml::table* t = jn.as_table();
    if (t == nullptr) {
      c.error(jn.source(), "jobs[" + std::to_string(index) + "] must be a table");
      continue;
    }
    if (auto job = parse_job(c, *t, index, names, plugins)) out.push_back(std::move(*job));
  }
  return out;
}

// Every allow_jobs / deny_jobs entry names a job or a model.
void check_host_lists(Checker& c, const toml::table& root, const Manifest& m,
                      const PluginRegistry& plugins) {
  for (const HostPolicy& h : m.hosts) {
    for (const auto* list : {&h.allow_jobs, &h.deny_jobs}) {
      for (const std::string& entry : *list) {
        const bool known =
            std::any_of(m.jobs.begin(), m.jobs.end(),
                        [&](const JobSpec& j) { return j.name == entry || j.model == entry; }) ||
            plugins.find(entry) != nullptr;
        if (!known) {
          const toml::node* node =
              root["hosts"][h.name][list == &h.allow_jobs ? "allow_jobs" : "deny_jobs"].node();
          c.error(node ? node->source() : root.source(),
                  "host '" + h.name + "': '" + entry + "' is neither a job nor a model");
        }
      }
    }
  }
}

// A lexical scan of the TOML text ahead of toml++, which builds one nested table per segment
// of a dotted key (a.b.c = 1, [a.b.c]) without a bound and walks and frees the tree
// recursively: a key of 100k segments overflows the stack. Counts nesting outside strings and
// comments: a dotted key's segments, plus one per open bracket (an array, an inline table, a
// table header) on top of the key it belongs to.
class NestingScan {
 public:
  NestingScan(std::string_view text, std::string_view path) : text_(text), path_(path) {}

  // Throws ManifestError at the first place nested deeper than kMaxManifestDepth.
  void run() {
    for (i_ = 0; i_ < text_.size(); ++i_) {
      const char ch = text_[i_];
      if (ch == '\n') {
        new_line(i_ + 1);
        end_chain();
        last_ = base();  // an array may span lines
      } else if (ch == '#') {
        const std::size_t eol = text_.find('\n', i_);
        i_ = (eol == std::string_view::npos ? text_.size() : eol) - 1;
      } else if (ch == '"' || ch == '\'') {
        const std::size_t start = i_;
        skip_string();
        segment(start);
      } else if (bare(ch)) {
        const std::size_t start = i_;
        while (i_ + 1 < text_.size() && bare(text_[i_ + 1]))
          ++i_;
        segment(start);
      } else if (ch == '.') {
        after_dot_ = segments_ > 0;
      } else if (ch != ' ' && ch != '\t' && ch != '\r') {
        end_chain();
        bracket(ch);
      }
    }
  }

 private:
  static bool bare(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '-';
  }

  std::size_t base() const { return open_.empty() ? 0 : open_.back(); }

  void new_line(std::size_t start) {
    ++line_;
    line_start_ = start;
  }

  void end_chain() {
    segments_ = 0;
    after_dot_ = false;
  }

  void segment(std::size_t at) {
    segments_ = after_dot_ ? segments_ + 1 : 1;
    after_dot_ = false;
    last_ = base() + segments_;
    check(last_, at);
  }

  void bracket(char ch) {
    if (ch == '[' || ch == '{') {
      open_.push_back(std::max(last_, base()) + 1);
      last_ = open_.back();
      check(last_, i_);
    } else if ((ch == ']' || ch == '}') && !open_.empty()) {
      open_.pop_back();
      last_ = base();
    }
  }

  void check(std::size_t depth, std::size_t at) const {
    if (depth <= kMaxManifestDepth) return;
    throw ManifestError({std::string(path_) + ":" + std::to_string(line_) + ":" +
                         std::to_string(at - line_start_ + 1) + ": nested deeper than " +
                         std::to_string(kMaxManifestDepth) +
                         " levels (dotted key segments, tables and arrays together): the "
                         "manifest's nesting limit is " +
                         std::to_string(kMaxManifestDepth)});
  }

  // From the opening quote at i_ to the closing one (i_ left on it); a one-line string also
  // ends before a newline.
  void skip_string() {
    const char q = text_[i_];
    const bool multi = text_.compare(i_, 3, std::string(3, q)) == 0;
    i_ += multi ? 3 : 1;
    for (; i_ < text_.size(); ++i_) {
      const char ch = text_[i_];
      if (ch == '\\' && q == '"') {
        if (i_ + 1 < text_.size() && text_[i_ + 1] == '\n') new_line(i_ + 2);
        ++i_;
      } else if (ch == '\n') {
        if (!multi) {
          --i_;
          return;
        }
        new_line(i_ + 1);
      } else if (ch == q && (!multi || text_.compare(i_, 3, std::string(3, q)) == 0)) {
        if (!multi) return;
        i_ += 2;
        while (i_ + 1 < text_.size() && text_[i_ + 1] == q)
          ++i_;  // up to two quotes may end the string's content
        return;
      }
    }
  }

  std::string_view text_;
  std::string_view path_;
  std::size_t i_ = 0;
  std::size_t line_ = 1;
  std::size_t line_start_ = 0;
  std::size_t segments_ = 0;  // of the dotted key being read
  bool after_dot_ = false;
  std::size_t last_ = 0;           // the depth of the last key or value read
  std::vector<std::size_t> open_;  // the depth of each open bracket
};

void check_size(std::size_t bytes, std::string_view path) {
  if (bytes <= kMaxManifestBytes) return;
  throw ManifestError({std::string(path) + ": the manifest is " + std::to_string(bytes) +
                       " bytes, over the limit of " + std::to_string(kMaxManifestBytes) +
                       " bytes"});
}

}  // namespace

std::vector<std::string> manifest_warnings(const Manifest& m,
                                           const std::set<std::string>& known_hosts) {
  std::vector<std::string> out;
  for (const HostReference& r : m.host_references) {
    const bool in_manifest = std::any_of(m.hosts.begin(), m.hosts.end(),
                                         [&](const HostPolicy& h) { return h.name == r.host; });
    if (in_manifest || known_hosts.count(r.host)) continue;
    out.push_back(r.where + ": warning: " + r.job + ": allowed_hosts names '" + r.host +
                  "', which is neither a [hosts." + r.host +
                  "] table nor a known worker: the job waits until a host of that name claims");
  }
  return out;
}

Manifest parse_manifest(std::string_view text, std::string_view path,
                        const PluginRegistry& plugins) {
  check_size(text.size(), path);
  NestingScan(text, path).run();
  Checker c(path);
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    c.error(e.source(), std::string(e.description()));
    throw ManifestError(c.diagnostics());
  }
  Manifest m;
  m.path = std::string(path);
  reject_unknown(c, root, {"hosts", "jobs"}, "the manifest");
  m.hosts = parse_hosts(c, root);
  m.jobs = parse_jobs(c, root, plugins);
  check_host_lists(c, root, m, plugins);
  if (!c.ok()) throw ManifestError(c.diagnostics());
  m.host_references = std::move(c.host_references());
  return m;
}

Manifest load_manifest(const std::string& path, const PluginRegistry& plugins) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ManifestError({path + ": cannot read the manifest"});
  std::string text(kMaxManifestBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxManifestBytes) {
    std::error_code ec;
    const auto bytes = std::filesystem::file_size(path, ec);
    check_size(ec ? text.size() : static_cast<std::size_t>(bytes), path);
  }
  return parse_manifest(text, path, plugins);
}

}  // namespace tv::fleet
