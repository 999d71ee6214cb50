// Inference with plugin models outside the training loop's steps: scoring (model_inference.hpp,
// for the loop and for stored models) and the stored models of stored_models.hpp.
#include "model_inference.hpp"

#include <ATen/ATen.h>
#include <dlfcn.h>
#include <torch/nn/functional/loss.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <deque>

#include "checkpoint.hpp"
#include "stream_window.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/trainer/recorded_run.hpp"
#include "trainvisor/trainer/stored_models.hpp"

namespace tv::trainer {
namespace {

using fleet::pipelines::SampleBatchData;

// The batch's features as a tensor of [rows, sample shape...], without a copy: the batch
// outlives the tensor and nothing writes to it.
at::Tensor inputs_of(const SampleBatchData& batch) {
  std::vector<std::int64_t> shape{static_cast<std::int64_t>(batch.rows)};
  shape.insert(shape.end(), batch.sample_shape.begin(), batch.sample_shape.end());
  return at::from_blob(const_cast<float*>(batch.features.data()), shape,
                       at::TensorOptions().dtype(at::kFloat));
}

}  // namespace

Evaluation evaluate_model(plugin::Model& model, torch::nn::Module& module, const at::Tensor& xs,
                          const at::Tensor& ys) {
  namespace F = torch::nn::functional;
  at::NoGradGuard no_grad;
  module.eval();
  const std::int64_t n = xs.size(0);
  double loss_sum = 0;
  std::int64_t correct = 0;
  Evaluation out;
  at::Tensor confusion;
  for (std::int64_t b = 0; b < n; b += 1000) {
    const auto x = xs.slice(0, b, std::min(b + 1000, n));
    const auto y = ys.slice(0, b, std::min(b + 1000, n));
    const auto logits = model.forward(x);
    loss_sum += F::cross_entropy(logits, y, F::CrossEntropyFuncOptions().reduction(torch::kSum))
                    .item<double>();
    const auto predicted = logits.argmax(1);
    correct += predicted.eq(y).sum().item<std::int64_t>();
    out.classes = logits.size(1);
    const auto counts = at::bincount(y * out.classes + predicted, {}, out.classes * out.classes);
    confusion = confusion.defined() ? confusion + counts : counts;
  }
  module.train();
  out.loss = loss_sum / static_cast<double>(n);
  out.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  const auto c = confusion.to(at::kLong).contiguous();
  out.confusion.assign(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
  return out;
}

// The models of stored_models.hpp, loaded once and kept (the most recently used first).
class LoadedModels {
 public:
  struct Loaded {
    std::string key;
    std::string name;  // for messages: "model 3f2a... (mlp)"
    std::unique_ptr<plugin::Model> model;
  };

  LoadedModels(const PluginRegistry& plugins, ArtifactFile artifact_file)
      : plugins_(plugins), artifact_file_(std::move(artifact_file)) {}

  // The bundle `digest`; `need_embeddings`: its plugin must have them.
  Loaded& bundle(const std::string& digest, bool need_embeddings) {
    if (Loaded* l = find(digest)) return *l;
    const std::string what = "model " + digest.substr(0, 12);
    const std::filesystem::path file = artifact_file_(digest);
    const RecordedRun run = read_recorded_run(file);
    plugin::ModelPlugin& mp = plugin_of(run.model, what, need_embeddings);
    std::unique_ptr<plugin::Model> m = build(mp, run.model_params, what);
    BundleHeader expected;
    expected.model = run.model;
    expected.model_params = run.model_params;
    load_bundle_weights(file, what + ":", expected, *m->module());
    return keep({digest, what + " (" + run.model + ")", std::move(m)});
  }

  // `p`'s initial model: its training's model with weights drawn from the training's seed.
  Loaded& drawn(const fleet::PipelineSpec& p) {
    // It depends on the pipeline's model, parameters and seed; a bundle on itself alone.
    const std::string key = p.training.model + "\n" +
                            fleet::params_json(p.training.model_params).dump() + "\n" +
                            std::to_string(p.training.seed);
    if (Loaded* l = find(key)) return *l;
    const std::string what = "the initial model of pipeline '" + p.name + "'";
    plugin::ModelPlugin& mp = plugin_of(p.training.model, what, true);
    // The manifest's parameters, completed with the plugin's defaults as a trainer does.
    const plugin::Params params = resolve_params(mp.describe().params, p.training.model_params,
                                                 "model '" + p.training.model + "'");
    torch::manual_seed(p.training.seed);
    return keep({key, what, build(mp, params, what)});
  }

 private:
  Loaded* find(const std::string& key) {
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->key != key) continue;
      if (it != kept_.begin()) {
        Loaded l = std::move(*it);
        kept_.erase(it);
        kept_.push_front(std::move(l));
      }
      return &kept_.front();
    }
    return nullptr;
  }

  Loaded& keep(Loaded l) {
    kept_.push_front(std::move(l));
    if (kept_.size() > kKeptModels) kept_.pop_back();
    return kept_.front();
  }

  plugin::ModelPlugin& plugin_of(const std::string& name, const std::string& what,
                                 bool need_embeddings) {
    plugin::ModelPlugin& mp = plugins_.model(name);
    if (need_embeddings && !mp.has_embeddings()) {
      throw std::runtime_error(what + " is a '" + name +
                               "' model, whose plugin has no embeddings (Model::embed)");
    }
    return mp;
  }

  static std::unique_ptr<plugin::Model> build(plugin::ModelPlugin& mp, const plugin::Params& params,
                                              const std::string& what) {
    std::string error;
    std::unique_ptr<plugin::Model> m = mp.build(params, error);
    if (!m) throw std::runtime_error(what + " could not be built: " + error);
    m->module()->eval();
    return m;
  }

  const PluginRegistry& plugins_;
  ArtifactFile artifact_file_;
  std::deque<Loaded> kept_;
};

ModelEmbedder::ModelEmbedder(const PluginRegistry& plugins, ArtifactFile artifact_file)
    : models_(std::make_unique<LoadedModels>(plugins, std::move(artifact_file))) {}

ModelEmbedder::~ModelEmbedder() = default;

SampleBatchData ModelEmbedder::embed(const fleet::PipelineSpec& pipeline, const std::string& model,
                                     const SampleBatchData& batch) {
  LoadedModels::Loaded& l = model.empty() ? models_->drawn(pipeline) : models_->bundle(model, true);
  at::Tensor out;
  try {
    at::NoGradGuard no_grad;
    if (!l.model->embed(inputs_of(batch), out))
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

std::map<std::string, std::string> model_runtime() {
  using Config = const char* (*)();
  std::string blas = "the BLAS libtorch was linked with (not OpenBLAS)";
  if (auto* f = reinterpret_cast<Config>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) blas = f();
  return {{"libtorch", TORCH_VERSION}, {"blas", blas}};
}

ModelScorer::ModelScorer(const PluginRegistry& plugins, ArtifactFile artifact_file)
    : models_(std::make_unique<LoadedModels>(plugins, std::move(artifact_file))) {}

ModelScorer::~ModelScorer() = default;

ModelScores ModelScorer::score(const std::string& model, const SampleBatchData& samples) {
  if (samples.rows == 0 || samples.labels.size() != samples.rows)
    throw std::runtime_error("model " + model.substr(0, 12) + ": no labelled samples to score");
  LoadedModels::Loaded& l = models_->bundle(model, false);
  const at::Tensor labels = at::from_blob(const_cast<std::int64_t*>(samples.labels.data()),
                                          {static_cast<std::int64_t>(samples.rows)},
                                          at::TensorOptions().dtype(at::kLong));
  Evaluation e;
  try {
    e = evaluate_model(*l.model, *l.model->module(), inputs_of(samples), labels);
  } catch (const c10::Error& err) {
    throw std::runtime_error(l.name + " could not score samples of shape " +
                             shape_text(samples.sample_shape) + ": " +
                             err.what_without_backtrace());
  }
  l.model->module()->eval();  // evaluate_model leaves it in train mode
  const Scores s = trainer::score(e.confusion, e.classes, e.loss);
  return {s.accuracy, s.macro_f1, s.loss};
}

}  // namespace tv::trainer
