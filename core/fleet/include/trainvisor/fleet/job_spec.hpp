// What the fleet knows about a job and a host: the types the manifest produces and the queue,
// the coordinator and the host daemon consume.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv::fleet {

// Where a job may run.
struct JobConstraints {
  bool require_cuda = false;
  bool prefer_cuda = false;  // a CPU host may take it only after the queue's grace period
  double min_vram_gib = 0;
  double min_ram_gib = 0;
  std::vector<std::string> allowed_hosts;  // empty: any host
};

// A supervisor policy attached to a job, with its parameters (validated against the plugin).
struct PolicySpec {
  std::string name;
  plugin::Params params;
};

// Which data the job trains on: the split recipe.
struct DataRecipe {
  std::int64_t max_train_samples = 0;  // 0: all
  std::int64_t max_val_samples = 0;    // 0: all
};

// What a pipeline's training job trains on and starts from (pipeline_spec.hpp, training_plan.hpp):
// a window of the pipeline's stream, held in segments the host fetches by digest.
struct PipelineTraining {
  std::string pipeline;
  std::int64_t trigger = 0;                       // the firing's index in the pipeline
  std::vector<std::string> segments;              // digests, in stream order
  std::int64_t segments_first_sample = 0;         // the stream index of the first segment's row 0
  std::int64_t window_begin = 0, window_end = 0;  // stream samples [begin, end)
  std::vector<std::int64_t> sample_shape;
  std::int64_t num_classes = 0;
  std::int64_t epochs = 1;      // 0: the starting weights are evaluated, not trained
  std::string initial_weights;  // a bundle's digest; "" for the model's own initialisation
  double holdout = 0.1;         // the window's last share, held out for evaluation
  std::string eval_set;         // an artifact holding a sample batch; "" none
  bool operator==(const PipelineTraining&) const = default;
};

// A job whose trainer is a command of the user's (a PyTorch script, say) instead of a model
// plugin's `trainvisor train`. The host runs it in its working directory with the job's block,
// id, output directory and attempt in its environment (trainer_process.hpp, CommandLaunch).
struct CommandTrainer {
  std::vector<std::string> argv;  // argv[0] is looked up on the host's PATH unless it has a '/'
  std::string workdir;            // the manifest's folder, shipped as an archive: its digest
  std::string host_workdir;       // or an absolute folder present on the host; both "": none
  bool operator==(const CommandTrainer&) const = default;

  // What the manifest, the wire and the queue accept: 1 to kMaxArgs non-empty arguments of at
  // most kMaxArgBytes, without NUL.
  static constexpr std::size_t kMaxArgs = 256;
  static constexpr std::size_t kMaxArgBytes = 4096;

  // The command line as one text for messages: the arguments joined by spaces.
  std::string text() const {
    std::string s;
    for (const std::string& a : argv)
      s += (s.empty() ? "" : " ") + a;
    return s;
  }
};

// One [[jobs]] entry of the manifest, validated; or a pipeline's training (`pipeline` set).
struct JobSpec {
  std::string id;               // sha256 (hex) of `canonical`
  std::string name;             // the operator's name for it, unique in the manifest
  std::string model;            // "" for a command job
  std::string mode;             // e.g. "train"
  plugin::ConfigView hyper;     // the initial config tree: full key paths (training/...)
  plugin::Params model_params;  // the model plugin's own parameters
  DataRecipe data;
  std::vector<PolicySpec> policies;
  JobConstraints constraints;
  std::uint64_t seed = 0;
  std::int64_t max_attempts = 3;
  std::int64_t priority = 0;  // higher first
  std::string canonical;      // the canonical spec the id hashes (manifest.hpp)
  std::optional<PipelineTraining> pipeline;
  std::optional<CommandTrainer> command;
};

// One [hosts.NAME] entry of the manifest.
struct HostPolicy {
  std::string name;
  std::vector<std::string> allow_jobs;  // job names or model names; empty: all
  std::vector<std::string> deny_jobs;   // job names or model names
  std::int64_t priority = 0;
};

// What a host can run, as it detects it.
struct HostCapability {
  std::string hostname;
  std::int64_t cores = 0;
  double ram_gib = 0;  // honouring a cgroup v2 memory limit
  bool cuda = false;
  std::int64_t cuda_devices = 0;
  double vram_gib = 0;  // of the largest device
  std::string torch_version;
  std::string trainvisor_version;
};

}  // namespace tv::fleet
