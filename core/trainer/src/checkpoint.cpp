#include "checkpoint.hpp"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <stdexcept>
#include <system_error>
#include <vector>

#include "bundle_file.hpp"
#include "live_config.hpp"
#include "stream_window.hpp"
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

json params_json(const plugin::Params& params) {
  json out = json::object();
  for (const auto& [k, v] : params)
    out[k] = value_json(v);
  return out;
}

// Why a bundle's header is not of `expected`'s model and parameters; empty when it is.
std::string model_mismatch(const json& header, const BundleHeader& expected) {
  const std::string model = header.at("model").get<std::string>();
  if (model != expected.model)
    return "it is a bundle of model '" + model + "', not '" + expected.model + "'";
  const json& given = header.at("model_params");
  const json wanted = params_json(expected.model_params);
  for (const auto& [key, value] : wanted.items()) {
    if (!given.contains(key)) return "it records no model parameter '" + key + "'";
    if (given[key] != value) {
      return "its model parameter " + key + " is " + given[key].dump() + ", this run's is " +
             value.dump();
    }
  }
  for (const auto& [key, value] : given.items()) {
    if (!wanted.contains(key))
      return "its model parameter '" + key + "' is not one of model '" + model + "'";
  }
  return {};
}

// The tensors of a bundle by name, checked against the module's, as (target, source) pairs.
// The sources point into `blob`, the bundle's bytes after its header.
std::vector<std::pair<torch::Tensor, torch::Tensor>> matched_tensors(
    const json& header, torch::nn::Module& module, std::string& blob,
    const std::function<BadInput(const std::string&)>& bad) {
  std::map<std::string, json> listed;
  for (const json& t : header.at("tensors"))
    listed[t.at("name").get<std::string>()] = t;
  std::vector<std::pair<torch::Tensor, torch::Tensor>> out;
  const auto match = [&](const std::string& name, const torch::Tensor& target) {
    const auto it = listed.find(name);
    if (it == listed.end()) throw bad("it has no tensor " + name);
    const json& t = it->second;
    const auto shape = t.at("shape").get<std::vector<std::int64_t>>();
    if (shape != target.sizes().vec()) {
      throw bad("its tensor " + name + " has shape " + shape_text(shape) + ", the model's " +
                shape_text(target.sizes().vec()));
    }
    const std::string dtype = t.at("dtype").get<std::string>();
    const std::string wanted(target.dtype().name());
    if (dtype != wanted)
      throw bad("its tensor " + name + " is " + dtype + ", the model's " + wanted);
    const auto offset = t.at("offset").get<std::uint64_t>();
    const auto bytes = t.at("bytes").get<std::uint64_t>();
    if (bytes != static_cast<std::uint64_t>(target.numel() * target.element_size()) ||
        offset > blob.size() || bytes > blob.size() - offset) {
      throw bad("corrupt: its tensor " + name + " does not fit its place in the file");
    }
    out.emplace_back(target, torch::from_blob(blob.data() + offset, shape, target.dtype()));
    listed.erase(it);
  };
  for (const auto& p : module.named_parameters())
    match(p.key(), p.value());
  for (const auto& b : module.named_buffers())
    match("buffer:" + b.key(), b.value());
  if (!listed.empty()) throw bad("it has a tensor the model lacks: " + listed.begin()->first);
  return out;
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

void load_bundle_weights(const fs::path& bundle, const std::string& flag,
                         const BundleHeader& expected, torch::nn::Module& module) {
  const BundleFile file = read_bundle_file(bundle, flag);
  const auto bad = [&](const std::string& why) {
    return BadInput(flag + " " + bundle.string() + ": " + why);
  };
  std::ifstream in(bundle, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(file.tensors_offset));
  std::string blob((std::istreambuf_iterator<char>(in)), {});
  std::vector<std::pair<torch::Tensor, torch::Tensor>> pairs;
  try {
    if (const std::string why = model_mismatch(file.header, expected); !why.empty()) throw bad(why);
    pairs = matched_tensors(file.header, module, blob, bad);
  } catch (const json::exception& e) {
    throw bad(std::string("corrupt header: ") + e.what());
  }
  // Every tensor checked before the first copy: a refused bundle leaves the module as it was.
  torch::NoGradGuard no_grad;
  for (auto& [target, source] : pairs)
    target.copy_(source);
}

}  // namespace tv::trainer
