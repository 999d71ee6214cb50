// A continual-training pipeline as the manifest declares it ([[pipelines]], manifest.hpp): the
// stream it reads, the trigger that decides when to train, how each training starts and what data
// it sees, how a new model is evaluated, and the gate that moves its deployment alias. Each
// firing becomes an ordinary fleet job built from `training` (model, hyper, policies,
// constraints), plus the PipelineTraining part that says which data and weights it starts from.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// Where a pipeline's samples come from.
struct StreamSpec {
  std::string source = "ingest";           // "ingest": POST /v1/pipeline/NAME/samples
  std::vector<std::int64_t> sample_shape;  // one sample's shape, e.g. {784} or {1, 28, 28}
  std::int64_t num_classes = 0;            // labels must be below it
};

// The weights of the pipeline's first training.
enum class InitialModelKind { kRandom, kArtifact, kPipeline };
struct InitialModel {
  InitialModelKind kind = InitialModelKind::kRandom;
  std::string ref;  // kArtifact: a bundle's sha256; kPipeline: the pipeline whose deployed model
};

// What each training trains on, and from which weights.
enum class StrategyKind {
  kRetrain,   // all data so far, from the initial model
  kFinetune,  // the data since the last firing, from the previous training's model
  kWindow,    // the last window_samples samples, from the initial model
};
struct TrainingStrategy {
  StrategyKind kind = StrategyKind::kRetrain;
  std::int64_t window_samples = 0;  // kWindow only
  std::int64_t epochs = 1;          // per firing; 0 evaluates the starting weights only
};

// How a new model is judged: on a held-out share of its own window and/or a fixed set.
struct EvaluationSpec {
  double holdout = 0.1;    // share of the window's samples held out (the last ones)
  std::string set_digest;  // optional: an artifact holding a sample batch (the ingest format)
  std::vector<std::string> metrics = {"accuracy", "macro_f1", "loss"};
};

// The gate in front of the alias: the new model must reach min_accuracy, and be no worse than
// the deployed model by more than max_regression, both measured on the same evaluation data.
struct DeploymentSpec {
  std::string alias;        // default: the pipeline's name
  double min_accuracy = 0;  // in [0, 1]
  double max_regression = 0.0;
  std::string directory;  // optional: the deployed bundle is written there by atomic rename
};

// What the trigger sees of each sample: the sample itself, or the deployed model's embeddings
// of it (plugin::Model::embed), so that drift is measured as the model sees the stream. With
// embeddings the trigger starts afresh whenever the deployed model changes, since embeddings of
// two models are not comparable; until a model is deployed, the initial model's are used (the
// training's model with weights drawn from its seed when the initial model is random).
enum class TriggerFeatures { kRaw, kEmbeddings };

// What happens to samples already stored when the pipeline starts (Modyn's initial_mode).
enum class InitialPass {
  kIgnore,  // the trigger sees only what arrives from now on
  kTrain,   // one training on everything present, then the trigger sees new samples
  kReplay,  // everything present goes through the trigger as if it were arriving
};

struct PipelineSpec {
  std::string name;
  JobSpec training;  // model, params, hyper, policies, constraints, seed, attempts, priority
  StreamSpec stream;
  std::string trigger;  // a trigger plugin
  plugin::Params trigger_params;
  TriggerFeatures trigger_features = TriggerFeatures::kRaw;
  InitialModel initial_model;
  TrainingStrategy strategy;
  EvaluationSpec evaluation;
  DeploymentSpec deployment;
  InitialPass initial_pass = InitialPass::kIgnore;
};

const char* to_string(InitialModelKind kind);
const char* to_string(StrategyKind kind);
const char* to_string(InitialPass pass);
const char* to_string(TriggerFeatures features);
// A sample shape as the manifest writes it: "[1, 28, 28]".
std::string sample_shape_text(const std::vector<std::int64_t>& shape);

}  // namespace tv::fleet
