// The manifest's [[pipelines]] tables (manifest.hpp, pipeline_spec.hpp).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "manifest_parts.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/fleet/names.hpp"

namespace tv::fleet::manifest_parts {
namespace {

const std::vector<std::string> kPipelineKeys = {
    "name",          "model",        "params",      "seed",         "max_attempts",
    "priority",      "require_cuda", "prefer_cuda", "min_vram_gib", "min_ram_gib",
    "allowed_hosts", "hyper",        "policies",    "stream",       "trigger",
    "initial_model", "strategy",     "evaluation",  "deployment",   "initial_pass"};
const std::vector<std::string> kSources = {"ingest"};
const std::vector<std::string> kMetrics = {"accuracy", "macro_f1", "loss"};
constexpr std::int64_t kMaxShapeRank = 4;
constexpr std::int64_t kMaxSampleValues = std::int64_t{1} << 20;
constexpr std::int64_t kMaxClasses = 1 << 20;
constexpr std::int64_t kMaxEpochsPerTrigger = 10000;

bool is_sha256_hex(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char ch) {
           return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
         });
}

// `key` of `t` as one of `options`; `fallback` when absent; nothing (with a diagnostic) otherwise.
std::optional<std::string> choice(Checker& c, const toml::table& t, std::string_view key,
                                  const std::string& what, const std::vector<std::string>& options,
                                  const std::string& fallback) {
  if (!t.contains(key)) return fallback;
  const auto v = get<std::string>(c, t, key, what, "a string");
  if (!v) return std::nullopt;
  if (std::find(options.begin(), options.end(), *v) != options.end()) return v;
  std::string list;
  for (const std::string& o : options)
    list += (list.empty() ? "" : ", ") + o;
  const std::string close = did_you_mean(*v, options);
  c.error(t.get(key)->source(), what + ": '" + std::string(key) + "' is '" + *v + "', not one of " +
                                    list +
                                    (close.empty() ? "" : " (did you mean '" + close + "'?)"));
  return std::nullopt;
}

// A sub-table of a pipeline; null (with a diagnostic when it is there but not a table).
const toml::table* sub_table(Checker& c, const toml::table& t, std::string_view key,
                             const std::string& what) {
  const toml::node* n = t.get(key);
  if (n == nullptr) return nullptr;
  if (const toml::table* s = n->as_table()) return s;
  c.error(n->source(), what + ": '" + std::string(key) + "' must be a table, got " + type_of(*n));
  return nullptr;
}

// A number of `t` that must lie in [lo, hi].
std::optional<double> number_in(Checker& c, const toml::table& t, std::string_view key,
                                const std::string& what, double lo, double hi) {
  const auto v = get<double>(c, t, key, what, "a number");
  if (v && (*v < lo || *v > hi)) {
    std::ostringstream s;
    s << what << ": '" << key << "' must be in [" << lo << ", " << hi << "], got " << *v;
    c.error(t.get(key)->source(), s.str());
    return std::nullopt;
  }
  return v;
}

std::optional<std::int64_t> integer_in(Checker& c, const toml::table& t, std::string_view key,
                                       const std::string& what, std::int64_t lo, std::int64_t hi) {
  const auto v = get<std::int64_t>(c, t, key, what, "an integer");
  if (v && (*v < lo || *v > hi)) {
    c.error(t.get(key)->source(), what + ": '" + std::string(key) + "' must be in [" +
                                      std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                                      std::to_string(*v));
    return std::nullopt;
  }
  return v;
}

// [pipelines.stream]: source, shape (required), classes (required).
void parse_stream(Checker& c, const toml::table& p, const std::string& what, StreamSpec& out) {
  const toml::table* t = sub_table(c, p, "stream", what);
  if (t == nullptr) {
    if (!p.contains("stream"))
      c.error(p.source(), what + " has no [stream] table (source, shape, classes)");
    return;
  }
  const std::string w = what + ": stream";
  reject_unknown(c, *t, {"source", "shape", "classes"}, w);
  out.source = choice(c, *t, "source", w, kSources, "ingest").value_or("ingest");
  const toml::node* shape = t->get("shape");
  const toml::array* dims = shape ? shape->as_array() : nullptr;
  if (dims == nullptr || dims->empty() || dims->size() > kMaxShapeRank) {
    c.error(shape ? shape->source() : t->source(),
            w + ": 'shape' must be an array of 1 to " + std::to_string(kMaxShapeRank) +
                " positive integers, one sample's shape (e.g. [784] or [1, 28, 28])");
  } else {
    std::int64_t values = 1;
    for (const toml::node& d : *dims) {
      const auto v = d.value_exact<std::int64_t>();
      if (!v || *v < 1 || *v > kMaxSampleValues || values * *v > kMaxSampleValues) {
        c.error(d.source(), w +
                                ": each 'shape' entry must be a positive integer, and a sample at "
                                "most " +
                                std::to_string(kMaxSampleValues) + " values");
        break;
      }
      values *= *v;
      out.sample_shape.push_back(*v);
    }
  }
  if (!t->contains("classes")) c.error(t->source(), w + " has no 'classes' (the label count)");
  out.num_classes = integer_in(c, *t, "classes", w, 2, kMaxClasses).value_or(0);
}

// features = "raw" | "embeddings" in [pipelines.trigger]; embeddings need a model plugin that
// has them (its deployed models are of the training's model).
void parse_trigger_features(Checker& c, const toml::table& t, const std::string& what,
                            const PluginRegistry& plugins, PipelineSpec& out) {
  const auto v = choice(c, t, "features", what + ": trigger", {"raw", "embeddings"}, "raw");
  if (v != "embeddings") return;
  out.trigger_features = TriggerFeatures::kEmbeddings;
  const LoadedPlugin* model = plugins.find(out.training.model);
  const auto* mp = model ? dynamic_cast<const plugin::ModelPlugin*>(model->plugin.get()) : nullptr;
  if (mp != nullptr && !mp->has_embeddings()) {
    c.error(t.get("features")->source(),
            what + ": trigger features = \"embeddings\", but model '" + out.training.model +
                "' has no embeddings (its plugin does not implement Model::embed)");
  }
}

// [pipelines.trigger]: plugin = NAME and that plugin's parameters.
// With `services`, the trigger is also made once, so that what only its plugin checks (an
// ensemble's member list) is refused at load too.
void parse_trigger(Checker& c, const toml::table& p, const std::string& what,
                   const PluginRegistry& plugins, const HostTriggerServices* services,
                   PipelineSpec& out) {
  const toml::table* t = sub_table(c, p, "trigger", what);
  if (t == nullptr) {
    if (!p.contains("trigger"))
      c.error(p.source(), what + " has no [trigger] table (plugin = NAME and its parameters)");
    return;
  }
  const toml::node* name_node = t->get("plugin");
  const auto name = get<std::string>(c, *t, "plugin", what + ": trigger", "a string");
  if (!name) {
    if (name_node == nullptr) c.error(t->source(), what + ": trigger has no 'plugin'");
    return;
  }
  out.trigger = *name;
  parse_trigger_features(c, *t, what, plugins, out);
  try {
    const plugin::TriggerPlugin& tp = plugins.trigger(*name);
    const std::size_t errors = c.diagnostics().size();
    out.trigger_params = check_params(c, tp.describe().params, *t,
                                      what + ": trigger '" + *name + "'", {"plugin", "features"});
    std::string error;
    if (services != nullptr && c.diagnostics().size() == errors &&
        services->create_typed(*name, out.trigger_params, error) == nullptr) {
      c.error(t->source(), what + ": " + error);
    }
  } catch (const std::runtime_error& e) {
    c.error(name_node->source(), what + ": " + e.what());
  }
}

// initial_model = "random" | "artifact:SHA256" | "pipeline:NAME".
void parse_initial_model(Checker& c, const toml::table& p, const std::string& what,
                         InitialModel& out) {
  const auto v = get<std::string>(c, p, "initial_model", what, "a string");
  if (!v || *v == "random") return;
  const std::string_view s = *v;
  if (s.starts_with("artifact:") && is_sha256_hex(s.substr(9))) {
    out = {InitialModelKind::kArtifact, std::string(s.substr(9))};
  } else if (s.starts_with("pipeline:") && valid_name(s.substr(9), kMaxJobNameBytes)) {
    out = {InitialModelKind::kPipeline, std::string(s.substr(9))};
  } else {
    c.error(p.get("initial_model")->source(),
            what + ": initial_model '" + *v +
                "' is none of \"random\", \"artifact:SHA256\" (64 lowercase hex digits of a "
                "bundle) or \"pipeline:NAME\" (that pipeline's deployed model)");
  }
}

// [pipelines.strategy]: kind, window_samples, epochs.
void parse_strategy(Checker& c, const toml::table& p, const std::string& what,
                    TrainingStrategy& out) {
  const toml::table* t = sub_table(c, p, "strategy", what);
  if (t == nullptr) return;
  const std::string w = what + ": strategy";
  reject_unknown(c, *t, {"kind", "window_samples", "epochs"}, w);
  const auto kind = choice(c, *t, "kind", w, {"retrain", "finetune", "window"}, "retrain");
  if (kind == "finetune") out.kind = StrategyKind::kFinetune;
  if (kind == "window") out.kind = StrategyKind::kWindow;
  out.epochs = integer_in(c, *t, "epochs", w, 0, kMaxEpochsPerTrigger).value_or(1);
  if (t->contains("window_samples")) {
    out.window_samples =
        integer_in(c, *t, "window_samples", w, 1, std::int64_t{1} << 40).value_or(0);
    if (out.kind != StrategyKind::kWindow) {
      c.error(t->get("window_samples")->source(),
              w + ": 'window_samples' is for kind = \"window\" only");
    }
  } else if (out.kind == StrategyKind::kWindow) {
    c.error(t->source(), w + ": kind = \"window\" needs 'window_samples'");
  }
}

// [pipelines.evaluation]: holdout, set, metrics.
void parse_evaluation(Checker& c, const toml::table& p, const std::string& what,
                      EvaluationSpec& out) {
  const toml::table* t = sub_table(c, p, "evaluation", what);
  if (t == nullptr) return;
  const std::string w = what + ": evaluation";
  reject_unknown(c, *t, {"holdout", "set", "metrics"}, w);
  out.holdout = number_in(c, *t, "holdout", w, 0.0, 0.9).value_or(out.holdout);
  if (const auto set = get<std::string>(c, *t, "set", w, "a string")) {
    if (is_sha256_hex(*set)) {
      out.set_digest = *set;
    } else {
      c.error(t->get("set")->source(),
              w + ": 'set' must be the sha256 (64 lowercase hex digits) of an artifact holding a "
                  "sample batch");
    }
  }
  if (out.holdout == 0 && out.set_digest.empty()) {
    c.error(t->source(), w + ": holdout = 0 and no 'set' leaves nothing to evaluate on");
  }
  if (t->contains("metrics")) {
    out.metrics = get_strings(c, *t, "metrics", w);
    for (const std::string& m : out.metrics) {
      if (std::find(kMetrics.begin(), kMetrics.end(), m) != kMetrics.end()) continue;
      const std::string close = did_you_mean(m, kMetrics);
      c.error(t->get("metrics")->source(),
              w + ": unknown metric '" + m + "' (metrics: accuracy, macro_f1, loss)" +
                  (close.empty() ? "" : " (did you mean '" + close + "'?)"));
    }
  }
}

// [pipelines.deployment]: alias, min_accuracy, max_regression, directory.
void parse_deployment(Checker& c, const toml::table& p, const std::string& what,
                      const std::string& name, DeploymentSpec& out) {
  out.alias = name;
  const toml::table* t = sub_table(c, p, "deployment", what);
  if (t == nullptr) return;
  const std::string w = what + ": deployment";
  reject_unknown(c, *t, {"alias", "min_accuracy", "max_regression", "directory"}, w);
  if (const auto alias = get<std::string>(c, *t, "alias", w, "a string")) {
    out.alias = *alias;
    if (!valid_name(*alias, kMaxJobNameBytes)) {
      c.error(t->get("alias")->source(),
              w + ": invalid alias (letters, digits, '.', '_', '-'; at most 100)");
    }
  }
  out.min_accuracy = number_in(c, *t, "min_accuracy", w, 0.0, 1.0).value_or(0);
  out.max_regression = number_in(c, *t, "max_regression", w, 0.0, 1.0).value_or(0);
  if (const auto dir = get<std::string>(c, *t, "directory", w, "a string")) {
    out.directory = *dir;
    if (!std::filesystem::path(*dir).is_absolute()) {
      c.error(t->get("directory")->source(), w + ": 'directory' must be an absolute path");
    }
  }
}

// The pipeline's job parts (the template of its training jobs), as [[jobs]] has them.
void parse_training(Checker& c, const toml::table& p, const std::string& what,
                    const PluginRegistry& plugins, PipelineSpec& out) {
  JobSpec& job = out.training;
  job.name = out.name;
  parse_job_settings(c, p, what, job);
  job.constraints = parse_constraints(c, p, what);
  parse_model(c, p, what, plugins, job);
  parse_data_and_hyper(c, p, what, job);
  parse_policies(c, p, what, plugins, job);
  const auto pass = choice(c, p, "initial_pass", what, {"ignore", "train", "replay"}, "ignore");
  if (pass == "train") out.initial_pass = InitialPass::kTrain;
  if (pass == "replay") out.initial_pass = InitialPass::kReplay;
}

std::optional<PipelineSpec> parse_pipeline(Checker& c, const toml::table& p, std::size_t index,
                                           std::set<std::string>& names,
                                           const PluginRegistry& plugins,
                                           const HostTriggerServices* services) {
  const std::string where = "pipelines[" + std::to_string(index) + "]";
  const auto name = get<std::string>(c, p, "name", where, "a string");
  if (!name) {
    if (!p.contains("name")) c.error(p.source(), where + " has no 'name'");
    return std::nullopt;
  }
  PipelineSpec out;
  out.name = *name;
  const std::string what = "pipeline '" + out.name + "'";
  if (!valid_name(out.name, kMaxJobNameBytes)) {
    c.error(p.get("name")->source(),
            what + ": invalid name (letters, digits, '.', '_', '-'; at most 100)");
  }
  if (!names.insert(out.name).second) c.error(p.get("name")->source(), what + " is defined twice");
  reject_unknown(c, p, kPipelineKeys, what);
  parse_training(c, p, what, plugins, out);
  parse_stream(c, p, what, out.stream);
  parse_trigger(c, p, what, plugins, services, out);
  parse_initial_model(c, p, what, out.initial_model);
  parse_strategy(c, p, what, out.strategy);
  parse_evaluation(c, p, what, out.evaluation);
  parse_deployment(c, p, what, out.name, out.deployment);
  if (out.strategy.kind == StrategyKind::kFinetune &&
      out.initial_model.kind == InitialModelKind::kRandom &&
      out.initial_pass != InitialPass::kTrain) {
    c.error(p.source(), what +
                            ": strategy 'finetune' trains the previous model, and the first "
                            "training has none: set initial_model to \"artifact:SHA256\" or "
                            "\"pipeline:NAME\", or initial_pass = \"train\"");
  }
  return out;
}

// Cross-references: a pipeline named as an initial model exists and is not the pipeline itself;
// no two pipelines share an alias.
void check_pipeline_references(Checker& c, const toml::array& tables,
                               const std::vector<PipelineSpec>& pipelines) {
  std::map<std::string, std::string> alias_owner;
  std::vector<std::string> names;
  for (const PipelineSpec& p : pipelines)
    names.push_back(p.name);
  std::size_t i = 0;
  for (const toml::node& n : tables) {
    const toml::table* t = n.as_table();
    if (t == nullptr || i >= pipelines.size()) break;
    const toml::node* name = t->get("name");
    if (name == nullptr || name->value_exact<std::string>() != pipelines[i].name) continue;
    const PipelineSpec& p = pipelines[i++];
    const std::string what = "pipeline '" + p.name + "'";
    if (p.initial_model.kind == InitialModelKind::kPipeline) {
      const std::string& ref = p.initial_model.ref;
      if (ref == p.name) {
        c.error(t->get("initial_model")->source(),
                what + ": initial_model names the pipeline itself");
      } else if (std::find(names.begin(), names.end(), ref) == names.end()) {
        std::vector<std::string> others = names;
        std::erase(others, p.name);
        const std::string close = did_you_mean(ref, others);
        c.error(t->get("initial_model")->source(),
                what + ": initial_model names no pipeline of this manifest: '" + ref + "'" +
                    (close.empty() ? "" : " (did you mean '" + close + "'?)"));
      }
    }
    const auto [owner, fresh] = alias_owner.emplace(p.deployment.alias, p.name);
    if (!fresh) {
      c.error(t->source(), what + ": deployment alias '" + p.deployment.alias +
                               "' is also pipeline '" + owner->second + "''s");
    }
  }
}

}  // namespace

std::vector<PipelineSpec> parse_pipelines(Checker& c, const toml::table& root,
                                          const PluginRegistry& plugins,
                                          const HostTriggerServices* services) {
  std::vector<PipelineSpec> out;
  const toml::node* node = root.get("pipelines");
  if (node == nullptr) return out;
  const toml::array* tables = node->as_array();
  if (tables == nullptr) {
    c.error(node->source(), "'pipelines' must be an array of [[pipelines]] tables");
    return out;
  }
  std::set<std::string> names;
  std::size_t index = 0;
  for (const toml::node& n : *tables) {
    ++index;
    const toml::table* t = n.as_table();
    if (t == nullptr) {
      c.error(n.source(), "pipelines[" + std::to_string(index) + "] must be a table");
      continue;
    }
    if (auto p = parse_pipeline(c, *t, index, names, plugins, services))
      out.push_back(std::move(*p));
  }
  check_pipeline_references(c, *tables, out);
  return out;
}

}  // namespace tv::fleet::manifest_parts

namespace tv::fleet {

const char* to_string(InitialModelKind kind) {
  switch (kind) {
    case InitialModelKind::kArtifact:
      return "artifact";
    case InitialModelKind::kPipeline:
      return "pipeline";
    default:
      return "random";
  }
}

const char* to_string(StrategyKind kind) {
  switch (kind) {
    case StrategyKind::kFinetune:
      return "finetune";
    case StrategyKind::kWindow:
      return "window";
    default:
      return "retrain";
  }
}

const char* to_string(InitialPass pass) {
  switch (pass) {
    case InitialPass::kTrain:
      return "train";
    case InitialPass::kReplay:
      return "replay";
    default:
      return "ignore";
  }
}

std::string sample_shape_text(const std::vector<std::int64_t>& shape) {
  std::string out = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

const char* to_string(TriggerFeatures features) {
  return features == TriggerFeatures::kEmbeddings ? "embeddings" : "raw";
}

}  // namespace tv::fleet
