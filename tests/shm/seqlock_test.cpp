// The seqlock's ordering, on its primitives in ordinary memory. One writer and one reader thread
// meet in exactly the window the two fences exist for: the reader has begun, the writer has made
// the sequence odd and stored the payload, and the reader loads that payload and re-checks while
// the write is still open.
//
// Two things must hold there. The re-check refuses the read (a reader never takes a payload of
// an unfinished write). And a plain write the writer made before write_begin is visible to the
// reader: the happens-before edge from the writer's release fence to the reader's acquire fence,
// which is what makes the re-check see the odd sequence. ThreadSanitizer sees that edge (under
// it seqlock.hpp gives the fences a form it models) and checks the plain read against it. Built
// with TV_SHM_TEST_BROKEN_FENCE one fence is gone, and TSan must report that read as a data race:
// the broken-fence tests (tests/CMakeLists.txt) expect exactly that.
//
// The test's own waits never order the writer before the reader: the writer waits for the
// reader's release stores, and the reader waits only on seqlock loads. So the edge under test is
// the only one that carries the writer's plain write to the reader.
#include "trainvisor/shm/seqlock.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tv::shm {
namespace {

using Clock = std::chrono::steady_clock;

// Spins until `done()` holds; false when the deadline passed or the other thread gave up.
template <class F>
bool wait_for(F&& done, Clock::time_point deadline, std::atomic<bool>& gave_up) {
  while (!done()) {
    if (gave_up.load(std::memory_order_relaxed)) return false;
    if (Clock::now() > deadline) {
      gave_up.store(true, std::memory_order_relaxed);
      return false;
    }
    std::this_thread::yield();
  }
  return true;
}

struct Outcome {
  std::string timed_out;          // which wait ran out, empty if none
  int accepted_mid_write = 0;     // re-checks that took a payload of an open write
  int stale_marker = 0;           // plain writes of the writer the reader did not see
  bool final_read_valid = false;  // a read after the last write is accepted...
  std::uint64_t final_value = 0;  // ...and returns its payload
};

TEST(Seqlock, ReaderThatLoadsAnOpenWritesPayloadSeesTheWriteBegun) {
  constexpr std::uint64_t kRounds = 500;
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> payload{0};
  // marker[k] is written once, by the writer, just before write k begins; plain on purpose.
  std::vector<std::uint64_t> marker(kRounds + 1, 0);
  std::atomic<std::uint64_t> reader_in{0}, reader_done{0};  // reader -> writer only
  std::atomic<bool> gave_up{false};
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(120);

  Outcome out;
  std::thread reader([&] {
    for (std::uint64_t k = 1; k <= kRounds; ++k) {
      std::uint64_t begin = 0;
      if (!wait_for([&] { return (begin = seqlock::read_begin(seq)) == 2 * (k - 1); }, deadline,
                    gave_up)) {
        out.timed_out = "reader: write " + std::to_string(k - 1) + " to end";
        return;
      }
      reader_in.store(k, std::memory_order_release);
      // The writer stores the payload after write_begin and keeps the write open until told.
      if (!wait_for([&] { return payload.load(seqlock::kPayloadLoad) == k; }, deadline, gave_up)) {
        out.timed_out = "reader: payload of write " + std::to_string(k);
        return;
      }
      if (seqlock::read_valid(seq, begin)) ++out.accepted_mid_write;
      if (marker[k] != k) ++out.stale_marker;
      reader_done.store(k, std::memory_order_release);
    }
    std::uint64_t begin = 0;
    if (!wait_for([&] { return (begin = seqlock::read_begin(seq)) == 2 * kRounds; }, deadline,
                  gave_up)) {
      out.timed_out = "reader: the last write to end";
      return;
    }
    out.final_value = payload.load(seqlock::kPayloadLoad);
    out.final_read_valid = seqlock::read_valid(seq, begin);
  });

  std::string writer_timed_out;
  for (std::uint64_t k = 1; k <= kRounds && writer_timed_out.empty(); ++k) {
    if (!wait_for([&] { return reader_in.load(std::memory_order_acquire) == k; }, deadline,
                  gave_up)) {
      writer_timed_out = "writer: reader to begin read " + std::to_string(k);
      break;
    }
    marker[k] = k;
    const std::uint64_t odd = seqlock::write_begin(seq);
    payload.store(k, seqlock::kPayloadStore);
    if (!wait_for([&] { return reader_done.load(std::memory_order_acquire) == k; }, deadline,
                  gave_up)) {
      writer_timed_out = "writer: reader to re-check read " + std::to_string(k);
    }
    seqlock::write_end(seq, odd);
  }
  reader.join();

  ASSERT_EQ(writer_timed_out, "");
  ASSERT_EQ(out.timed_out, "");
  EXPECT_EQ(out.accepted_mid_write, 0);
  EXPECT_EQ(out.stale_marker, 0);
  EXPECT_TRUE(out.final_read_valid);
  EXPECT_EQ(out.final_value, kRounds);
}

// A write left open (its writer died) keeps every later read refused, however often it retries.
TEST(Seqlock, SequenceLeftOddRefusesEveryRead) {
  std::atomic<std::uint64_t> seq{4};
  const std::uint64_t odd = seqlock::write_begin(seq);
  EXPECT_EQ(odd, 5u);
  EXPECT_EQ(seqlock::write_begin(seq), 5u);  // a second writer's begin keeps it odd
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t begin = seqlock::read_begin(seq);
    EXPECT_FALSE(seqlock::read_valid(seq, begin));
  }
  seqlock::write_end(seq, odd);
  EXPECT_TRUE(seqlock::read_valid(seq, seqlock::read_begin(seq)));
  EXPECT_EQ(seq.load(), 6u);
}

}  // namespace
}  // namespace tv::shm
