#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "replay_text.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/fleet/pipelines/replay_source.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::pipelines {
namespace {

namespace fs = std::filesystem;

// Where a coordinator keeps its state under its data directory (coordinator_state.cpp).
constexpr const char* kDatabase = "coordinator.sqlite";
constexpr const char* kSegments = "segments";

class RecordedStream final : public ReplaySource {
 public:
  RecordedStream(SegmentStore store, std::string where, std::vector<SegmentInfo> segments)
      : store_(std::move(store)), where_(std::move(where)), segments_(std::move(segments)) {}

  std::int64_t size() const override {
    return segments_.back().first_sample + segments_.back().rows;
  }
  std::vector<std::int64_t> sample_shape() const override { return segments_.front().sample_shape; }
  std::int64_t num_classes() const override;
  SampleBatchData read(std::int64_t first, std::int64_t rows) const override;
  std::int64_t time_ns(std::int64_t sample) const override;
  // A recording follows no schedule: where its data drifted is for the replay to find.
  std::vector<ChangePoint> change_points() const override { return {}; }
  std::string describe() const override {
    return where_ + " (" + std::to_string(size()) + " samples of shape (" +
           list_text(sample_shape(), ",") + ") in " + std::to_string(segments_.size()) +
           " segments)";
  }
  std::string data_digest() const override;

 private:
  // The index of the segment holding `sample`, which must be in [0, size()).
  std::size_t segment_of(std::int64_t sample) const {
    const auto it = std::upper_bound(
        segments_.begin(), segments_.end(), sample,
        [](std::int64_t s, const SegmentInfo& info) { return s < info.first_sample; });
    return static_cast<std::size_t>(it - segments_.begin()) - 1;
  }
  std::shared_ptr<const SampleBatchData> segment(std::size_t k) const;
  void check_sample(std::int64_t sample) const {
    if (sample < 0 || sample >= size()) {
      throw ReplayError(where_ + ": no sample " + std::to_string(sample) +
                        "; the recording holds " + std::to_string(size()));
    }
  }

  SegmentStore store_;
  std::string where_;                  // "recording of pipeline 'x' in DIR"
  std::vector<SegmentInfo> segments_;  // in seq order, at least one
  mutable std::mutex mu_;
  // The segment read last, so that reads walking along the stream decode each segment once.
  mutable std::size_t cached_index_ = 0;                   // guarded by mu_
  mutable std::shared_ptr<const SampleBatchData> cached_;  // guarded by mu_
  mutable std::int64_t num_classes_ = -1;                  // guarded by mu_; -1 until scanned
};

std::shared_ptr<const SampleBatchData> RecordedStream::segment(std::size_t k) const {
  {
    std::lock_guard lock(mu_);
    if (cached_ && cached_index_ == k) return cached_;
  }
  const SegmentInfo& info = segments_[k];
  std::shared_ptr<const SampleBatchData> batch;
  try {
    batch = std::make_shared<const SampleBatchData>(store_.read(info.digest));
  } catch (const std::runtime_error& e) {
    throw ReplayError(where_ + ": segment " + std::to_string(info.seq) + ": " + e.what());
  }
  if (static_cast<std::int64_t>(batch->rows) != info.rows ||
      batch->sample_shape != info.sample_shape) {
    throw ReplayError(where_ + ": segment " + std::to_string(info.seq) + " holds " +
                      std::to_string(batch->rows) + " rows of shape (" +
                      list_text(batch->sample_shape, ",") + "), not the " +
                      std::to_string(info.rows) + " of shape (" +
                      list_text(info.sample_shape, ",") + ") its index row gives");
  }
  std::lock_guard lock(mu_);
  cached_index_ = k;
  cached_ = batch;
  return batch;
}

std::int64_t RecordedStream::num_classes() const {
  {
    std::lock_guard lock(mu_);
    if (num_classes_ >= 0) return num_classes_;
  }
  // The index keeps no labels: the largest one stored says how many classes the stream has.
  std::int64_t top = -1;
  for (std::size_t k = 0; k < segments_.size(); ++k) {
    const std::shared_ptr<const SampleBatchData> batch = segment(k);
    for (const std::int64_t label : batch->labels)
      top = std::max(top, label);
  }
  std::lock_guard lock(mu_);
  num_classes_ = top + 1;
  return num_classes_;
}

SampleBatchData RecordedStream::read(std::int64_t first, std::int64_t rows) const {
  if (first < 0 || rows < 1 || first > size() || rows > size() - first) {
    throw ReplayError(where_ + ": cannot read " + std::to_string(rows) + " samples from " +
                      std::to_string(first) + "; the recording holds " + std::to_string(size()));
  }
  SampleBatchData out;
  out.sample_shape = sample_shape();
  const std::size_t dims = out.dims();
  out.rows = static_cast<std::size_t>(rows);
  out.features.reserve(out.rows * dims);
  out.labels.reserve(out.rows);
  out.time_ns.reserve(out.rows);
  for (std::int64_t next = first; next < first + rows;) {
    const std::size_t k = segment_of(next);
    const std::shared_ptr<const SampleBatchData> batch = segment(k);
    const auto from = static_cast<std::size_t>(next - segments_[k].first_sample);
    const std::size_t count =
        std::min(batch->rows - from, static_cast<std::size_t>(first + rows - next));
    out.features.insert(out.features.end(), batch->features.begin() + from * dims,
                        batch->features.begin() + (from + count) * dims);
    out.labels.insert(out.labels.end(), batch->labels.begin() + from,
                      batch->labels.begin() + from + count);
    out.time_ns.insert(out.time_ns.end(), batch->time_ns.begin() + from,
                       batch->time_ns.begin() + from + count);
    next += static_cast<std::int64_t>(count);
  }
  return out;
}

std::int64_t RecordedStream::time_ns(std::int64_t sample) const {
  check_sample(sample);
  const SegmentInfo& info = segments_[segment_of(sample)];
  // The index knows each segment's first and last time; only a sample inside needs the file.
  if (sample == info.first_sample) return info.first_time_ns;
  if (sample == info.first_sample + info.rows - 1) return info.last_time_ns;
  return segment(segment_of(sample))->time_ns[sample - info.first_sample];
}

std::string RecordedStream::data_digest() const {
  Sha256 h;
  for (const SegmentInfo& s : segments_)
    h.update(s.digest + "\n");
  return h.hex();
}

void check_directory(const std::string& what, const std::string& dir) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw ReplayError(what + ": " + dir + " cannot be read: " + ec.message());
  }
  if (!fs::exists(st)) throw ReplayError(what + ": " + dir + " does not exist");
  if (!fs::is_directory(st)) throw ReplayError(what + ": " + dir + " is not a directory");
  if (::access(dir.c_str(), R_OK | X_OK) != 0) {
    throw ReplayError(what + ": " + dir +
                      " cannot be read: " + std::generic_category().message(errno));
  }
}

}  // namespace

std::unique_ptr<ReplaySource> open_recorded_stream(const std::string& data_dir,
                                                   const std::string& pipeline) {
  const std::string what = "recording " + data_dir;
  check_directory(what, data_dir);
  const std::string db = (fs::path(data_dir) / kDatabase).string();
  std::error_code ec;
  if (!fs::is_regular_file(db, ec)) {
    throw ReplayError(what + ": holds no " + kDatabase +
                      "; give the data directory of the coordinator that recorded the stream");
  }
  const std::string segments_dir = (fs::path(data_dir) / kSegments).string();
  check_directory(what, segments_dir);
  std::optional<SegmentStore> store;
  std::vector<std::string> pipelines;
  try {
    store.emplace(SegmentStore::open_read_only(db, segments_dir));
    pipelines = store->pipelines();
  } catch (const std::runtime_error& e) {
    throw ReplayError(what + ": " + e.what());
  }
  if (pipelines.empty()) {
    throw ReplayError(what + ": the recording is empty: no pipeline stored a sample");
  }
  if (std::find(pipelines.begin(), pipelines.end(), pipeline) == pipelines.end()) {
    std::string list;
    for (const std::string& p : pipelines)
      list += (list.empty() ? "" : ", ") + p;
    const std::string close = did_you_mean(pipeline, pipelines);
    throw ReplayError(what + ": no recorded stream of pipeline '" + pipeline + "' (recorded: " +
                      list + ")" + (close.empty() ? "" : " (did you mean '" + close + "'?)"));
  }
  std::vector<SegmentInfo> segments;
  try {
    segments = store->segments(pipeline);
  } catch (const std::runtime_error& e) {
    throw ReplayError(what + ": " + e.what());
  }
  return std::make_unique<RecordedStream>(std::move(*store),
                                          "recording of pipeline '" + pipeline + "' in " + data_dir,
                                          std::move(segments));
}

}  // namespace tv::fleet::pipelines
