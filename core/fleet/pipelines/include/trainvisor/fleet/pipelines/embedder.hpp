// What a trigger that measures drift on embeddings (PipelineSpec::trigger_features) needs: a
// pipeline's samples as a model embeds them (plugin::Model::embed). The coordinator's is the
// trainer library's ModelEmbedder (libtorch); the trigger runner sees only this interface, so that
// it, and its tests, link no libtorch.
//
// Called from the trigger runner's thread only, one call at a time.
#pragma once

#include <string>

#include "trainvisor/fleet/pipeline_spec.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::fleet::pipelines {

class Embedder {
 public:
  virtual ~Embedder() = default;
  // `batch` as `model` embeds it: the same rows, labels and timestamps, and sample_shape {dims}
  // of the embeddings. `model` is a bundle's digest in the artifact store (the bundle names its
  // model plugin and parameters), or empty for `pipeline`'s training model with weights drawn
  // from its seed. Throws std::runtime_error naming the model and the reason: a bundle missing
  // or unreadable, a plugin without embeddings, samples the model does not take.
  virtual SampleBatchData embed(const PipelineSpec& pipeline, const std::string& model,
                                const SampleBatchData& batch) = 0;
};

}  // namespace tv::fleet::pipelines
