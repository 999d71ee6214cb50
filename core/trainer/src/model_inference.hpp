// Scoring a plugin model on labelled samples: the training loop's evaluations, a pipeline
// training's evaluation.json and a replay's evaluation matrix all score this way.
//
// Private to tv_trainer, for its libtorch translation units. Single-threaded per model.
#pragma once

#include <ATen/Tensor.h>
#include <torch/nn/module.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::trainer {

struct Evaluation {
  double loss = NAN;
  double accuracy = NAN;
  std::int64_t classes = 0;             // the model's class scores
  std::vector<std::int64_t> confusion;  // [truth * classes + predicted]
};

// `model` scored on (xs, ys) in eval mode, in batches of 1000; at least one sample. The module
// is back in train mode afterwards.
Evaluation evaluate_model(plugin::Model& model, torch::nn::Module& module, const at::Tensor& xs,
                          const at::Tensor& ys);

}  // namespace tv::trainer
