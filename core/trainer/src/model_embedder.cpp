#include "trainvisor/trainer/model_embedder.hpp"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <deque>

#include "checkpoint.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/trainer/recorded_run.hpp"

namespace tv::trainer {
namespace {

using fleet::pipelines::SampleBatchData;

struct Loaded {
  std::string key;
  std::string name;  // for messages: "model 3f2a... (mlp)"
  std::unique_ptr<plugin::Model> model;
};

std::string shape_text(const std::vector<std::int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

struct ModelEmbedder::Impl {
  const PluginRegistry& plugins;
  std::function<std::filesystem::path(const std::string&)> artifact_file;
  std::deque<Loaded> kept;  // the most recently used first

  plugin::ModelPlugin& plugin_with_embeddings(const std::string& name, const std::string& what) {
    plugin::ModelPlugin& mp = plugins.model(name);
    if (!mp.has_embeddings()) {
      throw std::runtime_error(what + " is a '" + name +
                               "' model, whose plugin has no embeddings (Model::embed)");
    }
    return mp;
  }

  std::unique_ptr<plugin::Model> build(plugin::ModelPlugin& mp, const plugin::Params& params,
                                       const std::string& what) {
    std::string error;
    std::unique_ptr<plugin::Model> m = mp.build(params, error);
    if (!m) throw std::runtime_error(what + " could not be built: " + error);
    m->module()->eval();
    return m;
  }

  Loaded load(const fleet::PipelineSpec& p, const std::string& digest, const std::string& key) {
    if (digest.empty()) {
      const std::string what = "the initial model of pipeline '" + p.name + "'";
      plugin::ModelPlugin& mp = plugin_with_embeddings(p.training.model, what);
      // The manifest's parameters, completed with the plugin's defaults as a trainer does.
      const plugin::Params params = resolve_params(mp.describe().params, p.training.model_params,
                                                   "model '" + p.training.model + "'");
      torch::manual_seed(p.training.seed);
      return {key, what, build(mp, params, what)};
    }
    const std::string what = "model " + digest.substr(0, 12);
    const std::filesystem::path file = artifact_file(digest);
    const RecordedRun run = read_recorded_run(file);
    plugin::ModelPlugin& mp = plugin_with_embeddings(run.model, what);
    std::unique_ptr<plugin::Model> m = build(mp, run.model_params, what);
    BundleHeader expected;
    expected.model = run.model;
    expected.model_params = run.model_params;
    load_bundle_weights(file, what + ":", expected, *m->module());
    return {key, what + " (" + run.model + ")", std::move(m)};
  }

  Loaded& model_for(const fleet::PipelineSpec& p, const std::string& digest) {
    // A drawn initial model depends on the pipeline's model, parameters and seed; a bundle on
    // itself alone.
    const std::string key = !digest.empty()
                                ? digest
                                : p.training.model + "\n" +
                                      fleet::params_json(p.training.model_params).dump() + "\n" +
                                      std::to_string(p.training.seed);
    for (auto it = kept.begin(); it != kept.end(); ++it) {
      if (it->key != key) continue;
      if (it != kept.begin()) {
        Loaded l = std::move(*it);
        kept.erase(it);
        kept.push_front(std::move(l));
      }
      return kept.front();
    }
    kept.push_front(load(p, digest, key));
    if (kept.size() > kKeptModels) kept.pop_back();
    return kept.front();
  }
};

ModelEmbedder::ModelEmbedder(const PluginRegistry& plugins,
                             std::function<std::filesystem::path(const std::string&)> artifact_file)
    : impl_(std::make_unique<Impl>(Impl{plugins, std::move(artifact_file), {}})) {}

ModelEmbedder::~ModelEmbedder() = default;

SampleBatchData ModelEmbedder::embed(const fleet::PipelineSpec& pipeline, const std::string& model,
                                     const SampleBatchData& batch) {
  Loaded& l = impl_->model_for(pipeline, model);
  std::vector<std::int64_t> shape{static_cast<std::int64_t>(batch.rows)};
  shape.insert(shape.end(), batch.sample_shape.begin(), batch.sample_shape.end());
  // from_blob does not copy; the batch outlives the call and nothing writes to the tensor.
  const at::Tensor inputs = at::from_blob(const_cast<float*>(batch.features.data()), shape,
                                          at::TensorOptions().dtype(at::kFloat));
  at::Tensor out;
  try {
    at::NoGradGuard no_grad;
    if (!l.model->embed(inputs, out))
      throw std::runtime_error(l.name + " has no embeddings (its Model::embed returned false)");
  } catch (const c10::Error& e) {
    throw std::runtime_error(l.name + " does not take samples of shape " +
                             shape_text(batch.sample_shape) + ": " + e.what_without_backtrace());
  }
  if (!out.defined() || out.dim() < 1 || out.size(0) != static_cast<std::int64_t>(batch.rows)) {
    throw std::runtime_error(l.name + " gave embeddings of shape " +
                             (out.defined() ? shape_text(out.sizes().vec()) : "(none)") + " for " +
                             std::to_string(batch.rows) + " samples");
  }
  out = out.reshape({out.size(0), -1}).to(at::kFloat).contiguous();
  SampleBatchData e;
  e.sample_shape = {out.size(1)};
  e.rows = batch.rows;
  e.features.assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  e.labels = batch.labels;
  e.time_ns = batch.time_ns;
  return e;
}

}  // namespace tv::trainer
