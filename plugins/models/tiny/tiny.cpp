// `tiny`: a small classifier on synthetic data that trains in well under a second, for tests.
// The data are Gaussian points labelled by a fixed random linear teacher, so the task is
// learnable and deterministic for a seed. `nan_samples` makes that many training samples NaN, as a
// corrupt record in real data would: the batches holding one have a NaN loss (the trainer must
// skip their update); it is 0 unless a test asks for it.
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

struct TinyNet : torch::nn::Module {
  TinyNet(std::int64_t features, std::int64_t hidden, std::int64_t classes, double dropout)
      : fc1(register_module("fc1", torch::nn::Linear(features, hidden))),
        drop(register_module("drop", torch::nn::Dropout(dropout))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, classes))) {}
  torch::nn::Linear fc1;
  torch::nn::Dropout drop;
  torch::nn::Linear fc2;
};

class Tiny final : public Model {
 public:
  explicit Tiny(const Params& p)
      : net_(std::make_shared<TinyNet>(
            std::get<std::int64_t>(p.at("features")), std::get<std::int64_t>(p.at("hidden")),
            std::get<std::int64_t>(p.at("classes")), std::get<double>(p.at("dropout")))) {}
  std::shared_ptr<torch::nn::Module> module() override { return net_; }
  at::Tensor forward(const at::Tensor& x) override {
    return net_->fc2->forward(net_->drop->forward(torch::relu(net_->fc1->forward(x))));
  }
  // The hidden layer's activations, what fc2 classifies.
  bool embed(const at::Tensor& x, at::Tensor& out) override {
    out = torch::relu(net_->fc1->forward(x));
    return true;
  }
  bool set_dropout(double p) override {
    net_->drop->options.p(p);
    return true;
  }

 private:
  std::shared_ptr<TinyNet> net_;
};

class Synthetic final : public Dataset {
 public:
  Synthetic(const Params& p, const DataOptions& o) {
    const auto features = std::get<std::int64_t>(p.at("features"));
    classes_ = std::get<std::int64_t>(p.at("classes"));
    auto gen = at::detail::createCPUGenerator(o.seed + 7919);
    const auto teacher = torch::randn({features, classes_}, gen);
    const auto make = [&](std::int64_t n, at::Tensor& x, at::Tensor& y) {
      x = torch::randn({n, features}, gen);
      y = (x.matmul(teacher) + 0.3 * torch::randn({n, classes_}, gen)).argmax(1);
    };
    std::int64_t train = std::get<std::int64_t>(p.at("samples"));
    std::int64_t val = std::max<std::int64_t>(train / 4, 1);
    if (o.max_train_samples > 0) train = std::min(train, o.max_train_samples);
    if (o.max_val_samples > 0) val = std::min(val, o.max_val_samples);
    make(train, train_x_, train_y_);
    const std::int64_t poisoned = std::min(std::get<std::int64_t>(p.at("nan_samples")), train);
    if (poisoned > 0) train_x_.slice(0, 0, poisoned).fill_(NAN);
    make(val, val_x_, val_y_);
  }
  const at::Tensor& train_inputs() const override { return train_x_; }
  const at::Tensor& train_targets() const override { return train_y_; }
  const at::Tensor& val_inputs() const override { return val_x_; }
  const at::Tensor& val_targets() const override { return val_y_; }
  std::int64_t num_classes() const override { return classes_; }
  std::string describe() const override {
    return "synthetic: " + std::to_string(train_x_.size(0)) + " train, " +
           std::to_string(val_x_.size(0)) + " validation, " + std::to_string(train_x_.size(1)) +
           " features";
  }

 private:
  std::int64_t classes_ = 0;
  at::Tensor train_x_, train_y_, val_x_, val_y_;
};

class TinyPlugin final : public ModelPlugin {
 public:
  Descriptor describe() const override {
    return {
        Kind::kModel,
        "tiny",
        "1.0.0",
        "small classifier on synthetic data; trains in well under a second",
        {{"features", ParamType::kInt64, std::int64_t{16}, 1.0, 1024.0, {}, "input features"},
         {"hidden", ParamType::kInt64, std::int64_t{32}, 1.0, 1024.0, {}, "hidden units"},
         {"classes", ParamType::kInt64, std::int64_t{4}, 2.0, 100.0, {}, "classes"},
         {"samples", ParamType::kInt64, std::int64_t{512}, 8.0, 1000000.0, {}, "training samples"},
         {"dropout", ParamType::kFloat64, 0.0, 0.0, 0.95, {}, "initial dropout"},
         {"nan_samples",
          ParamType::kInt64,
          std::int64_t{0},
          0.0,
          1000000.0,
          {},
          "training samples made NaN, as corrupt records (tests of non-finite losses)"}}};
  }
  bool has_embeddings() const override { return true; }
  std::unique_ptr<Model> build(const Params& params, std::string& error) override {
    try {
      return std::make_unique<Tiny>(params);
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
  }
  std::unique_ptr<Dataset> load_data(const Params& params, const DataOptions& options,
                                     const HostServices&, std::string& error) override {
    try {
      return std::make_unique<Synthetic>(params, options);
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
  }
};

}  // namespace

TRAINVISOR_PLUGIN(TinyPlugin)
