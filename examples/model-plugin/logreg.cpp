// `logreg`: multinomial logistic regression on Fashion-MNIST, as an out-of-tree plugin. It shows
// the whole contract: a descriptor with a parameter schema, a model the framework trains (the
// framework owns the loop, the optimizer and the live knobs), data read through the host's
// read_idx service, errors returned as values, and TRAINVISOR_PLUGIN to export the factory.
#include <torch/torch.h>

#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

struct LogRegNet : torch::nn::Module {
  explicit LogRegNet(bool bias)
      : linear(register_module("linear",
                               torch::nn::Linear(torch::nn::LinearOptions(784, 10).bias(bias)))) {}
  torch::nn::Linear linear;
};

class LogReg final : public Model {
 public:
  explicit LogReg(bool bias) : net_(std::make_shared<LogRegNet>(bias)) {}
  std::shared_ptr<torch::nn::Module> module() override { return net_; }
  at::Tensor forward(const at::Tensor& x) override { return net_->linear->forward(x.flatten(1)); }
  bool set_dropout(double) override { return false; }  // no dropout layers

 private:
  std::shared_ptr<LogRegNet> net_;
};

class Data final : public Dataset {
 public:
  const at::Tensor& train_inputs() const override { return train_x; }
  const at::Tensor& train_targets() const override { return train_y; }
  const at::Tensor& val_inputs() const override { return val_x; }
  const at::Tensor& val_targets() const override { return val_y; }
  std::int64_t num_classes() const override { return 10; }
  std::string describe() const override {
    return "fashion-mnist for logreg: " + std::to_string(train_x.size(0)) + " train, " +
           std::to_string(val_x.size(0)) + " validation";
  }
  at::Tensor train_x, train_y, val_x, val_y;
};

bool load_split(const HostServices& host, const std::string& dir, const std::string& split,
                std::int64_t limit, at::Tensor& x, at::Tensor& y, std::string& error) {
  IdxArray images, labels;
  if (!host.read_idx(dir + "/" + split + "-images-idx3-ubyte.gz", images, error) ||
      !host.read_idx(dir + "/" + split + "-labels-idx1-ubyte.gz", labels, error)) {
    return false;
  }
  if (images.dims.size() != 3 || labels.dims.size() != 1 || images.dims[0] != labels.dims[0]) {
    error = split + ": images and labels do not match";
    return false;
  }
  std::int64_t n = images.dims[0];
  if (limit > 0 && limit < n) n = limit;
  x = torch::from_blob(images.bytes.data(), {n, 784}, torch::kUInt8).to(torch::kFloat32).div(255.0);
  y = torch::from_blob(labels.bytes.data(), {n}, torch::kUInt8).to(torch::kInt64);
  return true;
}

class LogRegPlugin final : public ModelPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kModel,
            "logreg",
            "0.1.0",
            "multinomial logistic regression on Fashion-MNIST (an out-of-tree example)",
            {{"bias", ParamType::kBool, true, {}, {}, {}, "learn a bias per class"}}};
  }
  std::unique_ptr<Model> build(const Params& params, std::string& error) override {
    try {
      return std::make_unique<LogReg>(std::get<bool>(params.at("bias")));
    } catch (const std::exception& e) {
      error = e.what();  // never let an exception leave the plugin
      return nullptr;
    }
  }
  std::unique_ptr<Dataset> load_data(const Params&, const DataOptions& options,
                                     const HostServices& host, std::string& error) override {
    try {
      const std::string dir =
          options.data_dir.empty() ? "/usr/share/datasets/fashion-mnist" : options.data_dir;
      auto data = std::make_unique<Data>();
      if (!load_split(host, dir, "train", options.max_train_samples, data->train_x, data->train_y,
                      error) ||
          !load_split(host, dir, "t10k", options.max_val_samples, data->val_x, data->val_y,
                      error)) {
        return nullptr;
      }
      return data;
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
  }
};

}  // namespace

TRAINVISOR_PLUGIN(LogRegPlugin)
