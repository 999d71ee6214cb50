// The recent samples a drift trigger keeps: rows of `dims` features with their timestamps, oldest
// first, trimmed by count or by stream time, and copied out as one contiguous window for a test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <vector>

namespace tv::triggers {

class SampleBuffer {
 public:
  void push(const float* row, std::size_t dims, std::int64_t time_ns) {
    dims_ = dims;
    values_.insert(values_.end(), row, row + dims);
    times_.push_back(time_ns);
  }
  std::size_t rows() const { return times_.size(); }
  std::size_t dims() const { return dims_; }
  bool empty() const { return times_.empty(); }
  std::int64_t oldest_ns() const { return times_.front(); }
  std::int64_t newest_ns() const { return times_.back(); }
  void clear() {
    values_.clear();
    times_.clear();
  }
  // Drops the oldest rows until at most `rows` remain.
  void keep_last(std::size_t rows) {
    while (times_.size() > rows)
      drop_oldest();
  }
  // Drops the rows older than `time_ns`.
  void keep_since(std::int64_t time_ns) {
    while (!times_.empty() && times_.front() < time_ns)
      drop_oldest();
  }
  // The newest `rows` rows (all of them when fewer), oldest first, row-major.
  std::vector<float> last(std::size_t rows) const {
    const std::size_t n = rows < times_.size() ? rows : times_.size();
    return std::vector<float>(values_.end() - static_cast<std::ptrdiff_t>(n * dims_),
                              values_.end());
  }
  // How many of the newest rows are at or after `time_ns`.
  std::size_t rows_since(std::int64_t time_ns) const {
    std::size_t n = 0;
    for (auto it = times_.rbegin(); it != times_.rend() && *it >= time_ns; ++it)
      ++n;
    return n;
  }

 private:
  void drop_oldest() {
    values_.erase(values_.begin(), values_.begin() + static_cast<std::ptrdiff_t>(dims_));
    times_.pop_front();
  }

  std::size_t dims_ = 0;
  std::deque<float> values_;
  std::deque<std::int64_t> times_;
};

}  // namespace tv::triggers
