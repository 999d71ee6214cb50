// The stream window as tensors. Only the ATen headers it uses: this translation unit stays far
// cheaper to compile than one with torch/torch.h.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <cstring>

#include "stream_window.hpp"

namespace tv::trainer {
namespace {

class StreamDataset final : public plugin::Dataset {
 public:
  explicit StreamDataset(const StreamWindow& w) : classes_(w.num_classes) {
    tensors_of(w.train, w.sample_shape, train_x_, train_y_);
    tensors_of(w.evaluation, w.sample_shape, val_x_, val_y_);
    describe_ = "stream window: " + std::to_string(w.train.rows()) + " train, " +
                std::to_string(w.holdout_samples) + " held out + " + std::to_string(w.set_samples) +
                " of the evaluation set, samples " + shape_text(w.sample_shape);
  }
  const at::Tensor& train_inputs() const override { return train_x_; }
  const at::Tensor& train_targets() const override { return train_y_; }
  const at::Tensor& val_inputs() const override { return val_x_; }
  const at::Tensor& val_targets() const override { return val_y_; }
  std::int64_t num_classes() const override { return classes_; }
  std::string describe() const override { return describe_; }

 private:
  static void tensors_of(const SampleRows& rows, const std::vector<std::int64_t>& shape,
                         at::Tensor& x, at::Tensor& y) {
    std::vector<std::int64_t> sizes = {rows.rows()};
    sizes.insert(sizes.end(), shape.begin(), shape.end());
    x = at::empty(sizes, at::kFloat);
    y = at::empty({rows.rows()}, at::kLong);
    if (rows.rows() == 0) return;  // an empty tensor may have no storage to copy into
    std::memcpy(x.data_ptr<float>(), rows.features.data(), rows.features.size() * sizeof(float));
    std::memcpy(y.data_ptr<std::int64_t>(), rows.labels.data(),
                rows.labels.size() * sizeof(std::int64_t));
  }

  std::int64_t classes_;
  at::Tensor train_x_, train_y_, val_x_, val_y_;
  std::string describe_;
};

}  // namespace

std::unique_ptr<plugin::Dataset> make_stream_dataset(const StreamWindow& window) {
  return std::make_unique<StreamDataset>(window);
}

}  // namespace tv::trainer
