// The operator's manifest: a TOML file of [hosts.NAME] policies and [[jobs]], validated in full
// against the plugins' schemas when it is loaded, so that an unknown model or policy, an unknown
// hyperparameter key, a wrong type or a value out of range is refused at reload with
// file:line:column, not discovered when the job runs.
//
//   [hosts.gpu-box]                    allow_jobs, deny_jobs (job or model names), priority
//   [[jobs]]
//   name = "mlp-baseline"              unique in the manifest
//   model = "mlp"                      a model plugin, or instead a command of the user's:
//   trainer = ["python3", "train.py"]  run by the host with the job's block in its environment
//   workdir = "trainer"                (a folder beside the manifest, shipped to the host; the
//                                      script an interpreter runs must be in it), or
//   host_workdir = "/srv/trainer"      a folder present on each host. A command job has no
//                                      params or data: its flags are its own.
//   mode = "train"                     "train" (default)
//   seed = 1                           max_attempts = 3, priority = 0
//   require_cuda = false               prefer_cuda, min_vram_gib, min_ram_gib, allowed_hosts
//   [jobs.params]                      the model plugin's parameters
//   [jobs.data]                        the split recipe: max_train_samples, max_val_samples
//   [jobs.hyper]                       the initial config tree: nested tables or "a/b/c" keys,
//   training.optimizer.learning_rate = 0.1     checked against the trainer's knob schema
//   [[jobs.policies]]                  name = "plateau", its parameters, human_grace_evals/steps
//   [[pipelines]]                      continual training (pipeline_spec.hpp): name, model,
//                                      params, hyper, policies and constraints as for jobs;
//   [pipelines.stream]                 source = "ingest", shape = [784], classes = 10
//   [pipelines.trigger]                plugin = "data_drift" and that plugin's parameters
//   initial_model = "random"           or "artifact:SHA256", "pipeline:NAME"
//   initial_pass = "ignore"            or "train", "replay" (the samples present at start)
//   [pipelines.strategy]               kind = "retrain" | "finetune" | "window",
//                                      window_samples, epochs (per firing; 0: evaluate only)
//   [pipelines.evaluation]             holdout = 0.1, set = "SHA256", metrics = [...]
//   [pipelines.deployment]             alias, min_accuracy, max_regression, directory
//
// Job id: the sha256 (lowercase hex) of the job's canonical spec: the JSON object
//   {"allowed_hosts":[...sorted...],"data":{...},"hyper":{"<full key path>":value,...},
//    "mode":"...","model":"...","model_params":{...},"seed":N}
// plus, for a command job, "trainer":{"argv":[...],"host_workdir":"...","workdir":"<digest>"}
// (the working directory by its archive's digest, so that a changed script is a new job), with
// keys in bytewise order, no whitespace, integers in decimal, floats in their shortest
// round-trip form with a decimal point ("0.1", "1.0"), and every value of the type its schema
// declares (an integer written for a float parameter counts as that float). Defaults are not
// filled in, so the id is stable across releases that change a default. Policies, priority,
// max_attempts and the other constraints steer how a job is run, not what it trains, and are not
// part of its identity. Golden vectors: tests/fleet/manifest_test.cpp.
//
// Limits, refused with a diagnostic before the TOML is parsed: at most kMaxManifestBytes, and
// nesting (dotted key segments, tables, arrays and inline tables, together) at most
// kMaxManifestDepth levels. Every number a manifest sets must be finite. Host names (hosts and
// allowed_hosts) follow valid_host_name, job names valid_name (trainvisor/fleet/names.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/pipeline_spec.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv {
class HostTriggerServices;
}

namespace tv::fleet {

inline constexpr std::size_t kMaxManifestBytes = 4 << 20;
inline constexpr std::size_t kMaxManifestDepth = 32;
// A command job's shipped working directory: code and small files, not data sets.
inline constexpr std::uint64_t kMaxShippedFolderBytes = std::uint64_t{64} << 20;

// A host a job's allowed_hosts names, where it is written ("path:line:column").
struct HostReference {
  std::string host;
  std::string job;  // "job 'NAME'"
  std::string where;
};

struct Manifest {
  std::string path;
  std::vector<HostPolicy> hosts;
  std::vector<JobSpec> jobs;
  std::vector<PipelineSpec> pipelines;
  std::vector<HostReference> host_references;
  // The working directories of command jobs, packed (folder_archive.hpp): what the coordinator
  // stores as artifacts before it queues the jobs that name them by digest.
  struct ShippedFolder {
    std::string digest;
    std::string folder;
    std::string archive;
  };
  std::vector<ShippedFolder> shipped;
};

// Every problem found, each "path:line:column: what is wrong", in file order.
class ManifestError : public std::runtime_error {
 public:
  explicit ManifestError(std::vector<std::string> diagnostics);
  const std::vector<std::string>& diagnostics() const noexcept { return diagnostics_; }

 private:
  std::vector<std::string> diagnostics_;
};

// Reads and validates a manifest. Throws ManifestError listing every problem. With `triggers`,
// each pipeline's trigger is also made once, so that what only its plugin checks (an ensemble's
// members) is refused at load too.
Manifest load_manifest(const std::string& path, const PluginRegistry& plugins,
                       const HostTriggerServices* triggers = nullptr);
Manifest parse_manifest(std::string_view text, std::string_view path, const PluginRegistry& plugins,
                        const HostTriggerServices* triggers = nullptr);

// What is valid but likely a mistake, "path:line:column: warning: ...": each allowed_hosts entry
// that names neither a [hosts.NAME] of the manifest nor one of `known_hosts` (the workers a
// coordinator has seen). Such a job waits until a host of that name claims.
std::vector<std::string> manifest_warnings(const Manifest& m,
                                           const std::set<std::string>& known_hosts = {});

// The canonical spec of a job (see above); its id is sha256_hex of it.
std::string canonical_spec(const JobSpec& job);

}  // namespace tv::fleet
