// The training loop: the model, its data, the optimizer, the steps, evaluations and the run's
// end. The live config is live_config.cpp's, checkpoints and bundles checkpoint.cpp's.
#include <dlfcn.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "checkpoint.hpp"
#include "live_config.hpp"
#include "model_inference.hpp"
#include "stream_window.hpp"
#include "trainvisor/core/idx_reader.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::atomic<bool> stop_requested{false};

std::int64_t unix_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// What the process has spent so far: CPU seconds (user and system, every thread) and wall
// seconds on a monotonic clock.
struct Spent {
  double cpu_s = 0;
  double wall_s = 0;
};

Spent spent_now() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return {
      seconds(u.ru_utime) + seconds(u.ru_stime),
      std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count()};
}

// The knobs a run starts from: the given ones, with a stream's epochs as max_epochs.
std::map<std::string, plugin::ParamValue> base_knobs(const TrainerOptions& o) {
  std::map<std::string, plugin::ParamValue> out = o.knobs;
  if (!o.stream || o.stream->epochs == 0) return out;
  const plugin::ParamValue epochs = o.stream->epochs;
  const auto [it, fresh] = out.emplace(knobs::kMaxEpochs, epochs);
  if (!fresh && it->second != epochs) {
    throw BadInput("--stream-epochs " + std::to_string(o.stream->epochs) + " and the knob " +
                   knobs::kMaxEpochs + "=" + param_value_text(it->second) +
                   " disagree: give one of them");
  }
  return out;
}

class Session final : public TrainingSession {
 public:
  explicit Session(const TrainerOptions& o) : options_(o), folder_{o.out_dir} {
    torch::set_num_threads(std::max(1, o.threads));
    // OpenBLAS keeps its own thread pool; one thread also keeps its sums in a fixed order.
    using SetThreads = void (*)(int);
    if (auto* f = reinterpret_cast<SetThreads>(::dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
      f(std::max(1, o.threads));
    }
    torch::manual_seed(o.seed);
    load_model();
    if (o.replay.empty()) {
      config_.emplace(Knobs::resolve(base_knobs(o)), o.job_id, lease_of(o));
    } else if (!o.job_id.empty() || o.resume) {
      throw BadInput("a replay of a config history reads no block and starts at step 0");
    } else {
      config_.emplace(o.replay);
    }
    telemetry_ = config_->telemetry_writer();
    if (const auto r = config_->refresh(step_); !r.refused.empty())
      log("config refused at start: " + r.refused);

    module_ = model_->module();
    // With --resume-saved-config the checkpoint's knobs replace the live ones before anything
    // reads them, the optimizer's name included.
    std::optional<json> saved;
    if (o.resume) {
      saved = read_checkpoint_state(folder_);
      if (o.resume_saved_config) config_->restore(*saved);
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
    config_->record_revision(step_);
  }

  TrainerExitCode run() override {
    const TrainerExitCode code = train();
    // How the seqlock reads of the block fared, for whoever checks that they stay bounded.
    if (const auto r = config_->read_stats()) {
      log("config reads: " + std::to_string(r->reads) + " reads, at most " +
          std::to_string(r->max_attempts) + " attempts per read (bound " +
          std::to_string(shm::kMaxReadAttempts) + "), " + std::to_string(r->retries) +
          " retries, " + std::to_string(r->fallbacks) + " fell back to the last good values");
    }
    return code;
  }

  TrainerExitCode train() {
    log("model " + options_.model + ", " + dataset_->describe() + ", optimizer " + optimizer_name_ +
        ", BLAS: " + blas_description());
    try {
      if (options_.stream && options_.stream->epochs == 0)
        return finish(TrainerExitCode::kCompleted, "no training (0 epochs)");
      while (true) {
        if (stop_requested.load()) {
          checkpoint();
          log("interrupted at step " + std::to_string(step_) + ": checkpoint written");
          return TrainerExitCode::kInterrupted;
        }
        if (const auto why = config_->block_lost()) {
          // Another host holds the job now, or the block is broken: this run must not go on
          // (nor push telemetry); its state is kept for whoever resumes the job.
          checkpoint();
          log(*why + ": stopping; checkpoint written at step " + std::to_string(step_));
          return TrainerExitCode::kInterrupted;
        }
        if (config_->agent_silent(options_.orphan_after)) {
          checkpoint();
          log("no heartbeat from the config agent for " +
              std::to_string(options_.orphan_after.count()) +
              " ms: its host is gone; checkpoint written at step " + std::to_string(step_));
          return TrainerExitCode::kInterrupted;
        }
        if (config_->applied().b(knobs::kEarlyStop))
          return finish(TrainerExitCode::kEarlyStopped, "early_stop");
        if (options_.max_steps > 0 && step_ >= options_.max_steps)
          return finish(TrainerExitCode::kCompleted, "step cap");
        if (epoch_ >= config_->applied().i(knobs::kMaxEpochs))
          return finish(TrainerExitCode::kCompleted, "max_epochs");
        step();
      }
    } catch (const std::exception& e) {
      log(std::string("failed: ") + e.what());
      return TrainerExitCode::kFailed;
    }
  }

  void step() override {
    if (!order_.defined()) start_epoch();
    const LiveConfig::Refresh refresh = config_->refresh(step_);
    if (refresh.changed) {
      apply_knobs();
      config_->record_revision(step_);
    }
    const bool refused = !refresh.refused.empty();
    if (refused) log("config refused at step " + std::to_string(step_) + ": " + refresh.refused);

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
      checkpoint();
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
  // The model plugin, its parameters, the model and its data. Throws BadInput.
  void load_model() {
    std::vector<std::string> dirs = options_.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    registry_ = PluginRegistry::load(dirs);
    const std::string& name = options_.model;
    plugin::ModelPlugin* mp = nullptr;
    try {
      mp = &registry_.model(name);
    } catch (const std::runtime_error& e) {
      throw BadInput(e.what());
    }
    try {
      model_params_ =
          resolve_params(mp->describe().params, options_.model_params, "model '" + name + "'");
    } catch (const std::invalid_argument& e) {
      throw BadInput(e.what());
    }
    if (options_.stream && !options_.stream->baseline.empty()) {
      baseline_ = build_model(*mp);
      load_bundle_weights(options_.stream->baseline, "--baseline", expected_bundle(),
                          *baseline_->module());
      // The baseline's init drew from the seeded generator: the new model starts from the seed
      // as it does without a baseline.
      torch::manual_seed(options_.seed);
    }
    model_ = build_model(*mp);
    if (options_.stream) {
      load_stream();
      return;
    }
    std::string error;
    plugin::DataOptions data = options_.data;
    data.seed = options_.seed;
    dataset_ = mp->load_data(model_params_, data, host_, error);
    if (!dataset_) throw BadInput("model '" + name + "': no data: " + error);
    if (dataset_->train_inputs().size(0) == 0)
      throw BadInput("model '" + name + "': empty training set");
  }

  std::unique_ptr<plugin::Model> build_model(plugin::ModelPlugin& mp) const {
    std::string error;
    auto model = mp.build(model_params_, error);
    if (!model) throw BadInput("model '" + options_.model + "' could not be built: " + error);
    return model;
  }

  // What a bundle this run loads must record: its model and parameters.
  BundleHeader expected_bundle() const {
    BundleHeader h;
    h.model = options_.model;
    h.model_params = model_params_;
    return h;
  }

  // The stream window as the data set, checked against the model; the starting weights.
  void load_stream() {
    const StreamData& s = *options_.stream;
    if (options_.out_dir.empty())
      throw BadInput("--segment: a pipeline training writes its evaluation.json and needs --out");
    const StreamWindow window = read_stream_window(s);
    stream_counts_ = {window.train.rows(), window.holdout_samples, window.set_samples};
    dataset_ = make_stream_dataset(window);
    check_model_takes(dataset_->val_inputs().slice(0, 0, 1), s);
    if (!s.initial_weights.empty()) {
      load_bundle_weights(s.initial_weights, "--initial-weights", expected_bundle(),
                          *model_->module());
    }
  }

  // A shape the model cannot take would otherwise fail the first step, as the trainer's own
  // failure rather than bad input.
  void check_model_takes(const torch::Tensor& sample, const StreamData& s) {
    const std::string which = "model '" + options_.model + "'";
    torch::Tensor logits;
    {
      torch::NoGradGuard no_grad;
      model_->module()->eval();
      try {
        logits = model_->forward(sample);
      } catch (const c10::Error& e) {
        throw BadInput(which + " does not take samples of --sample-shape " +
                       shape_text(s.sample_shape) + ": " + e.what_without_backtrace());
      }
      model_->module()->train();
    }
    if (logits.dim() != 2 || logits.size(1) < s.num_classes) {
      throw BadInput(which + " gives " + shape_text(logits.sizes().vec()) +
                     " class scores for one sample, not one row of at least --classes " +
                     std::to_string(s.num_classes));
    }
  }

  // The evaluation data's scores of the new model and of the baseline, in evaluation.json.
  void write_stream_evaluation() {
    const StreamData& s = *options_.stream;
    EvaluationReport r;
    r.window_begin = s.window_begin;
    r.window_end = s.window_end;
    r.train_samples = stream_counts_.train;
    r.holdout_samples = stream_counts_.holdout;
    r.set_samples = stream_counts_.set;
    r.epochs = epoch_;
    r.trained = scores_of(last_eval_);
    if (baseline_) {
      r.deployed = scores_of(evaluate_model(*baseline_, *baseline_->module(),
                                            dataset_->val_inputs(), dataset_->val_targets()));
      // Which model it was: the gate moves an alias only from the model a training was judged
      // against.
      r.deployed_model = fleet::sha256_file_hex(s.baseline);
    }
    const Spent now = spent_now();
    r.train_cpu_s = evaluation_started_.cpu_s - started_.cpu_s;
    r.train_wall_s = evaluation_started_.wall_s - started_.wall_s;
    r.eval_cpu_s = now.cpu_s - evaluation_started_.cpu_s;
    r.eval_wall_s = now.wall_s - evaluation_started_.wall_s;
    write_evaluation(folder_, r);
  }

  static Scores scores_of(const Evaluation& e) { return score(e.confusion, e.classes, e.loss); }

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

  Evaluation evaluate() {
    return evaluate_model(*model_, *module_, dataset_->val_inputs(), dataset_->val_targets());
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

  TrainerExitCode finish(TrainerExitCode code, const std::string& reason) {
    evaluation_started_ = spent_now();
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
      checkpoint();
      bundle = write_bundle(folder_,
                            {options_.model, model_params_, options_.seed, options_.data,
                             metrics(reason), config_->history()},
                            *module_)
                   .string();
      if (options_.stream) write_stream_evaluation();
    }
    const json summary = {
        {"result", code == TrainerExitCode::kEarlyStopped ? "early_stopped" : "completed"},
        {"reason", reason},
        {"steps", step_},
        {"epochs", epoch_},
        {"val_loss", last_eval_.loss},
        {"val_accuracy", last_eval_.accuracy},
        {"bundle", bundle}};
    std::printf("%s\n", summary.dump().c_str());
    std::fflush(stdout);
    log("finished (" + reason + ") at step " + std::to_string(step_));
    if (const auto unreached = config_->unreached_replay_step()) {
      log("replay: the recorded revision from step " + std::to_string(*unreached) +
          " was never reached: this run is not the recorded one (another data set?)");
    }
    return code;
  }

  // The run's end as its bundle records it.
  json metrics(const std::string& reason) const {
    return {{"steps", step_},
            {"epochs", epoch_},
            {"final_loss", std::isfinite(last_loss_) ? json(last_loss_) : json(nullptr)},
            {"val_loss", last_eval_.loss},
            {"val_accuracy", last_eval_.accuracy},
            {"stop_reason", reason}};
  }

  void checkpoint() {
    if (options_.out_dir.empty()) return;
    write_checkpoint(folder_, module_, *optimizer_,
                     {step_, epoch_, batch_in_epoch_, batch_size_, optimizer_name_,
                      config_->applied().to_json(), config_->history()});
  }

  // Weights, optimizer state, the position in the data and the config history, from the
  // checkpoint whose state.json is `state`.
  void resume(const json& state) {
    const std::string used = state["optimizer"];
    if (used != optimizer_name_) {
      throw BadInput("--resume: the checkpoint used optimizer " + used + ", the config says " +
                     optimizer_name_ +
                     " (the optimizer is chosen at start; --resume-saved-config takes the "
                     "checkpoint's)");
    }
    const CheckpointState saved = load_checkpoint(folder_, state, module_, *optimizer_);
    step_ = saved.step;
    epoch_ = saved.epoch;
    batch_in_epoch_ = saved.batch_in_epoch;
    config_->restore_history(saved.config_history);
    if (batch_in_epoch_ > 0) {
      // Rebuild the interrupted epoch's order with the batch size it started with.
      start_epoch();
      batch_size_ = saved.batch_size;
    }
    apply_knobs();
    log("resumed at step " + std::to_string(step_) + ", epoch " + std::to_string(epoch_));
  }

  void log(const std::string& line) const {
    if (options_.log) std::fprintf(stderr, "trainer: %s\n", line.c_str());
  }

  TrainerOptions options_;
  JobFolder folder_;
  // For a stream's evaluation.json: when the session began, and when its final evaluation did.
  Spent started_ = spent_now();
  Spent evaluation_started_;
  PluginRegistry registry_;
  LocalHostServices host_;
  plugin::Params model_params_;
  std::unique_ptr<plugin::Model> model_;
  std::unique_ptr<plugin::Dataset> dataset_;
  std::unique_ptr<plugin::Model> baseline_;  // the deployed model, with a stream's baseline
  struct {
    std::int64_t train = 0, holdout = 0, set = 0;
  } stream_counts_;
  std::shared_ptr<torch::nn::Module> module_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::string optimizer_name_;
  std::optional<LiveConfig> config_;
  std::optional<shm::TelemetryWriter> telemetry_;
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
  // A closed terminal hangs up its foreground group, `trainvisor local`'s trainer included.
  ::sigaction(SIGHUP, &sa, nullptr);
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
