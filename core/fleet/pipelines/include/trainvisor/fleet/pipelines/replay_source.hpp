// The streams `trainvisor replay` runs a manifest's pipelines over, at simulated time: a
// ReplaySource serves a data set as a pipeline's stream, by random access, so that a replay can
// start or resume anywhere. Two kinds: Fashion-MNIST under a named, seeded drift schedule
// (open_fashion_mnist_stream), and what a coordinator recorded of a live pipeline
// (open_recorded_stream).
//
// Contract of every source: read(first, rows) is a pure function of the source's options and
// (first, rows): the same call gives byte-identical batches in any process, and read(a, n)
// followed by read(a + n, m) equals read(a, n + m). Timestamps never go back along the stream.
//
// Errors: ReplayError for every bad input (a schedule, a parameter, a bound, a data directory, a
// pipeline), its message naming the thing and the reason, with a did-you-mean for a misspelt
// name. Thread-safety: a source's const methods may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "trainvisor/fleet/pipelines/sample_batch.hpp"

namespace tv::fleet::pipelines {

class ReplayError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Where a stream's drift schedule changes, for a plot's vertical lines.
struct ChangePoint {
  std::int64_t sample = 0;
  std::int64_t time_ns = 0;
  std::string text;  // "rotation 30 degrees", "classes 2-3"
  bool operator==(const ChangePoint&) const = default;
};

class ReplaySource {
 public:
  virtual ~ReplaySource() = default;
  virtual std::int64_t size() const = 0;  // samples
  virtual std::vector<std::int64_t> sample_shape() const = 0;
  virtual std::int64_t num_classes() const = 0;
  // Rows [first, first + rows); rows >= 1 and first + rows <= size(), else ReplayError.
  virtual SampleBatchData read(std::int64_t first, std::int64_t rows) const = 0;
  // The timestamp of one sample, without reading its features where the source can.
  virtual std::int64_t time_ns(std::int64_t sample) const = 0;
  virtual std::vector<ChangePoint> change_points() const = 0;
  virtual std::string describe() const = 0;  // one line
  // sha256 hex of what identifies the served data, for a report's environment.
  virtual std::string data_digest() const = 0;
};

// Drift schedules. Text form, as one of the ensemble trigger's members: a name, optionally
// followed by parameters in parentheses, key=value separated by ',' (values bare, never quoted);
// an omitted parameter takes the default below. Classes of a group are joined by '-', groups by
// '/'. The base order, which every schedule draws from, is a permutation of the split seeded by
// options.seed; a stream longer than the split goes through it again.
//   none
//   rotate(degrees=15, every=2000): sample i is turned counter-clockwise as displayed by
//       degrees * floor(i / every), bilinear, about the image centre (13.5, 13.5), zero outside;
//       a multiple of 90 degrees moves pixels exactly (np.rot90).
//   class_incremental(groups=0-1/2-3/4-5/6-7/8-9, every=6000): sample i shows only the classes of
//       group floor(i / every) mod G, walking through those classes' images in base order.
//   label_shift(classes=0-1, mass=0.8, from=10000, to=30000): the class prior moves linearly from
//       uniform at `from` to `mass` shared by the named classes (the rest shared by the others)
//       at `to`, then stays; sample i's class is drawn from the prior at i.
//   permute(from=20000): one seeded pixel permutation applied to every sample from `from` on.
struct NoDrift {
  bool operator==(const NoDrift&) const = default;
};
struct Rotation {
  double degrees = 15;
  std::int64_t every = 2000;
  bool operator==(const Rotation&) const = default;
};
struct ClassIncremental {
  std::vector<std::vector<std::int64_t>> groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}};
  std::int64_t every = 6000;
  bool operator==(const ClassIncremental&) const = default;
};
struct LabelShift {
  std::vector<std::int64_t> classes{0, 1};
  double mass = 0.8;
  std::int64_t from = 10000;
  std::int64_t to = 30000;
  bool operator==(const LabelShift&) const = default;
};
struct PixelPermutation {
  std::int64_t from = 20000;
  bool operator==(const PixelPermutation&) const = default;
};

struct DriftSchedule {
  std::variant<NoDrift, Rotation, ClassIncremental, LabelShift, PixelPermutation> rule;
  bool operator==(const DriftSchedule&) const = default;
};

// Throws ReplayError: "drift schedule 'rotat': unknown schedule 'rotat' (schedules: none, ...)
// (did you mean 'rotate'?)". Class numbers are checked against the data when a stream opens.
DriftSchedule parse_drift_schedule(const std::string& text);
// The canonical text, every parameter given: parse_drift_schedule(to_string(s)) == s.
std::string to_string(const DriftSchedule& schedule);

struct FashionMnistOptions {
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string split = "train";  // train | t10k
  std::uint64_t seed = 0;
  std::optional<std::int64_t> length;  // samples; default the split's size; longer wraps around
  std::vector<std::int64_t> sample_shape{784};  // or {1, 28, 28}
  std::int64_t time0_ns = std::int64_t{1'700'000'000} * 1'000'000'000;
  std::int64_t step_ns = 1'000'000'000;  // sample i is at time0_ns + i * step_ns
  DriftSchedule drift;
};

// One split of Fashion-MNIST in memory: images as uint8, 28x28 row-major, and their labels.
struct FashionMnistSplit {
  std::string split;
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
  std::string digest;  // sha256 hex of the two .gz files' digests
};

// Reads data_dir/{split}-{images-idx3,labels-idx1}-ubyte.gz. ReplayError names a split other
// than train or t10k, or the file that is missing or not 28x28 images with labels 0..9.
std::shared_ptr<const FashionMnistSplit> load_fashion_mnist(const std::string& data_dir,
                                                            const std::string& split);
// `data` must be the split options.split of options.data_dir; loading it once lets many
// streams share it. ReplayError for bad options (a length < 1, a shape, a step < 0, a class of
// the schedule outside 0..9).
std::unique_ptr<ReplaySource> open_fashion_mnist_stream(
    const FashionMnistOptions& options, std::shared_ptr<const FashionMnistSplit> data);
std::unique_ptr<ReplaySource> open_fashion_mnist_stream(const FashionMnistOptions& options);

// The stream pipeline `pipeline` ingested into the coordinator whose data directory is
// `data_dir` (coordinator.sqlite and segments/), rows and timestamps exactly as stored. The
// recording is opened read-only (SegmentStore::open_read_only): nothing in it is written or
// removed, though SQLite may add the database's -wal and -shm side files, empty of rows, when no
// coordinator has them open. A recording has no change points; num_classes() is the largest
// label stored plus one, found by reading every segment once. ReplayError names a missing or
// unreadable directory, an empty recording, an unknown pipeline (with a did-you-mean from the
// pipelines it holds), or a segment that cannot be read back.
std::unique_ptr<ReplaySource> open_recorded_stream(const std::string& data_dir,
                                                   const std::string& pipeline);

// Samples [first, end) of a source.
struct SampleRange {
  std::int64_t first = 0;
  std::int64_t end = 0;
  bool operator==(const SampleRange&) const = default;
};

// Resolves `--start` and `--stop`: a sample index ("12000") or a stream-time offset from the
// first sample's timestamp ("90s", "30m", "2h"), which stands for the first sample at or after
// that time; an offset past the last sample's is past the end. No start is 0, no stop is size().
// ReplayError naming the flag for a malformed bound, a start at or past the end, a stop past the
// end, or a stop at or before the start.
SampleRange resolve_range(const ReplaySource& source, const std::optional<std::string>& start,
                          const std::optional<std::string>& stop);

}  // namespace tv::fleet::pipelines
