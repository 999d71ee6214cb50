#include "checkpoint.hpp"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "live_config.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The files inside a checkpoint folder, beside JobFolder::checkpoint_state().
constexpr const char* kModelFile = "model.pt";
constexpr const char* kOptimizerFile = "optimizer.pt";

// Puts the complete checkpoint `tmp` in place of `dir` in one step (an atomic exchange), so a
// trainer killed at any moment, SIGKILL after a grace period included, leaves either the
// previous checkpoint or the new one, never none and never a mix of both.
void replace_checkpoint(const fs::path& tmp, const fs::path& dir) {
  if (!fs::exists(dir)) {
    fs::rename(tmp, dir);
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) == 0) {
    fs::remove_all(tmp);  // the previous checkpoint
    return;
  }
  if (errno != EINVAL && errno != ENOSYS) {
    throw std::system_error(errno, std::generic_category(),
                            "cannot put " + tmp.string() + " in place of " + dir.string());
  }
  // A file system without the exchange: the previous checkpoint goes first.
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

}  // namespace

void write_checkpoint(const JobFolder& folder, const std::shared_ptr<torch::nn::Module>& module,
                      torch::optim::Optimizer& optimizer, const CheckpointState& state) {
  const fs::path tmp = folder.checkpoint_staging();
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  torch::save(module, (tmp / kModelFile).string());
  torch::save(optimizer, (tmp / kOptimizerFile).string());
  const json j = {{"step", state.step},
                  {"epoch", state.epoch},
                  {"batch_in_epoch", state.batch_in_epoch},
                  {"batch_size", state.batch_size},
                  {"optimizer", state.optimizer},
                  {"knobs", state.knobs},
                  {"config_history", state.config_history}};
  const fs::path state_file = tmp / folder.checkpoint_state().filename();
  {
    std::ofstream out(state_file);
    out << j.dump(2) << "\n";
    if (!out.flush()) throw std::runtime_error("cannot write " + state_file.string());
  }
  replace_checkpoint(tmp, folder.checkpoint());
}

json read_checkpoint_state(const JobFolder& folder) {
  const fs::path dir = folder.checkpoint();
  if (!fs::exists(folder.checkpoint_state())) {
    throw BadInput("--resume: no checkpoint in " + dir.string());
  }
  json state;
  try {
    state = json::parse(std::ifstream(folder.checkpoint_state()));
  } catch (const std::exception& e) {
    throw BadInput("--resume: unreadable checkpoint in " + dir.string() + ": " + e.what());
  }
  if (!state.is_object() || !state.contains("optimizer") || !state["optimizer"].is_string()) {
    throw BadInput("--resume: unreadable checkpoint in " + dir.string() +
                   ": state.json names no optimizer");
  }
  return state;
}

CheckpointState load_checkpoint(const JobFolder& folder, const json& state,
                                const std::shared_ptr<torch::nn::Module>& module,
                                torch::optim::Optimizer& optimizer) {
  const fs::path dir = folder.checkpoint();
  CheckpointState out;
  try {
    torch::load(module, (dir / kModelFile).string());
    torch::load(optimizer, (dir / kOptimizerFile).string());
    out.step = state.at("step");
    out.epoch = state.at("epoch");
    out.batch_in_epoch = state.at("batch_in_epoch");
    out.config_history = state.at("config_history");
    out.optimizer = state.at("optimizer");
    // Only an interrupted epoch needs the batch size it started with.
    if (out.batch_in_epoch > 0) out.batch_size = state.at("batch_size");
  } catch (const std::exception& e) {
    throw BadInput("--resume: unreadable checkpoint in " + dir.string() + ": " + e.what());
  }
  return out;
}

fs::path write_bundle(const JobFolder& folder, const BundleHeader& h, torch::nn::Module& module) {
  json header = {{"format", "trainvisor-bundle-1"},
                 {"model", h.model},
                 {"model_params", json::object()},
                 {"seed", h.seed},
                 {"data",
                  {{"max_train_samples", h.data.max_train_samples},
                   {"max_val_samples", h.data.max_val_samples}}},
                 {"metrics", h.metrics},
                 {"config_history", h.config_history},
                 {"tensors", json::array()}};
  for (const auto& [k, v] : h.model_params)
    header["model_params"][k] = value_json(v);
  std::vector<torch::Tensor> blobs;
  std::uint64_t offset = 0;
  const auto add = [&](const std::string& name, const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU).contiguous();
    const std::uint64_t bytes = static_cast<std::uint64_t>(c.numel()) * c.element_size();
    header["tensors"].push_back({{"name", name},
                                 {"dtype", std::string(c.dtype().name())},
                                 {"shape", c.sizes().vec()},
                                 {"offset", offset},
                                 {"bytes", bytes}});
    offset += bytes;
    blobs.push_back(c);
  };
  for (const auto& p : module.named_parameters())
    add(p.key(), p.value());
  for (const auto& b : module.named_buffers())
    add("buffer:" + b.key(), b.value());
  const std::string text = header.dump();
  const fs::path path = folder.bundle();
  const fs::path tmp = JobFolder::staging(path);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << "TVBUNDLE1\n" << text.size() << "\n" << text;
    for (const auto& c : blobs) {
      out.write(static_cast<const char*>(c.data_ptr()),
                static_cast<std::streamsize>(c.numel() * c.element_size()));
    }
    if (!out) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::rename(tmp, path);
  return path;
}

}  // namespace tv::trainer
