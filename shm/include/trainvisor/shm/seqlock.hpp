// Seqlock primitives shared by config slots, the tree generation and telemetry records.
//
// Ordering follows H.-J. Boehm, "Can seqlocks get along with programming language memory
// models?" (MSPC 2012), section 5: the payload is std::atomic and accessed relaxed, so there is
// no data race in the C++ sense, and two fences order it against the sequence word. The same
// shape as Linux's raw_write_seqcount_begin/end and read_seqcount_begin/retry.
//
// ThreadSanitizer does not model atomic_thread_fence, so under it the fences would order nothing
// it can see. TSan builds therefore compile no fence and give the payload accesses the fences'
// strength instead: every payload store is a release store and every payload load an acquire
// load. A payload store then orders everything the writer did before it (the odd sequence
// included) before a reader that loads it, which is what the writer's release fence and the
// reader's acquire fence together promise. Other builds keep the fences and relaxed payload
// accesses: the same instructions as without this switch.
//
// Every payload access inside a write (write_begin .. write_end) or a read (read_begin ..
// read_valid) uses kPayloadStore or kPayloadLoad below, or TSan builds lose the ordering again.
//
// Single writer only: write_begin/write_end do plain load+store on the sequence word.
#pragma once

#include <atomic>
#include <cstdint>

#if defined(__SANITIZE_THREAD__)
#define TV_SHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TV_SHM_TSAN 1
#endif
#endif
#ifndef TV_SHM_TSAN
#define TV_SHM_TSAN 0
#endif

// Only for the test that shows the checks catch a missing fence: 1 drops the writer's fence (the
// release in write_begin), 2 the reader's (the acquire in read_valid). Never set it elsewhere.
#ifndef TV_SHM_TEST_BROKEN_FENCE
#define TV_SHM_TEST_BROKEN_FENCE 0
#endif

namespace tv::shm::seqlock {

inline constexpr bool kWriterFence = TV_SHM_TEST_BROKEN_FENCE != 1;
inline constexpr bool kReaderFence = TV_SHM_TEST_BROKEN_FENCE != 2;

// The memory order of every payload access: relaxed where the fences order them; release and
// acquire under TSan, which orders them only that way. Call sites name these constants (rather
// than calling a wrapper) so that other builds compile to exactly the code of a relaxed access.
inline constexpr std::memory_order kPayloadStore =
    TV_SHM_TSAN && kWriterFence ? std::memory_order_release : std::memory_order_relaxed;
inline constexpr std::memory_order kPayloadLoad =
    TV_SHM_TSAN && kReaderFence ? std::memory_order_acquire : std::memory_order_relaxed;

// Writer, once the sequence word is odd and before the first payload store: payload stores
// below may not become visible before the odd sequence (Boehm fig. 6).
inline void payload_follows() noexcept {
#if !TV_SHM_TSAN && TV_SHM_TEST_BROKEN_FENCE != 1
  std::atomic_thread_fence(std::memory_order_release);
#endif
}

// Writer: make the sequence odd, then publish the payload stores after it. A sequence already
// odd was left by a writer that died mid-write; it stays odd until this write ends, so readers
// never see the half-written payload as valid.
inline std::uint64_t write_begin(std::atomic<std::uint64_t>& seq) noexcept {
  const std::uint64_t s = seq.load(std::memory_order_relaxed);
  if ((s & 1) == 0) seq.store(s + 1, std::memory_order_relaxed);
  payload_follows();
  return s | 1;
}

// Writer: the payload stores above happen-before any reader that sees the even value.
inline void write_end(std::atomic<std::uint64_t>& seq, std::uint64_t odd) noexcept {
  seq.store(odd + 1, std::memory_order_release);
}

// Reader, step 1: acquire so the payload loads that follow are not hoisted above it.
inline std::uint64_t read_begin(const std::atomic<std::uint64_t>& seq) noexcept {
  return seq.load(std::memory_order_acquire);
}

// Reader, step 3: the acquire fence keeps the payload loads above from sinking below the
// re-check; a payload value written after the writer's release fence forces `seq` to differ.
inline bool read_valid(const std::atomic<std::uint64_t>& seq, std::uint64_t begin) noexcept {
#if !TV_SHM_TSAN && TV_SHM_TEST_BROKEN_FENCE != 2
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
  return (begin & 1) == 0 && seq.load(std::memory_order_relaxed) == begin;
}

// Between failed read attempts: lets the writer's core finish its store sequence (and, on SMT,
// gives it the pipeline) instead of hammering the line it is writing.
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace tv::shm::seqlock
