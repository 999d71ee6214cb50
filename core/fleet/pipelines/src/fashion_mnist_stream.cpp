#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "replay_text.hpp"
#include "trainvisor/core/idx_reader.hpp"
#include "trainvisor/fleet/pipelines/replay_source.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::pipelines {
namespace {

constexpr std::int64_t kSide = 28;
constexpr std::int64_t kPixels = kSide * kSide;
constexpr std::int64_t kClasses = 10;
constexpr double kCentre = (kSide - 1) / 2.0;  // 13.5: the turn maps the pixel grid onto itself

// Distinct streams of random numbers drawn from one seed.
constexpr std::uint64_t kOrderTag = 1;
constexpr std::uint64_t kPixelOrderTag = 2;
constexpr std::uint64_t kClassTag = 3;
constexpr std::uint64_t kImageTag = 4;

// SplitMix64's finaliser: draws keyed by (seed, tag, sample) need no state, so that any sample
// can be read without the ones before it.
std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t keyed(std::uint64_t seed, std::uint64_t tag, std::uint64_t i) {
  return mix(mix(mix(seed) ^ tag) ^ i);
}

// bits scaled into [0, n): the high half of a 128-bit product, biased by at most n / 2^64.
std::uint64_t scaled(std::uint64_t bits, std::uint64_t n) {
  return static_cast<std::uint64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

// A seeded Fisher-Yates shuffle of 0..n-1. std::shuffle and the standard distributions may
// differ between standard libraries; mt19937_64's output does not.
std::vector<std::uint32_t> permutation(std::uint64_t seed, std::uint64_t tag, std::size_t n) {
  std::vector<std::uint32_t> out(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = static_cast<std::uint32_t>(i);
  std::mt19937_64 rng(mix(mix(seed) ^ tag));
  for (std::size_t i = n; i > 1; --i)
    std::swap(out[i - 1], out[scaled(rng(), i)]);
  return out;
}

std::string path_of(const std::string& dir, const std::string& split, const char* what) {
  return dir + "/" + split + "-" + what + "-ubyte.gz";
}

plugin::IdxArray read_idx(const std::string& path) {
  plugin::IdxArray a;
  try {
    read_idx_file(path, a);
  } catch (const std::runtime_error& e) {
    throw ReplayError(std::string("fashion-mnist: ") + e.what());
  }
  return a;
}

// cos and sin of a turn, exact for multiples of 90 degrees so that such a turn moves pixels
// without blending them.
std::pair<double, double> cos_sin(double degrees) {
  double a = std::fmod(degrees, 360.0);
  if (a < 0) a += 360.0;
  if (a == 0) return {1, 0};
  if (a == 90) return {0, 1};
  if (a == 180) return {-1, 0};
  if (a == 270) return {0, -1};
  const double r = a * std::numbers::pi / 180.0;
  return {std::cos(r), std::sin(r)};
}

// `image` turned counter-clockwise as displayed (np.rot90 for 90 degrees), bilinear, zero outside.
void rotate(const float* image, double degrees, float* out) {
  const auto [c, s] = cos_sin(degrees);
  const auto at = [&](std::int64_t y, std::int64_t x) -> double {
    return y < 0 || y >= kSide || x < 0 || x >= kSide ? 0.0 : image[y * kSide + x];
  };
  for (std::int64_t y = 0; y < kSide; ++y) {
    for (std::int64_t x = 0; x < kSide; ++x) {
      const double dx = x - kCentre;
      const double dy = y - kCentre;
      const double sx = kCentre + c * dx - s * dy;
      const double sy = kCentre + s * dx + c * dy;
      const double fx = std::floor(sx);
      const double fy = std::floor(sy);
      const auto x0 = static_cast<std::int64_t>(fx);
      const auto y0 = static_cast<std::int64_t>(fy);
      const double wx = sx - fx;
      const double wy = sy - fy;
      const double v = (1 - wy) * ((1 - wx) * at(y0, x0) + wx * at(y0, x0 + 1)) +
                       wy * ((1 - wx) * at(y0 + 1, x0) + wx * at(y0 + 1, x0 + 1));
      out[y * kSide + x] = static_cast<float>(v);
    }
  }
}

class FashionMnistStream final : public ReplaySource {
 public:
  FashionMnistStream(FashionMnistOptions options, std::shared_ptr<const FashionMnistSplit> data);

  std::int64_t size() const override { return length_; }
  std::vector<std::int64_t> sample_shape() const override { return options_.sample_shape; }
  std::int64_t num_classes() const override { return kClasses; }
  SampleBatchData read(std::int64_t first, std::int64_t rows) const override;
  std::int64_t time_ns(std::int64_t sample) const override;
  std::vector<ChangePoint> change_points() const override;
  std::string describe() const override;
  std::string data_digest() const override;

 private:
  void check_options() const;
  void check_classes(const std::string& what, const std::vector<std::int64_t>& classes) const;
  std::uint32_t image_of(std::int64_t i) const;
  std::int64_t shifted_class(const LabelShift& r, std::int64_t i) const;
  void render(std::int64_t i, std::uint32_t image, float* out) const;

  FashionMnistOptions options_;
  std::shared_ptr<const FashionMnistSplit> data_;
  std::int64_t length_ = 0;
  std::vector<std::uint32_t> order_;                  // the base order of the split's images
  std::vector<std::vector<std::uint32_t>> by_class_;  // images of each class, in base order
  std::vector<std::vector<std::uint32_t>> by_group_;  // class_incremental: images of each group
  std::vector<std::uint32_t> pixel_order_;            // permute: out[p] = in[pixel_order_[p]]
};

FashionMnistStream::FashionMnistStream(FashionMnistOptions options,
                                       std::shared_ptr<const FashionMnistSplit> data)
    : options_(std::move(options)), data_(std::move(data)) {
  if (!data_) throw ReplayError("fashion-mnist: no data given");
  const std::size_t n = data_->labels.size();
  length_ = options_.length.value_or(static_cast<std::int64_t>(n));
  check_options();
  order_ = permutation(options_.seed, kOrderTag, n);
  by_class_.resize(kClasses);
  for (const std::uint32_t image : order_)
    by_class_[data_->labels[image]].push_back(image);
  for (std::int64_t c = 0; c < kClasses; ++c) {
    if (by_class_[c].empty()) {
      throw ReplayError("fashion-mnist " + data_->split + ": no image of class " +
                        std::to_string(c));
    }
  }
  if (const auto* r = std::get_if<ClassIncremental>(&options_.drift.rule)) {
    // Each group's images in base order, so that a group's stretch shows them without repeats.
    for (const auto& group : r->groups) {
      by_group_.emplace_back();
      for (const std::uint32_t image : order_) {
        const std::int64_t label = data_->labels[image];
        if (std::find(group.begin(), group.end(), label) != group.end()) {
          by_group_.back().push_back(image);
        }
      }
    }
  }
  if (std::holds_alternative<PixelPermutation>(options_.drift.rule)) {
    pixel_order_ = permutation(options_.seed, kPixelOrderTag, kPixels);
  }
}

void FashionMnistStream::check_options() const {
  const std::string what = "fashion-mnist " + options_.split;
  if (options_.split != data_->split) {
    throw ReplayError(what + ": the data given is the split '" + data_->split + "'");
  }
  if (length_ < 1) {
    throw ReplayError(what + ": length " + std::to_string(length_) + " is not positive");
  }
  const std::vector<std::int64_t>& shape = options_.sample_shape;
  if (shape != std::vector<std::int64_t>{kPixels} &&
      shape != std::vector<std::int64_t>{1, kSide, kSide}) {
    throw ReplayError(what + ": sample shape (" + list_text(shape, ",") +
                      ") is neither {784} nor {1, 28, 28}");
  }
  if (options_.time0_ns < 0 || options_.step_ns < 0) {
    throw ReplayError(what + ": time0_ns and step_ns must not be negative");
  }
  if (options_.step_ns > 0 &&
      (std::numeric_limits<std::int64_t>::max() - options_.time0_ns) / options_.step_ns <
          length_ - 1) {
    throw ReplayError(what + ": the last sample's time overflows 64-bit nanoseconds");
  }
  if (const auto* r = std::get_if<ClassIncremental>(&options_.drift.rule)) {
    for (const auto& group : r->groups)
      check_classes("class_incremental: groups", group);
  }
  if (const auto* r = std::get_if<LabelShift>(&options_.drift.rule)) {
    check_classes("label_shift: classes", r->classes);
    if (static_cast<std::int64_t>(r->classes.size()) >= kClasses) {
      throw ReplayError("drift schedule '" + to_string(options_.drift) +
                        "': label_shift: classes names every class, so no mass is left to shift");
    }
  }
}

void FashionMnistStream::check_classes(const std::string& what,
                                       const std::vector<std::int64_t>& classes) const {
  for (const std::int64_t c : classes) {
    if (c < 0 || c >= kClasses) {
      throw ReplayError("drift schedule '" + to_string(options_.drift) + "': " + what + ": class " +
                        std::to_string(c) + " is not a class of fashion-mnist (0 to " +
                        std::to_string(kClasses - 1) + ")");
    }
  }
}

std::int64_t FashionMnistStream::shifted_class(const LabelShift& r, std::int64_t i) const {
  const double t =
      std::clamp(static_cast<double>(i - r.from) / static_cast<double>(r.to - r.from), 0.0, 1.0);
  const double named = r.mass / static_cast<double>(r.classes.size());
  const double other = (1 - r.mass) / static_cast<double>(kClasses - r.classes.size());
  const double u = static_cast<double>(keyed(options_.seed, kClassTag, i) >> 11) * 0x1.0p-53;
  double cumulative = 0;
  for (std::int64_t c = 0; c < kClasses; ++c) {
    const bool is_named = std::find(r.classes.begin(), r.classes.end(), c) != r.classes.end();
    cumulative += (1 - t) / kClasses + t * (is_named ? named : other);
    if (u < cumulative) return c;
  }
  return kClasses - 1;  // u within rounding of 1
}

std::uint32_t FashionMnistStream::image_of(std::int64_t i) const {
  if (const auto* r = std::get_if<ClassIncremental>(&options_.drift.rule)) {
    const std::int64_t block = i / r->every;
    const auto groups = static_cast<std::int64_t>(by_group_.size());
    const std::vector<std::uint32_t>& images = by_group_[block % groups];
    // How many samples the group showed before i: every earlier block of it was full.
    const std::int64_t shown = (block / groups) * r->every + i % r->every;
    return images[shown % static_cast<std::int64_t>(images.size())];
  }
  if (const auto* r = std::get_if<LabelShift>(&options_.drift.rule)) {
    const std::vector<std::uint32_t>& images = by_class_[shifted_class(*r, i)];
    return images[scaled(keyed(options_.seed, kImageTag, i), images.size())];
  }
  return order_[i % static_cast<std::int64_t>(order_.size())];
}

void FashionMnistStream::render(std::int64_t i, std::uint32_t image, float* out) const {
  float plain[kPixels];
  const std::uint8_t* pixels = data_->pixels.data() + std::size_t{image} * kPixels;
  for (std::int64_t p = 0; p < kPixels; ++p)
    plain[p] = static_cast<float>(pixels[p]) / 255.0f;
  if (const auto* r = std::get_if<Rotation>(&options_.drift.rule)) {
    rotate(plain, r->degrees * static_cast<double>(i / r->every), out);
    return;
  }
  const auto* permute = std::get_if<PixelPermutation>(&options_.drift.rule);
  const bool permuted = permute != nullptr && i >= permute->from;
  for (std::int64_t p = 0; p < kPixels; ++p)
    out[p] = plain[permuted ? pixel_order_[p] : p];
}

SampleBatchData FashionMnistStream::read(std::int64_t first, std::int64_t rows) const {
  if (first < 0 || rows < 1 || first > length_ || rows > length_ - first) {
    throw ReplayError(describe() + ": cannot read " + std::to_string(rows) + " samples from " +
                      std::to_string(first) + "; the stream holds " + std::to_string(length_));
  }
  SampleBatchData b;
  b.sample_shape = options_.sample_shape;
  b.rows = static_cast<std::size_t>(rows);
  b.features.resize(b.rows * kPixels);
  b.labels.resize(b.rows);
  b.time_ns.resize(b.rows);
  for (std::size_t k = 0; k < b.rows; ++k) {
    const std::int64_t i = first + static_cast<std::int64_t>(k);
    const std::uint32_t image = image_of(i);
    render(i, image, b.features.data() + k * kPixels);
    b.labels[k] = data_->labels[image];
    b.time_ns[k] = options_.time0_ns + i * options_.step_ns;
  }
  return b;
}

std::int64_t FashionMnistStream::time_ns(std::int64_t sample) const {
  if (sample < 0 || sample >= length_) {
    throw ReplayError(describe() + ": no sample " + std::to_string(sample) + "; the stream holds " +
                      std::to_string(length_));
  }
  return options_.time0_ns + sample * options_.step_ns;
}

std::vector<ChangePoint> FashionMnistStream::change_points() const {
  std::vector<ChangePoint> out;
  const auto add = [&](std::int64_t sample, std::string text) {
    if (sample < length_) out.push_back({sample, time_ns(sample), std::move(text)});
  };
  if (const auto* r = std::get_if<Rotation>(&options_.drift.rule)) {
    for (std::int64_t k = 1; k <= (length_ - 1) / r->every; ++k)
      add(k * r->every,
          "rotation " + number_text(r->degrees * static_cast<double>(k)) + " degrees");
  } else if (const auto* r = std::get_if<ClassIncremental>(&options_.drift.rule)) {
    const auto groups = static_cast<std::int64_t>(r->groups.size());
    for (std::int64_t k = 0; k <= (length_ - 1) / r->every; ++k)
      add(k * r->every, "classes " + list_text(r->groups[k % groups]));
  } else if (const auto* r = std::get_if<LabelShift>(&options_.drift.rule)) {
    add(r->from, "label shift towards classes " + list_text(r->classes) + " begins");
    add(r->to,
        "classes " + list_text(r->classes) + " hold " + number_text(r->mass) + " of the prior");
  } else if (const auto* r = std::get_if<PixelPermutation>(&options_.drift.rule)) {
    add(r->from, "pixels permuted");
  }
  return out;
}

std::string FashionMnistStream::describe() const {
  return "fashion-mnist " + options_.split + " (seed " + std::to_string(options_.seed) + ", " +
         std::to_string(length_) + " samples of shape (" + list_text(options_.sample_shape, ",") +
         "), drift " + to_string(options_.drift) + ", time " + std::to_string(options_.time0_ns) +
         " + i * " + std::to_string(options_.step_ns) + " ns)";
}

std::string FashionMnistStream::data_digest() const {
  return sha256_hex(data_->digest + "\n" + describe());
}

}  // namespace

std::shared_ptr<const FashionMnistSplit> load_fashion_mnist(const std::string& data_dir,
                                                            const std::string& split) {
  if (split != "train" && split != "t10k") {
    throw ReplayError("fashion-mnist: split '" + split + "' is neither train nor t10k");
  }
  const std::string images_path = path_of(data_dir, split, "images-idx3");
  const std::string labels_path = path_of(data_dir, split, "labels-idx1");
  plugin::IdxArray images = read_idx(images_path);
  plugin::IdxArray labels = read_idx(labels_path);
  if (images.dims.size() != 3 || images.dims[1] != kSide || images.dims[2] != kSide ||
      images.bytes.size() != std::size_t{images.dims[0]} * kPixels) {
    throw ReplayError("fashion-mnist: " + images_path + " does not hold 28x28 uint8 images");
  }
  if (labels.dims.size() != 1 || labels.dims[0] != images.dims[0] ||
      labels.bytes.size() != labels.dims[0]) {
    throw ReplayError("fashion-mnist: " + labels_path + " does not hold one uint8 label for " +
                      "each of the " + std::to_string(images.dims[0]) + " images");
  }
  for (const std::uint8_t label : labels.bytes) {
    if (label >= kClasses) {
      throw ReplayError("fashion-mnist: " + labels_path + " holds label " + std::to_string(label) +
                        ", not a class 0 to 9");
    }
  }
  auto out = std::make_shared<FashionMnistSplit>();
  out->split = split;
  out->pixels = std::move(images.bytes);
  out->labels = std::move(labels.bytes);
  out->digest =
      sha256_hex(sha256_file_hex(images_path) + "\n" + sha256_file_hex(labels_path) + "\n");
  return out;
}

std::unique_ptr<ReplaySource> open_fashion_mnist_stream(
    const FashionMnistOptions& options, std::shared_ptr<const FashionMnistSplit> data) {
  return std::make_unique<FashionMnistStream>(options, std::move(data));
}

std::unique_ptr<ReplaySource> open_fashion_mnist_stream(const FashionMnistOptions& options) {
  return open_fashion_mnist_stream(options, load_fashion_mnist(options.data_dir, options.split));
}

}  // namespace tv::fleet::pipelines
