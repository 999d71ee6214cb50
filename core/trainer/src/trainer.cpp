// The training loop. The only libtorch translation unit of the host side.
#include "trainvisor/trainer/trainer.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <torch/torch.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <system_error>

#include "trainvisor/core/idx_reader.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using plugin::ParamValue;

std::atomic<bool> stop_requested{false};

std::int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json value_json(const ParamValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

// The knob values the trainer runs with. Index order is knobs::schema() order.
struct Knobs {
  std::vector<ParamValue> values;
  double f(std::string_view key) const { return std::get<double>(values[index(key)]); }
  std::int64_t i(std::string_view key) const { return std::get<std::int64_t>(values[index(key)]); }
  bool b(std::string_view key) const { return std::get<bool>(values[index(key)]); }
  const std::string& s(std::string_view key) const {
    return std::get<std::string>(values[index(key)]);
  }
  static std::size_t index(std::string_view key) {
    const auto& s = knobs::schema();
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (s[k].key == key) return k;
    }
    throw std::logic_error("no knob " + std::string(key));
  }
  json to_json() const {
    json j = json::object();
    for (std::size_t k = 0; k < values.size(); ++k)
      j[knobs::schema()[k].key] = value_json(values[k]);
    return j;
  }
};

// The knobs as the block says, checked against the schema at every step boundary. A value out of
// range is not applied: the last good one stays and the step is flagged.
class LiveConfig {
 public:
  LiveConfig(Knobs base, std::optional<shm::ConfigBlockReader> reader)
      : applied_(std::move(base)), reader_(std::move(reader)) {
    if (!reader_) return;
    std::vector<shm::SnapshotKey> keys;
    for (std::size_t k = 0; k < applied_.values.size(); ++k) {
      keys.push_back({knobs::schema()[k].key, to_block_value(applied_.values[k])});
    }
    snapshot_.emplace(reader_->snapshot(keys));
  }

  // Refreshes from the block. Returns true when something changed; `refused` tells whether a
  // value was refused in this generation.
  bool refresh(bool& refused, std::string& why) {
    refused = false;
    if (!snapshot_) return false;
    snapshot_->read();
    if (snapshot_->generation() == seen_generation_) return false;
    seen_generation_ = snapshot_->generation();
    bool changed = false;
    const auto& schema = knobs::schema();
    for (std::size_t k = 0; k < schema.size(); ++k) {
      const ParamValue v = from_block_value((*snapshot_)[k]);
      if (v == applied_.values[k]) continue;
      const auto& spec = schema[k];
      if (const auto error = check_param_value(spec, v)) {
        refused = true;
        why = spec.key + ": " + *error + "; keeping " + param_value_text(applied_.values[k]);
        continue;
      }
      applied_.values[k] = v;
      changed = true;
    }
    return changed;
  }

  const Knobs& applied() const { return applied_; }
  Knobs& applied() { return applied_; }
  bool live() const { return reader_.has_value(); }
  shm::ConfigBlockReader* reader() { return reader_ ? &*reader_ : nullptr; }

 private:
  Knobs applied_;
  std::optional<shm::ConfigBlockReader> reader_;
  std::optional<shm::Snapshot> snapshot_;
  std::uint64_t seen_generation_ = ~std::uint64_t{0};
};

struct Evaluation {
  double loss = NAN;
  double accuracy = NAN;
};

class Session final : public TrainingSession {
 public:
  explicit Session(const TrainerOptions& o) : options_(o) {
    torch::set_num_threads(std::max(1, o.threads));
    // OpenBLAS keeps its own thread pool; one thread also keeps its sums in a fixed order.
    using SetThreads = void (*)(int);
    if (auto* f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
      f(std::max(1, o.threads));
    }
    torch::manual_seed(o.seed);
    std::vector<std::string> dirs = o.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    registry_ = PluginRegistry::load(dirs);
    plugin::ModelPlugin* mp = nullptr;
    try {
      mp = &registry_.model(o.model);
    } catch (const std::runtime_error& e) {
      throw BadInput(e.what());
    }
    try {
      model_params_ =
          resolve_params(mp->describe().params, o.model_params, "model '" + o.model + "'");
    } catch (const std::invalid_argument& e) {
      throw BadInput(e.what());
    }
    std::string error;
    model_ = mp->build(model_params_, error);
    if (!model_) throw BadInput("model '" + o.model + "' could not be built: " + error);
    plugin::DataOptions data = o.data;
    data.seed = o.seed;
    dataset_ = mp->load_data(model_params_, data, host_, error);
    if (!dataset_) throw BadInput("model '" + o.model + "': no data: " + error);
    if (dataset_->train_inputs().size(0) == 0)
      throw BadInput("model '" + o.model + "': empty training set");

    Knobs base;
    plugin::Params given;
    for (const auto& [k, v] : o.knobs)
      given[k] = v;
    try {
      const plugin::Params resolved = resolve_params(knobs::schema(), given, "trainer knobs");
      for (const auto& spec : knobs::schema())
        base.values.push_back(resolved.at(spec.key));
    } catch (const std::invalid_argument& e) {
      throw BadInput(e.what());
    }
    std::optional<shm::ConfigBlockReader> reader;
    if (!o.job_id.empty()) {
      try {
        reader.emplace(shm::ConfigBlockReader::attach(shm::block_name_for_job(o.job_id),
                                                      shm::ConfigBlockReader::Access::kReadWrite));
        telemetry_.emplace(reader->telemetry_writer());
        watch_.emplace(*reader);
      } catch (const shm::ShmError& e) {
        throw BadInput(e.what());
      }
    }
    config_.emplace(std::move(base), std::move(reader));
    bool refused = false;
    std::string why;
    config_->refresh(refused, why);
    if (refused) log("config refused at start: " + why);

    module_ = model_->module();
    // With --resume-saved-config the checkpoint's knobs replace the live ones before anything
    // reads them, the optimizer's name included.
    std::optional<json> saved;
    if (o.resume) {
      saved = read_checkpoint_state();
      if (o.resume_saved_config) restore_saved_knobs(*saved);
    }
    const Knobs& k = config_->applied();
    if (k.s(knobs::kOptimizer) == "adamw") {
      optimizer_ = std::make_unique<torch::optim::AdamW>(
          module_->parameters(), torch::optim::AdamWOptions(k.f(knobs::kLearningRate)));
    } else {
      optimizer_ = std::make_unique<torch::optim::SGD>(
          module_->parameters(), torch::optim::SGDOptions(k.f(knobs::kLearningRate)));
    }
    optimizer_name_ = k.s(knobs::kOptimizer);
    apply_knobs();
    if (saved) resume(*saved);
    record_revision();
  }

  int run() override {
    log("model " + options_.model + ", " + dataset_->describe() + ", optimizer " + optimizer_name_ +
        ", BLAS: " + blas_description());
    try {
      while (true) {
        if (stop_requested.load()) {
          write_checkpoint();
          log("interrupted at step " + std::to_string(step_) + ": checkpoint written");
          return kInterrupted;
        }
        if (orphaned()) {
          write_checkpoint();
          log("no heartbeat from the config agent for " +
              std::to_string(options_.orphan_after.count()) +
              " ms: its host is gone; checkpoint written at step " + std::to_string(step_));
          return kInterrupted;
        }
        if (config_->applied().b(knobs::kEarlyStop)) return finish(kEarlyStopped, "early_stop");
        if (options_.max_steps > 0 && step_ >= options_.max_steps)
          return finish(kCompleted, "step cap");
        if (epoch_ >= max_epochs()) return finish(kCompleted, "max_epochs");
        step();
      }
    } catch (const std::exception& e) {
      log(std::string("failed: ") + e.what());
      return kFailed;
    }
  }

  void step() override {
    if (!order_.defined()) start_epoch();
    bool refused = false;
    std::string why;
    if (config_->refresh(refused, why)) {
      apply_knobs();
      record_revision();
    }
    if (refused) log("config refused at step " + std::to_string(step_) + ": " + why);

    const auto t0 = std::chrono::steady_clock::now();
    const std::int64_t n = order_.size(0);
    const std::int64_t begin = batch_in_epoch_ * batch_size_;
    const std::int64_t end = std::min(begin + batch_size_, n);
    const auto idx = order_.slice(0, begin, end);
    const auto x = dataset_->train_inputs().index_select(0, idx);
    const auto y = dataset_->train_targets().index_select(0, idx);

    module_->train();
    optimizer_->zero_grad();
    const auto loss = torch::nn::functional::cross_entropy(model_->forward(x), y);
    const double loss_value = loss.item<double>();
    std::uint32_t flags = refused ? std::uint32_t{plugin::kTelemetryConfigRefused} : 0u;
    double grad_norm = NAN;
    if (std::isfinite(loss_value)) {
      loss.backward();
      const double clip = config_->applied().f(knobs::kGradClipMax);
      grad_norm =
          torch::nn::utils::clip_grad_norm_(module_->parameters(), clip > 0 ? clip : INFINITY);
      if (std::isfinite(grad_norm)) {
        optimizer_->step();
      } else {
        flags |= plugin::kTelemetryNonFiniteLoss;
      }
    } else {
      flags |= plugin::kTelemetryNonFiniteLoss;  // skip the update, keep the weights
    }
    ++step_;
    ++batch_in_epoch_;
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    last_loss_ = loss_value;
    last_grad_norm_ = grad_norm;

    const bool epoch_end = end >= n;
    const std::int64_t eval_every = config_->applied().i(knobs::kEvalEvery);
    const bool eval = (eval_every > 0 && step_ % eval_every == 0) || (eval_every == 0 && epoch_end);
    shm::TelemetryRecord r = record_of_step();
    r.samples_per_sec = secs > 0 ? static_cast<double>(end - begin) / secs : NAN;
    if (eval) {
      last_eval_ = evaluate();
      last_eval_step_ = step_;
      r.val_loss = last_eval_.loss;
      r.val_accuracy = last_eval_.accuracy;
      flags |= plugin::kTelemetryEval;
    }
    if (epoch_end) flags |= plugin::kTelemetryEpochEnd;
    const std::int64_t ckpt_every = config_->applied().i(knobs::kCheckpointEvery);
    if (ckpt_every > 0 && step_ % ckpt_every == 0 && !options_.out_dir.empty()) {
      write_checkpoint();
      flags |= plugin::kTelemetryCheckpoint;
    }
    r.flags = flags;
    if (telemetry_) telemetry_->push(r);
    if (epoch_end) {
      if (options_.log) {
        char line[160];
        std::snprintf(
            line, sizeof line,
            "epoch %lld done at step %lld: loss %.4f, val_loss %.4f, val_accuracy %.4f, lr %g",
            static_cast<long long>(epoch_), static_cast<long long>(step_), loss_value,
            last_eval_.loss, last_eval_.accuracy, r.learning_rate);
        log(line);
      }
      ++epoch_;
      batch_in_epoch_ = 0;
      order_ = torch::Tensor();
    }
  }

  std::int64_t steps_done() const override { return step_; }

 private:
  std::int64_t max_epochs() const {
    std::int64_t m = config_->applied().i(knobs::kMaxEpochs);
    if (options_.max_epochs > 0) m = std::min(m, options_.max_epochs);
    return m;
  }

  // The batch size and the order of an epoch are fixed at its start, from the seed and the
  // epoch number alone, so a resumed run sees the same batches.
  void start_epoch() {
    batch_size_ = config_->applied().i(knobs::kBatchSize);
    auto gen = at::detail::createCPUGenerator(options_.seed * 1000003 +
                                              static_cast<std::uint64_t>(epoch_));
    order_ = torch::randperm(dataset_->train_inputs().size(0), gen, torch::kInt64);
  }

  void apply_knobs() {
    const Knobs& k = config_->applied();
    for (auto& group : optimizer_->param_groups()) {
      if (auto* sgd = dynamic_cast<torch::optim::SGDOptions*>(&group.options())) {
        sgd->lr(k.f(knobs::kLearningRate));
        sgd->momentum(k.f(knobs::kMomentum));
        sgd->weight_decay(k.f(knobs::kWeightDecay));
      } else if (auto* adamw = dynamic_cast<torch::optim::AdamWOptions*>(&group.options())) {
        adamw->lr(k.f(knobs::kLearningRate));
        adamw->weight_decay(k.f(knobs::kWeightDecay));
      }
    }
    model_->set_dropout(k.f(knobs::kDropout));
  }

  // The config history: each revision and the step from which it applied.
  void record_revision() {
    const std::int64_t rev = config_->applied().i(knobs::kRevision);
    if (!history_.empty() && history_.back()["revision"] == rev) {
      history_.back()["knobs"] = config_->applied().to_json();
      return;
    }
    history_.push_back(
        {{"revision", rev}, {"step", step_}, {"knobs", config_->applied().to_json()}});
  }

  Evaluation evaluate() {
    torch::NoGradGuard no_grad;
    module_->eval();
    const auto& xs = dataset_->val_inputs();
    const auto& ys = dataset_->val_targets();
    const std::int64_t n = xs.size(0);
    double loss_sum = 0;
    std::int64_t correct = 0;
    for (std::int64_t b = 0; b < n; b += 1000) {
      const auto x = xs.slice(0, b, std::min(b + 1000, n));
      const auto y = ys.slice(0, b, std::min(b + 1000, n));
      const auto logits = model_->forward(x);
      loss_sum +=
          torch::nn::functional::cross_entropy(
              logits, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
              .item<double>();
      correct += logits.argmax(1).eq(y).sum().item<std::int64_t>();
    }
    module_->train();
    return {loss_sum / static_cast<double>(n),
            static_cast<double>(correct) / static_cast<double>(n)};
  }

  // A record of the step just taken, with the knobs it ran on.
  shm::TelemetryRecord record_of_step() const {
    shm::TelemetryRecord r;
    r.step = static_cast<std::uint64_t>(step_);
    r.epoch = static_cast<std::uint32_t>(epoch_);
    r.wall_time_ns = unix_ns();
    r.loss = last_loss_;
    r.grad_norm = last_grad_norm_;
    r.learning_rate = config_->applied().f(knobs::kLearningRate);
    r.config_revision = static_cast<std::uint64_t>(config_->applied().i(knobs::kRevision));
    return r;
  }

  int finish(int code, const std::string& reason) {
    if (last_eval_step_ != step_) last_eval_ = evaluate();
    last_eval_step_ = step_;
    if (telemetry_) {
      // The same step as the last training record: its loss and gradient norm, not "unknown".
      shm::TelemetryRecord r = record_of_step();
      r.val_loss = last_eval_.loss;
      r.val_accuracy = last_eval_.accuracy;
      r.flags = plugin::kTelemetryEval | plugin::kTelemetryFinished;
      telemetry_->push(r);
    }
    std::string bundle;
    if (!options_.out_dir.empty()) {
      write_checkpoint();
      bundle = write_bundle(reason);
    }
    const json summary = {{"result", code == kEarlyStopped ? "early_stopped" : "completed"},
                          {"reason", reason},
                          {"steps", step_},
                          {"epochs", epoch_},
                          {"val_loss", last_eval_.loss},
                          {"val_accuracy", last_eval_.accuracy},
                          {"bundle", bundle}};
    std::printf("%s\n", summary.dump().c_str());
    std::fflush(stdout);
    log("finished (" + reason + ") at step " + std::to_string(step_));
    return code;
  }

  // Weights, final metrics and config history, byte-identical for identical inputs and seed:
  // JSON with sorted keys and no clock readings, then the raw tensors in a fixed order.
  std::string write_bundle(const std::string& reason) {
    json header = {{"format", "trainvisor-bundle-1"},
                   {"model", options_.model},
                   {"model_params", json::object()},
                   {"seed", options_.seed},
                   {"metrics",
                    {{"steps", step_},
                     {"epochs", epoch_},
                     {"final_loss", std::isfinite(last_loss_) ? json(last_loss_) : json(nullptr)},
                     {"val_loss", last_eval_.loss},
                     {"val_accuracy", last_eval_.accuracy},
                     {"stop_reason", reason}}},
                   {"config_history", history_},
                   {"tensors", json::array()}};
    for (const auto& [k, v] : model_params_)
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
    for (const auto& p : module_->named_parameters())
      add(p.key(), p.value());
    for (const auto& b : module_->named_buffers())
      add("buffer:" + b.key(), b.value());
    const std::string text = header.dump();
    const fs::path path = fs::path(options_.out_dir) / "bundle.tvb";
    const fs::path tmp = fs::path(options_.out_dir) / "bundle.tvb.tmp";
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
    return path.string();
  }

  void write_checkpoint() {
    if (options_.out_dir.empty()) return;
    const fs::path dir = fs::path(options_.out_dir) / "checkpoint";
    const fs::path tmp = fs::path(options_.out_dir) / "checkpoint.tmp";
    fs::remove_all(tmp);
    fs::create_directories(tmp);
    torch::save(module_, (tmp / "model.pt").string());
    torch::save(*optimizer_, (tmp / "optimizer.pt").string());
    const json state = {{"step", step_},
                        {"epoch", epoch_},
                        {"batch_in_epoch", batch_in_epoch_},
                        {"batch_size", batch_size_},
                        {"optimizer", optimizer_name_},
                        {"knobs", config_->applied().to_json()},
                        {"config_history", history_}};
    {
      std::ofstream out(tmp / "state.json");
      out << state.dump(2) << "\n";
      if (!out.flush()) throw std::runtime_error("cannot write " + (tmp / "state.json").string());
    }
    replace_checkpoint(tmp, dir);
  }

  // Puts the complete checkpoint `tmp` in place of `dir` in one step (an atomic exchange), so a
  // trainer killed at any moment, SIGKILL after a grace period included, leaves either the
  // previous checkpoint or the new one, never none and never a mix of both.
  static void replace_checkpoint(const fs::path& tmp, const fs::path& dir) {
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

  // The checkpoint's state.json; BadInput when there is none or it cannot be read.
  json read_checkpoint_state() const {
    const fs::path dir = fs::path(options_.out_dir) / "checkpoint";
    if (!fs::exists(dir / "state.json")) {
      throw BadInput("--resume: no checkpoint in " + dir.string());
    }
    json state;
    try {
      state = json::parse(std::ifstream(dir / "state.json"));
    } catch (const std::exception& e) {
      throw BadInput("--resume: unreadable checkpoint in " + dir.string() + ": " + e.what());
    }
    if (!state.is_object() || !state.contains("optimizer") || !state["optimizer"].is_string()) {
      throw BadInput("--resume: unreadable checkpoint in " + dir.string() +
                     ": state.json names no optimizer");
    }
    return state;
  }

  // --resume-saved-config: the knobs the checkpoint was written with replace the live ones.
  void restore_saved_knobs(const json& state) {
    try {
      const json& saved = state.at("knobs");
      for (std::size_t k = 0; k < knobs::schema().size(); ++k) {
        const auto& key = knobs::schema()[k].key;
        if (!saved.contains(key)) continue;
        const json& v = saved[key];
        ParamValue& slot = config_->applied().values[k];
        if (std::holds_alternative<double>(slot))
          slot = v.get<double>();
        else if (std::holds_alternative<std::int64_t>(slot))
          slot = v.get<std::int64_t>();
        else if (std::holds_alternative<bool>(slot))
          slot = v.get<bool>();
        else
          slot = v.get<std::string>();
      }
    } catch (const json::exception& e) {
      throw BadInput("--resume-saved-config: unreadable knobs in the checkpoint: " +
                     std::string(e.what()));
    }
  }

  // Weights, optimizer state (momentum buffers, Adam moments and step counts), the position in
  // the data and the config history, from the checkpoint whose state.json is `state`.
  void resume(const json& state) {
    const fs::path dir = fs::path(options_.out_dir) / "checkpoint";
    const std::string used = state["optimizer"];
    if (used != optimizer_name_) {
      throw BadInput("--resume: the checkpoint used optimizer " + used + ", the config says " +
                     optimizer_name_ +
                     " (the optimizer is chosen at start; --resume-saved-config takes the "
                     "checkpoint's)");
    }
    try {
      torch::load(module_, (dir / "model.pt").string());
      torch::load(*optimizer_, (dir / "optimizer.pt").string());
      step_ = state.at("step");
      epoch_ = state.at("epoch");
      batch_in_epoch_ = state.at("batch_in_epoch");
      history_ = state.at("config_history");
      if (batch_in_epoch_ > 0) {
        // Rebuild the interrupted epoch's order with the batch size it started with.
        start_epoch();
        batch_size_ = state.at("batch_size");
      }
    } catch (const std::exception& e) {
      throw BadInput("--resume: unreadable checkpoint in " + dir.string() + ": " + e.what());
    }
    apply_knobs();
    log("resumed at step " + std::to_string(step_) + ", epoch " + std::to_string(epoch_));
  }

  void log(const std::string& line) const {
    if (options_.log) std::fprintf(stderr, "trainer: %s\n", line.c_str());
  }

  TrainerOptions options_;
  PluginRegistry registry_;
  LocalHostServices host_;
  plugin::Params model_params_;
  std::unique_ptr<plugin::Model> model_;
  std::unique_ptr<plugin::Dataset> dataset_;
  std::shared_ptr<torch::nn::Module> module_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::string optimizer_name_;
  std::optional<LiveConfig> config_;
  std::optional<shm::TelemetryWriter> telemetry_;
  std::optional<shm::ConfigBlockReader> watch_;  // for the agent's heartbeat
  std::chrono::steady_clock::time_point next_watch_{};

  // True once the block's heartbeat is older than orphan_after (checked about once a second: a
  // header read, not a per-step cost).
  bool orphaned() {
    if (!watch_ || options_.orphan_after.count() <= 0) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now < next_watch_) return false;
    next_watch_ = now + std::chrono::seconds(1);
    const std::uint64_t beat = watch_->info().heartbeat_unix_ns;
    const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
    if (beat == 0) return false;  // a writer that never beats is not watched
    return wall - static_cast<std::int64_t>(beat) >
           std::chrono::duration_cast<std::chrono::nanoseconds>(options_.orphan_after).count();
  }
  json history_ = json::array();
  torch::Tensor order_;
  std::int64_t batch_size_ = 64;
  std::int64_t step_ = 0;
  std::int64_t epoch_ = 0;
  std::int64_t batch_in_epoch_ = 0;
  double last_loss_ = NAN;
  double last_grad_norm_ = NAN;
  Evaluation last_eval_;
  std::int64_t last_eval_step_ = -1;
};

}  // namespace

std::unique_ptr<TrainingSession> TrainingSession::open(const TrainerOptions& options) {
  try {
    return std::make_unique<Session>(options);
  } catch (const BadInput&) {
    throw;
  } catch (const c10::Error& e) {
    throw BadInput(std::string("libtorch: ") + e.what_without_backtrace());
  }
}

void install_sigterm_handler() {
  struct sigaction sa {};
  sa.sa_handler = [](int) { stop_requested.store(true); };
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
}

std::string blas_description() {
  std::string out;
  using ConfigFn = char* (*)();
  if (auto* fn = reinterpret_cast<ConfigFn>(::dlsym(RTLD_DEFAULT, "openblas_get_config"))) {
    out = fn();
  }
  if (void* sym = ::dlsym(RTLD_DEFAULT, "dgemm_")) {
    Dl_info info{};
    if (::dladdr(sym, &info) != 0 && info.dli_fname != nullptr) {
      const std::string lib = fs::weakly_canonical(info.dli_fname).string();
      if (out.empty()) {
        out = lib.find("openblas") != std::string::npos
                  ? "OpenBLAS"
                  : "reference BLAS (slow: install libopenblas0-pthread)";
      }
      out += " (" + lib + ")";
    }
  }
  return out.empty() ? "unknown" : out;
}

}  // namespace tv::trainer
