// Stored models run outside a training, on a pipeline's stream samples: embedded for a trigger
// that measures drift on embeddings (ModelEmbedder, the coordinator's pipelines::Embedder), and
// scored for a replay's evaluation matrix (ModelScorer).
//
// A model is a bundle in the artifact store, whose header names its model plugin and parameters,
// or (embedder only) a pipeline's initial model: its training's model with weights drawn from the
// training's seed, as a trainer would start it. Models run in eval mode without gradients. The
// last few models stay loaded, so that a stream's batches do not read a bundle again.
//
// Each object is used from one thread at a time. Failures throw std::runtime_error naming the
// model and the reason.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/pipelines/embedder.hpp"

namespace tv::trainer {

// Gives an artifact's path by its digest; throws when the store has none.
using ArtifactFile = std::function<std::filesystem::path(const std::string& digest)>;

class LoadedModels;

class ModelEmbedder final : public fleet::pipelines::Embedder {
 public:
  // `plugins` outlives the embedder.
  ModelEmbedder(const PluginRegistry& plugins, ArtifactFile artifact_file);
  ~ModelEmbedder() override;

  fleet::pipelines::SampleBatchData embed(const fleet::PipelineSpec& pipeline,
                                          const std::string& model,
                                          const fleet::pipelines::SampleBatchData& batch) override;

 private:
  std::unique_ptr<LoadedModels> models_;
};

// A model's scores on labelled samples, as a pipeline training's evaluation.json has them.
struct ModelScores {
  double accuracy = 0;
  double macro_f1 = 0;  // the mean per-class F1 over the classes that occur
  double loss = 0;      // the mean cross-entropy
};

class ModelScorer {
 public:
  // `plugins` outlives the scorer.
  ModelScorer(const PluginRegistry& plugins, ArtifactFile artifact_file);
  ~ModelScorer();

  // The bundle `model`'s scores on `samples` (at least one, all labelled).
  ModelScores score(const std::string& model, const fleet::pipelines::SampleBatchData& samples);

 private:
  std::unique_ptr<LoadedModels> models_;
};

inline constexpr std::size_t kKeptModels = 4;

// What models run on here, for a report's environment: {"libtorch": "1.13.1", "blas": OpenBLAS's
// build configuration ("OpenBLAS 0.3.21 DYNAMIC_ARCH ...") or the name of the BLAS found}.
std::map<std::string, std::string> model_runtime();

}  // namespace tv::trainer
