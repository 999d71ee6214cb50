#include "trainvisor/fleet/manifest.hpp"

#include <toml++/toml.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "manifest_parts.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/command_trainer_json.hpp"
#include "trainvisor/fleet/names.hpp"
#include "trainvisor/fleet/pipeline_training_json.hpp"

namespace tv::fleet {
namespace {

using namespace manifest_parts;
using plugin::ParamValue;

std::string join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += (out.empty() ? "" : "\n") + l;
  return out;
}

const std::vector<std::string> kJobKeys = {
    "name",         "model",       "mode",         "seed",        "max_attempts",  "priority",
    "require_cuda", "prefer_cuda", "min_vram_gib", "min_ram_gib", "allowed_hosts", "params",
    "data",         "hyper",       "policies",     "trainer",     "workdir",       "host_workdir"};
const std::vector<std::string> kHostKeys = {"allow_jobs", "deny_jobs", "priority"};

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
  // Only a pipeline's training has it: every other job's id is as before.
  if (job.pipeline) j["pipeline"] = pipeline_training_json(*job.pipeline);
  if (job.command) j["trainer"] = command_trainer_json(*job.command);
  return j.dump();
}

namespace {

// One [[jobs]] table (the index-th, from 1); nothing when it has no usable name. `names` holds
// the names seen so far, to refuse a second job of one name.
// Where relative paths of the manifest start, and what its command jobs ship.
struct JobContext {
  std::filesystem::path dir;
  std::vector<Manifest::ShippedFolder>& shipped;
};

std::optional<JobSpec> parse_job(Checker& c, const toml::table& t, std::size_t index,
                                 std::set<std::string>& names, const PluginRegistry& plugins,
                                 const JobContext& ctx) {
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
  if (t.contains("trainer")) {
    parse_command(c, t, what, ctx.dir, job, ctx.shipped);
  } else {
    for (const char* key : {"workdir", "host_workdir"}) {
      if (const toml::node* n = t.get(key))
        c.error(n->source(), what + ": '" + key + "' is for a command job (give 'trainer')");
    }
    parse_model(c, t, what, plugins, job);
  }
  parse_data_and_hyper(c, t, what, job);
  parse_policies(c, t, what, plugins, job);
  job.canonical = canonical_spec(job);
  job.id = sha256_hex(job.canonical);
  return job;
}

// The [[jobs]] array. A 'jobs' that is not an array ends the parse at once.
std::vector<JobSpec> parse_jobs(Checker& c, const toml::table& root, const PluginRegistry& plugins,
                                const JobContext& ctx) {
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
    if (auto job = parse_job(c, *t, index, names, plugins, ctx)) out.push_back(std::move(*job));
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
            std::any_of(m.pipelines.begin(), m.pipelines.end(),
                        [&](const PipelineSpec& p) { return p.name == entry; }) ||
            plugins.find(entry) != nullptr;
        if (!known) {
          const toml::node* node =
              root["hosts"][h.name][list == &h.allow_jobs ? "allow_jobs" : "deny_jobs"].node();
          c.error(
              node ? node->source() : root.source(),
              "host '" + h.name + "': '" + entry + "' is neither a job, a model nor a pipeline");
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

Manifest parse_manifest(std::string_view text, std::string_view path, const PluginRegistry& plugins,
                        const HostTriggerServices* triggers) {
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
  reject_unknown(c, root, {"hosts", "jobs", "pipelines"}, "the manifest");
  m.hosts = parse_hosts(c, root);
  m.jobs = parse_jobs(c, root, plugins, {std::filesystem::path(path).parent_path(), m.shipped});
  m.pipelines = parse_pipelines(c, root, plugins, triggers);
  check_host_lists(c, root, m, plugins);
  if (!c.ok()) throw ManifestError(c.diagnostics());
  m.host_references = std::move(c.host_references());
  return m;
}

Manifest load_manifest(const std::string& path, const PluginRegistry& plugins,
                       const HostTriggerServices* triggers) {
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
  return parse_manifest(text, path, plugins, triggers);
}

}  // namespace tv::fleet
