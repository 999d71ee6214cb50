#include "trainvisor/fleet/pipelines/replay_source.hpp"

#include <charconv>
#include <limits>

namespace tv::fleet::pipelines {
namespace {

constexpr std::int64_t kSecondNs = 1'000'000'000;

struct Bound {
  std::int64_t value = 0;
  bool is_time = false;  // value is a stream-time offset in ns, else a sample index
};

Bound parse_bound(const std::string& flag, const std::string& text) {
  const auto malformed = [&]() {
    return ReplayError(flag + " '" + text +
                       "' is neither a sample index (12000) nor a stream-time offset from the "
                       "first sample (90s, 30m, 2h)");
  };
  std::int64_t n = 0;
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, n);
  if (ec == std::errc::result_out_of_range)
    throw ReplayError(flag + " '" + text + "' is too large");
  if (ec != std::errc() || n < 0) throw malformed();
  if (p == end) return {n, false};
  if (p + 1 != end) throw malformed();
  std::int64_t unit = 0;
  switch (*p) {
    case 's':
      unit = kSecondNs;
      break;
    case 'm':
      unit = 60 * kSecondNs;
      break;
    case 'h':
      unit = 3600 * kSecondNs;
      break;
    default:
      throw malformed();
  }
  if (n > std::numeric_limits<std::int64_t>::max() / unit) {
    throw ReplayError(flag + " '" + text + "' is too large");
  }
  return {n * unit, true};
}

// The first sample at or after `offset_ns` past the first sample's time; size() when none is.
std::int64_t sample_at_offset(const ReplaySource& source, std::int64_t offset_ns) {
  const std::int64_t t0 = source.time_ns(0);
  const std::int64_t target = offset_ns > std::numeric_limits<std::int64_t>::max() - t0
                                  ? std::numeric_limits<std::int64_t>::max()
                                  : t0 + offset_ns;
  std::int64_t lo = 0;
  std::int64_t hi = source.size();
  while (lo < hi) {  // timestamps never go back, so the samples before `target` come first
    const std::int64_t mid = lo + (hi - lo) / 2;
    if (source.time_ns(mid) < target) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo;
}

// The sample a bound stands for; ReplayError when it lies past `limit`.
std::int64_t resolve_bound(const ReplaySource& source, const std::string& flag,
                           const std::string& text, std::int64_t limit) {
  const Bound b = parse_bound(flag, text);
  const std::int64_t size = source.size();
  if (!b.is_time) {
    if (b.value > limit) {
      throw ReplayError(flag + " " + text + " is past the end of the stream (" +
                        std::to_string(size) + " samples)");
    }
    return b.value;
  }
  const std::int64_t sample = sample_at_offset(source, b.value);
  if (sample > limit || b.value > source.time_ns(size - 1) - source.time_ns(0)) {
    throw ReplayError(flag + " " + text + " is past the end of the stream (its last sample is " +
                      std::to_string(source.time_ns(size - 1) - source.time_ns(0)) +
                      " ns after its first)");
  }
  return sample;
}

}  // namespace

SampleRange resolve_range(const ReplaySource& source, const std::optional<std::string>& start,
                          const std::optional<std::string>& stop) {
  const std::int64_t size = source.size();
  SampleRange r{0, size};
  if (start) r.first = resolve_bound(source, "--start", *start, size - 1);
  if (stop) r.end = resolve_bound(source, "--stop", *stop, size);
  if (r.end <= r.first) {
    throw ReplayError("--stop " + stop.value_or("") + " (sample " + std::to_string(r.end) +
                      ") is at or before --start " + start.value_or("0") + " (sample " +
                      std::to_string(r.first) + ")");
  }
  return r;
}

}  // namespace tv::fleet::pipelines
