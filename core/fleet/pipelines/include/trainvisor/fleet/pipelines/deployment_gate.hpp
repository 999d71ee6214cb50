// The gate in front of a pipeline's deployment alias: a new model moves the alias only when its
// accuracy reaches the pipeline's min_accuracy and is no worse than the deployed model's by more
// than max_regression, both measured by the same training on the same evaluation data (the
// trainer's evaluation.json: {"new": {...}, "deployed": {...} | null, "eval_samples": N, ...}).
// A model that was judged against another model than the one the alias holds now (the alias
// moved while it trained) is refused too: it was never compared with what it would replace.
// Pure: the coordinator reads the inputs and records the decision.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tv::fleet::pipelines {

struct GateInput {
  double min_accuracy = 0;
  double max_regression = 0;
  nlohmann::json evaluation;  // the trainer's evaluation.json; anything else is refused
  std::string baseline;       // the model the training was compared with; "" none
  std::string deployed_now;   // the model the alias holds now; "" none
};

struct GateDecision {
  bool deploy = false;
  std::string reason;  // e.g. "accuracy 0.861 >= min 0.700; deployed 0.845 - 0.020 <= 0.861"
};

GateDecision judge(const GateInput& in);

}  // namespace tv::fleet::pipelines
