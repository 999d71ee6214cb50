// The byte layout of a Trainvisor shared-memory block.
//
// A block is one POSIX shared-memory object:
//   [ BlockHeader | ConfigSlot x slot_capacity | RingHeader | TelemetrySlot x ring_capacity ]
// Every region starts on a cache line and every slot occupies whole cache lines of its own, so a
// writer touching one value never invalidates the line a reader polls for another (Aeron's
// counters pad the same way).
//
// Everything another process may touch while it is being written is a std::atomic of a
// lock-free width; fields that never change after the block is published (or after a slot's key
// is published through key_count) are plain. Both are readable by readers built from a different
// compiler as long as the layout version matches: the structs are standard-layout, fixed-width
// and checked by static_asserts below.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tv::shm {

inline constexpr std::size_t kCacheLine = 64;

// "TVSHMBLK" read as a little-endian u64.
inline constexpr std::uint64_t kBlockMagic = 0x4b4c424d48535654ULL;
// Major: readers refuse any other. Minor: additions readers may ignore.
inline constexpr std::uint16_t kLayoutMajor = 2;
inline constexpr std::uint16_t kLayoutMinor = 0;
// Written to BlockHeader::ready (release) after everything else, so a reader that sees it also
// sees a complete header.
inline constexpr std::uint32_t kReadyWord = 0x52454459;  // "YDER"

// A reader gives up on a seqlock read after this many attempts and serves its last good value.
// 16 is far above what a live writer causes (a write holds a slot odd for a few nanoseconds; the
// continuous-writer benchmark sees < 1.01 attempts per read) and low enough that a reader facing
// a writer that died mid-write pays well under a microsecond per read.
inline constexpr unsigned kMaxReadAttempts = 16;

inline constexpr std::size_t kMaxKeyBytes = 112;    // "training/optimizer/learning_rate" is 32
inline constexpr std::size_t kMaxStringBytes = 48;  // short enum-like values: "adamw", "cosine"
// A lease's token digest (SHA-256): the block names its lease by digest, never by the token,
// because any process of the same user can read the block.
inline constexpr std::size_t kLeaseDigestBytes = 32;

enum class ValueType : std::uint8_t { kNone = 0, kFloat64 = 1, kInt64 = 2, kBool = 3, kString = 4 };

struct alignas(kCacheLine) BlockHeader {
  // Line 0: identity. Immutable once ready, except writer_pid/start on repair (before readers
  // can observe the block again only through the seqlocks, which they already respect).
  std::uint64_t magic;
  std::uint16_t layout_major;
  std::uint16_t layout_minor;
  std::uint32_t header_bytes;
  std::uint64_t total_bytes;
  std::uint32_t slot_capacity;
  std::uint32_t slot_bytes;
  std::uint32_t ring_capacity;
  std::uint32_t record_bytes;
  std::uint64_t slots_offset;
  std::uint64_t ring_offset;
  std::uint64_t created_unix_ns;

  // Line 1: who writes the config slots. start_ticks is the writer's start time in clock ticks
  // since boot (/proc/PID/stat field 22), so a recycled pid is not mistaken for a live writer.
  alignas(kCacheLine) std::atomic<std::uint64_t> writer_pid;
  std::atomic<std::uint64_t> writer_start_ticks;
  std::atomic<std::uint64_t> writer_start_unix_ns;
  std::atomic<std::uint64_t> repairs;  // times a restarted writer took the block over

  // Line 2: liveness, bumped by the writer on its own cadence.
  alignas(kCacheLine) std::atomic<std::uint64_t> heartbeat_unix_ns;

  // Line 3: the key table. Slots [0, key_count) hold published keys; store(release) after a
  // slot's key, type and first value are written. It is also the key-table generation. Apart
  // from tree_seq because only handles still waiting for their key poll it.
  alignas(kCacheLine) std::atomic<std::uint64_t> key_count;

  // Line 4: the whole-tree seqlock. Odd while any write (one key or a batch) is in progress; the
  // tree generation is tree_seq / 2. A consistent multi-key snapshot is one read bracketed by
  // two equal even values.
  alignas(kCacheLine) std::atomic<std::uint64_t> tree_seq;

  // Line 5: the lease the block belongs to (layout 2): the claim's attempt and its token's
  // digest, under a seqlock of their own. Stamped at creation; stamped again only by a new
  // holder of the job taking the block away from an older lease, whose trainer then stops.
  alignas(kCacheLine) std::atomic<std::uint64_t> lease_seq;
  std::atomic<std::uint64_t> lease_attempt;
  std::atomic<std::uint64_t> lease_digest[kLeaseDigestBytes / 8];

  // Line 6: written last at creation.
  alignas(kCacheLine) std::atomic<std::uint32_t> ready;
};

// One config value. Line 0 is what readers load: the slot's own sequence word and the payload.
// Lines 1-2 are the key and its type, written once before the slot is published.
struct alignas(kCacheLine) ConfigSlot {
  static constexpr std::size_t kPayloadWords = 7;
  std::atomic<std::uint64_t> seq;  // odd while this slot is being written
  // float64/int64/bool: word 0. string: bytes in words 0-5, length in word 6.
  std::atomic<std::uint64_t> payload[kPayloadWords];

  alignas(kCacheLine) std::uint64_t key_hash;  // FNV-1a of the key, for cheap late binding
  ValueType type;
  std::uint8_t reserved0;
  std::uint16_t key_len;
  std::uint32_t reserved1;
  char key[kMaxKeyBytes];
};

// Telemetry ring: one writer (the trainer) that never waits, one consuming reader (the agent).
// Writer side and reader side live on separate lines.
struct alignas(kCacheLine) RingHeader {
  std::atomic<std::uint64_t> head;  // records ever pushed; record i lives in slot i % capacity
  alignas(kCacheLine) std::atomic<std::uint64_t> reader_next;  // next index the reader wants
  std::atomic<std::uint64_t> reader_dropped;                   // overwritten before read
};

// The record fields in order; TelemetryRecord (telemetry_ring.hpp) is the typed view.
inline constexpr std::size_t kTelemetryWords = 12;

struct alignas(kCacheLine) TelemetrySlot {
  // 2*i+2 once record i is complete; odd while it is written. Lets a reader detect both a torn
  // read and a record overwritten by a later lap.
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint64_t> words[kTelemetryWords];
};

static_assert(sizeof(BlockHeader) == 7 * kCacheLine);
static_assert(sizeof(ConfigSlot) == 3 * kCacheLine);
static_assert(sizeof(RingHeader) == 2 * kCacheLine);
static_assert(sizeof(TelemetrySlot) == 2 * kCacheLine);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint64_t>) == 8);

}  // namespace tv::shm
