// `cnn`: a small convolutional network on Fashion-MNIST (two conv/pool stages, one hidden
// fully-connected layer with dropout).
#include <torch/torch.h>

#include "../fashion_mnist_data.hpp"
#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

struct CnnNet : torch::nn::Module {
  CnnNet(std::int64_t c1, std::int64_t c2, std::int64_t hidden, double dropout)
      : conv1(register_module("conv1",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(1, c1, 5).padding(2)))),
        conv2(register_module("conv2",
                              torch::nn::Conv2d(torch::nn::Conv2dOptions(c1, c2, 5).padding(2)))),
        fc1(register_module("fc1", torch::nn::Linear(c2 * 7 * 7, hidden))),
        drop(register_module("drop", torch::nn::Dropout(dropout))),
        fc2(register_module("fc2", torch::nn::Linear(hidden, 10))) {}
  // What fc2 classifies (before dropout).
  at::Tensor features(const at::Tensor& x) {
    auto h = torch::max_pool2d(torch::relu(conv1->forward(x)), 2);
    h = torch::max_pool2d(torch::relu(conv2->forward(h)), 2);
    return torch::relu(fc1->forward(h.flatten(1)));
  }
  at::Tensor forward(const at::Tensor& x) { return fc2->forward(drop->forward(features(x))); }
  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1;
  torch::nn::Dropout drop;
  torch::nn::Linear fc2;
};

class Cnn final : public Model {
 public:
  explicit Cnn(const Params& p)
      : net_(std::make_shared<CnnNet>(
            std::get<std::int64_t>(p.at("channels1")), std::get<std::int64_t>(p.at("channels2")),
            std::get<std::int64_t>(p.at("hidden")), std::get<double>(p.at("dropout")))) {}
  std::shared_ptr<torch::nn::Module> module() override { return net_; }
  at::Tensor forward(const at::Tensor& x) override {
    return net_->forward(x.reshape({-1, 1, 28, 28}));
  }
  bool embed(const at::Tensor& x, at::Tensor& out) override {
    out = net_->features(x.reshape({-1, 1, 28, 28}));
    return true;
  }
  bool set_dropout(double p) override {
    net_->drop->options.p(p);
    return true;
  }

 private:
  std::shared_ptr<CnnNet> net_;
};

class CnnPlugin final : public ModelPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kModel,
            "cnn",
            "1.0.0",
            "two-stage convolutional network on Fashion-MNIST",
            {{"channels1",
              ParamType::kInt64,
              std::int64_t{16},
              1.0,
              256.0,
              {},
              "filters of the first 5x5 convolution"},
             {"channels2",
              ParamType::kInt64,
              std::int64_t{32},
              1.0,
              512.0,
              {},
              "filters of the second 5x5 convolution"},
             {"hidden",
              ParamType::kInt64,
              std::int64_t{128},
              8.0,
              4096.0,
              {},
              "width of the fully-connected layer"},
             {"dropout",
              ParamType::kFloat64,
              0.25,
              0.0,
              0.95,
              {},
              "initial dropout (live knob: training/regularization/dropout)"}}};
  }
  bool has_embeddings() const override { return true; }
  std::unique_ptr<Model> build(const Params& params, std::string& error) override {
    return tv::models::guarded(
        error, [&]() -> std::unique_ptr<Model> { return std::make_unique<Cnn>(params); });
  }
  std::unique_ptr<Dataset> load_data(const Params&, const DataOptions& options,
                                     const HostServices& host, std::string& error) override {
    return tv::models::guarded(error, [&]() -> std::unique_ptr<Dataset> {
      return tv::models::FashionMnist::load(options, host, {1, 28, 28}, error);
    });
  }
};

}  // namespace

TRAINVISOR_PLUGIN(CnnPlugin)
