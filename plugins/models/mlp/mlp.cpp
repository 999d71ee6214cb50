// `mlp`: a multi-layer perceptron on Fashion-MNIST. Hidden layers of equal width with ReLU and
// dropout; the live dropout knob reaches every dropout layer.
#include <torch/torch.h>

#include "../fashion_mnist_data.hpp"
#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

struct MlpNet : torch::nn::Module {
  MlpNet(std::int64_t hidden, std::int64_t layers, double dropout) {
    std::int64_t in = 28 * 28;
    for (std::int64_t i = 0; i < layers; ++i) {
      body->push_back(torch::nn::Linear(in, hidden));
      body->push_back(torch::nn::ReLU());
      dropouts.push_back(torch::nn::Dropout(dropout));
      body->push_back(dropouts.back());
      in = hidden;
    }
    body->push_back(torch::nn::Linear(in, 10));
    register_module("body", body);
  }
  torch::nn::Sequential body;
  std::vector<torch::nn::Dropout> dropouts;
};

class Mlp final : public Model {
 public:
  explicit Mlp(const Params& p)
      : net_(std::make_shared<MlpNet>(std::get<std::int64_t>(p.at("hidden")),
                                      std::get<std::int64_t>(p.at("layers")),
                                      std::get<double>(p.at("dropout")))) {}
  std::shared_ptr<torch::nn::Module> module() override { return net_; }
  at::Tensor forward(const at::Tensor& x) override { return net_->body->forward(x.flatten(1)); }
  bool set_dropout(double p) override { return tv::models::set_dropout_all(net_->dropouts, p); }
  // The last hidden layer's activations: every module of the body but the final Linear.
  bool embed(const at::Tensor& x, at::Tensor& out) override {
    at::Tensor h = x.flatten(1);
    const std::size_t last = net_->body->size() - 1;
    std::size_t i = 0;
    for (torch::nn::AnyModule& m : *net_->body) {
      if (i++ == last) break;
      h = m.forward(h);
    }
    out = h;
    return true;
  }

 private:
  std::shared_ptr<MlpNet> net_;
};

class MlpPlugin final : public ModelPlugin {
 public:
  Descriptor describe() const override {
    return {
        Kind::kModel,
        "mlp",
        "1.0.0",
        "multi-layer perceptron on Fashion-MNIST (784 -> hidden x layers -> 10)",
        {{"hidden",
          ParamType::kInt64,
          std::int64_t{256},
          8.0,
          4096.0,
          {},
          "width of each hidden layer"},
         {"layers", ParamType::kInt64, std::int64_t{2}, 1.0, 8.0, {}, "number of hidden layers"},
         {"dropout",
          ParamType::kFloat64,
          0.2,
          0.0,
          0.95,
          {},
          "initial dropout (live knob: training/regularization/dropout)"}}};
  }
  bool has_embeddings() const override { return true; }
  std::unique_ptr<Model> build(const Params& params, std::string& error) override {
    return tv::models::guarded(
        error, [&]() -> std::unique_ptr<Model> { return std::make_unique<Mlp>(params); });
  }
  std::unique_ptr<Dataset> load_data(const Params&, const DataOptions& options,
                                     const HostServices& host, std::string& error) override {
    return tv::models::guarded(error, [&]() -> std::unique_ptr<Dataset> {
      return tv::models::FashionMnist::load(options, host, {28 * 28}, error);
    });
  }
};

}  // namespace

TRAINVISOR_PLUGIN(MlpPlugin)
