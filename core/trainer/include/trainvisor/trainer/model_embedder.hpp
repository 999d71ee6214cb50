// The coordinator's Embedder (trainvisor/fleet/pipelines/embedder.hpp) on libtorch: a pipeline's
// samples as a model embeds them (plugin::Model::embed), for triggers that measure drift on
// embeddings. A deployed model is loaded from its bundle, whose header names the model plugin and
// parameters; the initial model of a pipeline without one is its training's model built with
// weights drawn from the training's seed, as a trainer would start it. Each batch runs in eval
// mode without gradients. The last few models stay loaded, so that a stream's batches do not
// read a bundle again.
//
// Used from one thread at a time (the trigger runner's). Failures throw std::runtime_error naming
// the model and the reason.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/pipelines/embedder.hpp"

namespace tv::trainer {

class ModelEmbedder final : public fleet::pipelines::Embedder {
 public:
  // `plugins` outlives the embedder; `artifact_file` gives an artifact's path by digest and
  // throws when the store has none.
  ModelEmbedder(const PluginRegistry& plugins,
                std::function<std::filesystem::path(const std::string& digest)> artifact_file);
  ~ModelEmbedder() override;

  fleet::pipelines::SampleBatchData embed(const fleet::PipelineSpec& pipeline,
                                          const std::string& model,
                                          const fleet::pipelines::SampleBatchData& batch) override;

  static constexpr std::size_t kKeptModels = 4;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::trainer
