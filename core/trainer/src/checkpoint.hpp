// Checkpoints and bundles in a job's folder (trainvisor/core/job_folder.hpp).
//
// - A checkpoint is a folder (weights, optimizer state, state.json) written beside the current
//   one and put in its place in one step, so a trainer killed at any moment leaves the previous
//   checkpoint or the new one, never none and never a mix.
// - A bundle is the trained model: JSON (sorted keys, no clock readings, no host paths) then the
//   raw tensors in a fixed order, byte-identical for identical inputs and seed. Its JSON records
//   what --replay-config needs to run it again (recorded_run.hpp reads it).
//
// Private to tv_trainer, for its libtorch translation units. Single-threaded. A checkpoint or
// bundle that cannot be read back throws BadInput; one that cannot be written throws
// std::runtime_error (or std::system_error, std::filesystem::filesystem_error).
#pragma once

// The parts of libtorch a checkpoint needs, not torch/torch.h: this TU compiles in about half the
// time and memory.
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::trainer {

// What a checkpoint records beside the tensors: where the run is, and its config.
struct CheckpointState {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::int64_t batch_in_epoch = 0;
  std::int64_t batch_size = 0;  // of the epoch in progress
  std::string optimizer;        // its name, chosen at start
  nlohmann::json knobs;         // the applied knobs (written; read back by LiveConfig::restore)
  nlohmann::json config_history;
};

void write_checkpoint(const JobFolder& folder, const std::shared_ptr<torch::nn::Module>& module,
                      torch::optim::Optimizer& optimizer, const CheckpointState& state);

// The checkpoint's state.json, which names an optimizer; BadInput when there is none or it cannot
// be read.
nlohmann::json read_checkpoint_state(const JobFolder& folder);

// Loads the checkpoint's weights and optimizer state (momentum buffers, Adam moments and step
// counts) and returns its position and config history; `state` is its state.json. BadInput when
// it cannot be read.
CheckpointState load_checkpoint(const JobFolder& folder, const nlohmann::json& state,
                                const std::shared_ptr<torch::nn::Module>& module,
                                torch::optim::Optimizer& optimizer);

// What a bundle says about the model besides its tensors.
struct BundleHeader {
  std::string model;
  plugin::Params model_params;
  std::uint64_t seed = 0;
  // The sample caps; the data directory is left out, a path that differs between hosts.
  plugin::DataOptions data;
  nlohmann::json metrics;
  nlohmann::json config_history;
};

// Writes folder.bundle() (through a staging file renamed over it) and returns its path.
std::filesystem::path write_bundle(const JobFolder& folder, const BundleHeader& header,
                                   torch::nn::Module& module);

// Copies the weights of `bundle` into `module`. The bundle must be of `expected`'s model and
// parameters and hold exactly the module's parameters and buffers, each with its shape and dtype;
// anything else is a BadInput that starts with `flag` and the path, and `module` is left as it
// was.
void load_bundle_weights(const std::filesystem::path& bundle, const std::string& flag,
                         const BundleHeader& expected, torch::nn::Module& module);

}  // namespace tv::trainer
