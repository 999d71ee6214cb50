// Fashion-MNIST for the model plugins: the IDX files of Debian's dataset-fashion-mnist, read
// through the host's read_idx service, as normalised float tensors. Header-only so that each
// model plugin stays one self-contained library.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "trainvisor/plugin.hpp"

namespace tv::models {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// Mean and standard deviation of the training pixels (scaled to [0, 1]).
inline constexpr double kFashionMean = 72.94035223214286 / 255.0;
inline constexpr double kFashionStd = 0.3530;

class FashionMnist final : public plugin::Dataset {
 public:
  // `image_shape`: the shape of one image as the model wants it ({784} or {1, 28, 28}).
  static std::unique_ptr<FashionMnist> load(const plugin::DataOptions& options,
                                            const plugin::HostServices& host,
                                            std::vector<std::int64_t> image_shape,
                                            std::string& error) {
    const std::string dir = options.data_dir.empty() ? kFashionMnistDir : options.data_dir;
    auto out = std::unique_ptr<FashionMnist>(new FashionMnist());
    if (!read_split(host, dir, "train", options.max_train_samples, image_shape, out->train_x_,
                    out->train_y_, error) ||
        !read_split(host, dir, "t10k", options.max_val_samples, image_shape, out->val_x_,
                    out->val_y_, error)) {
      return nullptr;
    }
    out->dir_ = dir;
    return out;
  }

  const at::Tensor& train_inputs() const override { return train_x_; }
  const at::Tensor& train_targets() const override { return train_y_; }
  const at::Tensor& val_inputs() const override { return val_x_; }
  const at::Tensor& val_targets() const override { return val_y_; }
  std::int64_t num_classes() const override { return 10; }
  std::string describe() const override {
    return "fashion-mnist (" + dir_ + "): " + std::to_string(train_x_.size(0)) + " train, " +
           std::to_string(val_x_.size(0)) + " validation";
  }

 private:
  FashionMnist() = default;

  static bool read_split(const plugin::HostServices& host, const std::string& dir,
                         const std::string& split, std::int64_t limit,
                         const std::vector<std::int64_t>& image_shape, at::Tensor& x, at::Tensor& y,
                         std::string& error) {
    plugin::IdxArray images, labels;
    const std::string ip = dir + "/" + split + "-images-idx3-ubyte.gz";
    const std::string lp = dir + "/" + split + "-labels-idx1-ubyte.gz";
    if (!host.read_idx(ip, images, error) || !host.read_idx(lp, labels, error)) return false;
    if (images.magic != 0x0803 || images.dims.size() != 3 || images.dims[1] != 28 ||
        images.dims[2] != 28) {
      error = "IDX file " + ip + ": not 28x28 unsigned-byte images";
      return false;
    }
    if (labels.magic != 0x0801 || labels.dims.size() != 1 || labels.dims[0] != images.dims[0]) {
      error = "IDX file " + lp + ": not one unsigned-byte label per image of " + ip;
      return false;
    }
    for (std::uint8_t l : labels.bytes) {
      if (l > 9) {
        error = "IDX file " + lp + ": label " + std::to_string(l) + " outside 0..9";
        return false;
      }
    }
    std::int64_t n = images.dims[0];
    if (limit > 0 && limit < n) n = limit;
    std::vector<std::int64_t> shape = {n};
    shape.insert(shape.end(), image_shape.begin(), image_shape.end());
    x = torch::from_blob(images.bytes.data(), {n, 28 * 28}, torch::kUInt8)
            .to(torch::kFloat32)
            .div_(255.0)
            .sub_(kFashionMean)
            .div_(kFashionStd)
            .reshape(shape)
            .clone();
    y = torch::from_blob(labels.bytes.data(), {n}, torch::kUInt8).to(torch::kInt64).clone();
    return true;
  }

  std::string dir_;
  at::Tensor train_x_, train_y_, val_x_, val_y_;
};

// Sets p on every dropout layer registered in `dropouts`.
inline bool set_dropout_all(std::vector<torch::nn::Dropout>& dropouts, double p) {
  for (auto& d : dropouts)
    d->options.p(p);
  return !dropouts.empty();
}

// Runs `f`, turning any exception into an error value: nothing may leave a plugin.
template <class F>
auto guarded(std::string& error, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    error = e.what();
  } catch (...) {
    error = "unknown exception";
  }
  return nullptr;
}

}  // namespace tv::models
