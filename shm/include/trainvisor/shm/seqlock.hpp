// Seqlock primitives shared by config slots, the tree generation and telemetry records.
//
// Ordering follows H.-J. Boehm, "Can seqlocks get along with programming language memory
// models?" (MSPC 2012), section 5: the payload is std::atomic and accessed relaxed, so there is
// no data race in the C++ sense, and two fences order it against the sequence word. The same
// shape as Linux's raw_write_seqcount_begin/end and read_seqcount_begin/retry.
//
// Single writer only: write_begin/write_end do plain load+store on the sequence word.
#pragma once

#include <atomic>
#include <cstdint>

namespace tv::shm::seqlock {

// Writer: make the sequence odd, then publish the payload stores after it. A sequence already
// odd was left by a writer that died mid-write; it stays odd until this write ends, so readers
// never see the half-written payload as valid.
inline std::uint64_t write_begin(std::atomic<std::uint64_t>& seq) noexcept {
  const std::uint64_t s = seq.load(std::memory_order_relaxed);
  if ((s & 1) == 0) seq.store(s + 1, std::memory_order_relaxed);
  // Payload stores below may not become visible before the odd sequence (Boehm fig. 6).
  std::atomic_thread_fence(std::memory_order_release);
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
  std::atomic_thread_fence(std::memory_order_acquire);
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
