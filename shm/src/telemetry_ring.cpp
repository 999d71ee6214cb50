#include "trainvisor/shm/telemetry_ring.hpp"

#include <bit>

#include "mapping.hpp"
#include "trainvisor/shm/seqlock.hpp"

namespace tv::shm {
namespace {

// Record <-> words, in the order of TelemetryRecord's fields.
void encode(const TelemetryRecord& r, std::uint64_t* w) noexcept {
  w[0] = r.step;
  w[1] = (std::uint64_t{r.epoch} << 32) | r.flags;
  w[2] = std::bit_cast<std::uint64_t>(r.wall_time_ns);
  w[3] = std::bit_cast<std::uint64_t>(r.loss);
  w[4] = std::bit_cast<std::uint64_t>(r.grad_norm);
  w[5] = std::bit_cast<std::uint64_t>(r.learning_rate);
  w[6] = r.config_revision;
  w[7] = std::bit_cast<std::uint64_t>(r.val_loss);
  w[8] = std::bit_cast<std::uint64_t>(r.val_accuracy);
  w[9] = std::bit_cast<std::uint64_t>(r.samples_per_sec);
}

constexpr std::size_t kUsedWords = 10;
static_assert(kUsedWords <= kTelemetryWords);

TelemetryRecord decode(const std::uint64_t* w) noexcept {
  TelemetryRecord r;
  r.step = w[0];
  r.epoch = static_cast<std::uint32_t>(w[1] >> 32);
  r.flags = static_cast<std::uint32_t>(w[1]);
  r.wall_time_ns = std::bit_cast<std::int64_t>(w[2]);
  r.loss = std::bit_cast<double>(w[3]);
  r.grad_norm = std::bit_cast<double>(w[4]);
  r.learning_rate = std::bit_cast<double>(w[5]);
  r.config_revision = w[6];
  r.val_loss = std::bit_cast<double>(w[7]);
  r.val_accuracy = std::bit_cast<double>(w[8]);
  r.samples_per_sec = std::bit_cast<double>(w[9]);
  return r;
}

}  // namespace

TelemetryWriter::TelemetryWriter(std::shared_ptr<Mapping> mapping)
    : mapping_(std::move(mapping)),
      ring_(mapping_->ring()),
      slots_(mapping_->records()),
      mask_(mapping_->geometry().ring_capacity - 1),
      // A restarted trainer continues the sequence, so the reader's cursor stays meaningful.
      next_(ring_->head.load(std::memory_order_relaxed)) {}

void TelemetryWriter::push(const TelemetryRecord& record) noexcept {
  std::uint64_t w[kUsedWords];
  encode(record, w);
  TelemetrySlot& slot = slots_[next_ & mask_];
  // The record's own sequence (2i+1 while written, 2i+2 when done) tells a lagging reader both
  // "torn" and "this is a later lap's record".
  slot.seq.store(2 * next_ + 1, std::memory_order_relaxed);
  seqlock::payload_follows();
  for (std::size_t i = 0; i < kUsedWords; ++i)
    slot.words[i].store(w[i], seqlock::kPayloadStore);
  slot.seq.store(2 * next_ + 2, std::memory_order_release);
  ++next_;
  ring_->head.store(next_, std::memory_order_release);
}

TelemetryReader::TelemetryReader(std::shared_ptr<Mapping> mapping)
    : mapping_(std::move(mapping)),
      ring_(mapping_->ring()),
      slots_(mapping_->records()),
      capacity_(mapping_->geometry().ring_capacity),
      next_(ring_->reader_next.load(std::memory_order_relaxed)),
      dropped_(ring_->reader_dropped.load(std::memory_order_relaxed)) {}

PollResult TelemetryReader::poll(std::span<TelemetryRecord> out) noexcept {
  PollResult result;
  const std::uint64_t head = ring_->head.load(std::memory_order_acquire);
  if (head < next_) next_ = head;  // the ring was recreated under us: start over at its head
  if (head - next_ > capacity_) {
    result.missed += head - next_ - capacity_;
    next_ = head - capacity_;
  }
  std::uint64_t w[kUsedWords];
  while (next_ < head && result.count < out.size()) {
    const TelemetrySlot& slot = slots_[next_ & (capacity_ - 1)];
    const std::uint64_t expected = 2 * next_ + 2;
    const std::uint64_t begin = seqlock::read_begin(slot.seq);
    for (std::size_t i = 0; i < kUsedWords; ++i)
      w[i] = slot.words[i].load(seqlock::kPayloadLoad);
    // Anything but `expected`, before or after the copy, means a later lap overwrote it.
    if (begin == expected && seqlock::read_valid(slot.seq, begin)) {
      out[result.count++] = decode(w);
    } else {
      ++result.missed;
    }
    ++next_;
  }
  dropped_ += result.missed;
  ring_->reader_next.store(next_, std::memory_order_relaxed);
  ring_->reader_dropped.store(dropped_, std::memory_order_relaxed);
  return result;
}

}  // namespace tv::shm
