// What the fleet knows about a job and a host: the types the manifest produces and the queue,
// the coordinator and the host daemon consume.
#pragma once

#include <cstdint>
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

// One [[jobs]] entry of the manifest, validated.
struct JobSpec {
  std::string id;    // sha256 (hex) of `canonical`
  std::string name;  // the operator's name for it, unique in the manifest
  std::string model;
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
