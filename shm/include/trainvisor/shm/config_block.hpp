// The config side of a shared-memory block: one writer (the host's config agent), any number of
// readers (the trainer, inspectors).
//
// Readers attach by block name, resolve each key path to a Handle once, and then call
// Handle::get() on every step: a bounded seqlock read, no locks, no syscalls, no allocation, no
// string work. Snapshot reads several keys from one tree generation, so a batch applied by the
// writer is never seen half-applied.
//
// Thread-safety: a ConfigBlockReader may be shared by threads (its methods are const and only
// read the block). A Handle or Snapshot keeps per-reader state (last good value, counters) and
// belongs to one thread at a time. ConfigBlockWriter is single-threaded and, through an
// exclusive flock on the block, the only writer on the machine.
//
// Lifetime: handles and snapshots share ownership of the mapping, so they stay valid after the
// reader that made them is gone.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "trainvisor/shm/layout.hpp"
#include "trainvisor/shm/seqlock.hpp"
#include "trainvisor/shm/value.hpp"

namespace tv::shm {

class Mapping;  // the mapped block; defined in mapping.hpp (internal)

// Validates a key path: '/'-separated non-empty segments of [A-Za-z0-9_.-], at most
// kMaxKeyBytes bytes. Throws ShmError naming the key.
void validate_key(std::string_view path);

// FNV-1a, stored in each slot so late binding compares one word before the key bytes.
std::uint64_t key_hash(std::string_view path) noexcept;

// The lease a block belongs to: the claim's attempt and the digest of its lease token (never the
// token itself: any process of the same user can read the block). A block belongs to one lease;
// a trainer started for another stops. Attempt 0 with a zero digest is "no lease" (the blocks of
// `trainvisor local` and of tests).
struct BlockLease {
  std::uint64_t attempt = 0;
  std::array<std::uint8_t, kLeaseDigestBytes> digest{};

  bool operator==(const BlockLease&) const = default;
  // The digest as 2 * kLeaseDigestBytes lowercase hex digits.
  std::string digest_hex() const;
  // "attempt 3 (lease 5f2c9a01...)", or "no lease".
  std::string describe() const;
  // Throws ShmError naming `hex` unless it is 2 * kLeaseDigestBytes hex digits.
  static BlockLease from_hex(std::uint64_t attempt, std::string_view hex);
};

struct HandleStats {
  std::uint64_t retries = 0;    // attempts beyond the first, summed over reads
  std::uint64_t fallbacks = 0;  // reads that gave up after kMaxReadAttempts
  // The most attempts one read took (a read that gave up counts kMaxReadAttempts); reads that
  // found the value unchanged take none and are not counted.
  std::uint64_t max_attempts = 0;
  std::uint64_t reads = 0;  // reads that took at least one attempt

  void note(unsigned attempts) noexcept {
    retries += attempts - 1;
    ++reads;
    if (attempts > max_attempts) max_attempts = attempts;
  }
};

namespace detail {

// Where a handle points and how it finds its key if the key is not there yet.
struct Binding {
  std::shared_ptr<const Mapping> mapping;
  const BlockHeader* header = nullptr;
  const ConfigSlot* slots = nullptr;
  const ConfigSlot* slot = nullptr;  // null until the key exists with the expected type
  std::uint64_t capacity = 0;        // slots mapped: a key_count beyond it is corrupt
  std::uint64_t keys_seen = 0;       // key_count at the last binding attempt
  std::uint64_t hash = 0;
  std::string path;
  ValueType type = ValueType::kNone;
  bool type_conflict = false;  // the key exists with another type: never binds

  // Binds when the writer has published new keys since the last attempt. Cheap when nothing
  // changed: one acquire load.
  bool try_bind() noexcept;
};

// What an unbound handle checks: odd forever, so its fast path never matches.
inline const std::atomic<std::uint64_t> kUnboundSeq{1};

template <class T>
struct Codec;

template <>
struct Codec<double> {
  static constexpr ValueType kType = ValueType::kFloat64;
  static constexpr std::size_t kWords = 1;
  static double decode(const std::uint64_t* w) noexcept { return std::bit_cast<double>(w[0]); }
};
template <>
struct Codec<std::int64_t> {
  static constexpr ValueType kType = ValueType::kInt64;
  static constexpr std::size_t kWords = 1;
  static std::int64_t decode(const std::uint64_t* w) noexcept {
    return std::bit_cast<std::int64_t>(w[0]);
  }
};
template <>
struct Codec<bool> {
  static constexpr ValueType kType = ValueType::kBool;
  static constexpr std::size_t kWords = 1;
  static bool decode(const std::uint64_t* w) noexcept { return w[0] != 0; }
};
template <>
struct Codec<ShortString> {
  static constexpr ValueType kType = ValueType::kString;
  static constexpr std::size_t kWords = ConfigSlot::kPayloadWords;
  static ShortString decode(const std::uint64_t* w) noexcept {
    ShortString s;
    // A torn length is caught by the sequence re-check; clamp so the copy stays in bounds.
    s.size = static_cast<std::uint8_t>(w[6] > kMaxStringBytes ? kMaxStringBytes : w[6]);
    std::memcpy(s.data, w, kMaxStringBytes);
    return s;
  }
};

}  // namespace detail

// A resolved key. T is double, std::int64_t, bool or ShortString.
template <class T>
class Handle {
 public:
  using Codec = detail::Codec<T>;

  // The value, or `fallback` while the key does not exist. Bounded: when kMaxReadAttempts
  // attempts all overlap a write (or a writer died mid-write), returns the last value this
  // handle read successfully (or `fallback` if none) and counts a fallback.
  T get(T fallback) noexcept {
    // The slot's sequence doubles as a version: equal to the (even) one of this handle's last
    // good read means no write has begun since, so the copy it kept is the current value. The
    // acquire load is the whole cost of an unchanged key. An unbound handle points at a
    // sequence that is always odd, so it always takes the slow path.
    if (seq_->load(std::memory_order_acquire) != seen_seq_) [[unlikely]]
      return get_slow(fallback);
    return cached_;
  }

  // True once the key exists with this handle's type.
  bool bound() noexcept { return seq_ != &detail::kUnboundSeq || bind(); }
  // True when the key exists with another type; such a handle always returns its fallback.
  bool type_conflict() const noexcept { return binding_.type_conflict; }
  const std::string& path() const noexcept { return binding_.path; }
  const HandleStats& stats() const noexcept { return stats_; }

 private:
  friend class ConfigBlockReader;
  explicit Handle(detail::Binding binding) : binding_(std::move(binding)) {
    if (binding_.slot != nullptr) seq_ = &binding_.slot->seq;
  }

  bool bind() noexcept {
    if (!binding_.try_bind()) return false;
    seq_ = &binding_.slot->seq;
    return true;
  }

  // The seqlock read proper: the value changed, is being written, or the key is not bound yet.
  [[gnu::noinline]] T get_slow(T fallback) noexcept {
    if (seq_ == &detail::kUnboundSeq && !bind()) return fallback;
    const ConfigSlot& slot = *binding_.slot;
    std::uint64_t w[Codec::kWords];
    for (unsigned attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
      const std::uint64_t begin = seqlock::read_begin(slot.seq);
      for (std::size_t i = 0; i < Codec::kWords; ++i) {
        w[i] = slot.payload[i].load(seqlock::kPayloadLoad);
      }
      if (seqlock::read_valid(slot.seq, begin)) [[likely]] {
        stats_.note(attempt + 1);
        cached_ = Codec::decode(w);
        seen_seq_ = begin;
        has_cached_ = true;
        return cached_;
      }
      seqlock::cpu_relax();
    }
    stats_.note(kMaxReadAttempts);
    ++stats_.fallbacks;
    return has_cached_ ? cached_ : fallback;
  }

  // Hot fields first: the fast path touches seq_, seen_seq_ and cached_ only.
  const std::atomic<std::uint64_t>* seq_ = &detail::kUnboundSeq;
  std::uint64_t seen_seq_ = ~std::uint64_t{0};  // never equals a sequence a good read saw
  T cached_{};
  bool has_cached_ = false;
  detail::Binding binding_;
  HandleStats stats_;
};

// One key of a Snapshot: its path and the value served while it does not exist. The default's
// type is the key's expected type.
struct SnapshotKey {
  std::string path;
  Value fallback;
};

// A fixed set of keys read consistently: every read returns values from one tree generation.
class Snapshot {
 public:
  // Reads all keys. Returns true when values() are those of the current generation; false
  // when kMaxReadAttempts attempts overlapped writes and the previous good values are served
  // again. An unchanged generation costs one acquire load.
  bool read() noexcept;
  std::span<const Value> values() const noexcept { return values_; }
  const Value& operator[](std::size_t i) const noexcept { return values_[i]; }
  // Tree generation the values belong to (0 before the first good read).
  std::uint64_t generation() const noexcept { return generation_; }
  const HandleStats& stats() const noexcept { return stats_; }
  std::size_t size() const noexcept { return values_.size(); }

 private:
  friend class ConfigBlockReader;
  Snapshot() = default;

  std::vector<detail::Binding> bindings_;
  std::vector<Value> fallbacks_;
  std::vector<Value> values_;   // last good
  std::vector<Value> scratch_;  // the read in progress
  std::uint64_t generation_ = 0;
  std::uint64_t seen_tree_seq_ = ~std::uint64_t{0};  // tree_seq of the last good read
  HandleStats stats_;
};

// A copy of the header, for inspection.
struct BlockInfo {
  std::string name;
  std::uint64_t total_bytes = 0;
  std::uint16_t layout_major = 0;
  std::uint16_t layout_minor = 0;
  std::uint32_t slot_capacity = 0;
  std::uint32_t ring_capacity = 0;
  std::uint64_t created_unix_ns = 0;
  std::uint64_t writer_pid = 0;
  std::uint64_t writer_start_ticks = 0;
  std::uint64_t writer_start_unix_ns = 0;
  std::uint64_t repairs = 0;
  std::uint64_t heartbeat_unix_ns = 0;
  std::uint64_t key_count = 0;
  std::uint64_t tree_seq = 0;  // odd: a write is in progress (or its writer died in it)
};

// True while the process recorded as the block's writer runs (its pid and start time match).
bool writer_alive(const BlockInfo& info);

// A process's start time in clock ticks since boot: with its pid, it names the process
// unambiguously (pids are recycled). 0 when no such process runs.
std::uint64_t process_start_ticks(long pid);

// A key and its current value, for inspection.
struct KeyEntry {
  std::string path;
  Value value;
  bool consistent = true;  // false: the slot stayed mid-write for kMaxReadAttempts reads
};

class TelemetryWriter;
class TelemetryReader;
struct RingState;

class ConfigBlockReader {
 public:
  enum class Access { kReadOnly, kReadWrite };

  // Attaches to an existing block. Throws ShmError naming the block when it does not exist,
  // is too small for its header or smaller than its header says, has a wrong magic or another
  // major layout version, or is not ready yet. kReadWrite is for the trainer, which writes the
  // telemetry ring; it never writes config slots.
  static ConfigBlockReader attach(std::string_view block_name, Access access = Access::kReadOnly);

  // Resolves a key to a handle. Throws ShmError for a malformed path or when the key exists
  // with another type. A key that does not exist yet is not an error: the handle serves its
  // fallback until the writer adds the key.
  template <class T>
  Handle<T> resolve(std::string_view path) const {
    return Handle<T>(bind(path, detail::Codec<T>::kType));
  }

  // Same rules as resolve, for each key. Allocates here, never in Snapshot::read.
  Snapshot snapshot(std::span<const SnapshotKey> keys) const;

  BlockInfo info() const;
  // Every published key with its current value, in slot order.
  std::vector<KeyEntry> entries() const;

  TelemetryWriter telemetry_writer() const;  // requires kReadWrite
  TelemetryReader telemetry_reader() const;  // requires kReadWrite (it stores its cursor)
  // The ring's counters, read without consuming anything.
  RingState ring_state() const noexcept;

  // The lease the block belongs to; nullopt while another holder is stamping its own lease into
  // it (or died doing so): a block being taken over belongs to no one who asks.
  std::optional<BlockLease> lease() const noexcept;
  // Moves whenever the lease is stamped: a reader that found its own lease at version v needs
  // no other read while this stays v. One acquire load.
  std::uint64_t lease_version() const noexcept;

  // Why the block cannot be used any more, or nullopt while it is intact: its object was
  // truncated below the block's size ("shared-memory block 'X' was truncated to N bytes
  // (expected M)"), an access faulted, or its header lost its magic. One fstat. A truncated
  // block never kills the process: an access that faults reads zeros instead (fault_guard.hpp).
  std::optional<std::string> damage() const;
  // True once an access to this mapping faulted. One load; for a per-step check.
  bool faulted() const noexcept;

  const std::string& name() const noexcept;

 private:
  friend class ConfigBlockWriter;
  explicit ConfigBlockReader(std::shared_ptr<Mapping> mapping) : mapping_(std::move(mapping)) {}
  detail::Binding bind(std::string_view path, ValueType type) const;

  std::shared_ptr<Mapping> mapping_;
};

struct Entry {
  std::string path;
  Value value;
};

// Capacities apply when the block is created; a block taken over keeps its own.
struct WriterOptions {
  std::uint32_t slot_capacity = 256;
  std::uint32_t ring_capacity = 1024;  // rounded up to a power of two
  // The lease the block is for. A block of that name stamped with another lease is not taken
  // over: it is stamped with this one (so its trainer stops) and its name given to a new block.
  BlockLease lease;
  // Test hook: called in the middle of a write, after the sequence words are odd and before
  // any payload is stored. Lets a test stop or kill the writer exactly there.
  std::function<void()> mid_write_hook;
};

// What the writer found when it took over an existing block.
struct RepairReport {
  bool took_over = false;  // the block existed and was adopted rather than created
  // The name held a block of another lease (`previous`; nullopt: one being stamped), which was
  // stamped with this writer's lease and replaced by a new block.
  bool superseded = false;
  std::optional<BlockLease> previous;
  bool tree_was_mid_write = false;
  std::uint64_t slots_mid_write = 0;
  // Keys the new writer's source does not know that were left mid-write. A single-word value
  // cannot be torn and is released as is; a string stays marked mid-write (readers keep their
  // last good value) until the writer sets it again.
  std::vector<std::string> unrestored;
};

class ConfigBlockWriter {
 public:
  // Creates the block (mode 0600) and writes `source` into it as its first generation, or, when
  // a compatible block of that name exists and no live writer holds it, takes it over: repairs
  // sequence words a dead writer left odd and restores values from `source`, so readers continue
  // without re-attaching. Throws ShmError naming the block when another writer holds it, when it
  // is incompatible (magic, version, size, capacity), or when `source` is invalid.
  static ConfigBlockWriter open_or_create(std::string_view block_name, const WriterOptions& options,
                                          std::span<const Entry> source);

  ConfigBlockWriter(ConfigBlockWriter&&) noexcept;
  ConfigBlockWriter& operator=(ConfigBlockWriter&&) noexcept;
  ~ConfigBlockWriter();

  // Sets one key (added if new). Throws ShmError naming the key for a malformed path, a type
  // other than the key's, or a full block; the block is unchanged then.
  void set(std::string_view path, const Value& value);
  // Applies every entry as one tree generation. All entries are validated first: one bad entry
  // (or a path given twice) refuses the whole batch and changes nothing.
  void apply(std::span<const Entry> batch);
  // Writes the current time into the heartbeat word.
  void heartbeat() noexcept;
  // As ConfigBlockReader::damage(). A write to a damaged block lands in memory no one else sees.
  std::optional<std::string> damage() const;

  // A reader over this writer's own mapping: the same memory at the same addresses, where
  // ConfigBlockReader::attach maps the block a second time elsewhere. For readers in the
  // writer's process. ThreadSanitizer tracks memory by address and cannot tell that two mappings
  // alias, so it checks readers against the writer only when they read through this one. The
  // mapping is writable, so the reader may also use the telemetry ring. The reader may outlive
  // the writer; the writer lock does not.
  ConfigBlockReader reader() const;

  std::uint64_t generation() const noexcept;
  const RepairReport& repair_report() const noexcept { return report_; }
  const std::string& name() const noexcept;

  // Removes the block's name if it still names this writer's block (a later holder of the job
  // may have replaced it: its block stays). Returns whether it removed it.
  bool remove_own();

  // Removes the block's name; mapped readers keep their memory until they detach. Returns false
  // when no block had that name.
  static bool remove(std::string_view block_name);
  // Removes the block's name if that block belongs to `lease`; nothing otherwise (a block that
  // cannot be attached is left alone too). Returns whether it removed it.
  static bool remove_if_lease(std::string_view block_name, const BlockLease& lease);

 private:
  struct Pending;
  ConfigBlockWriter(std::unique_ptr<Mapping> mapping, WriterOptions options);
  void validate_against(std::span<const Entry> batch, std::vector<Pending>& out,
                        std::uint64_t capacity) const;
  void write(std::span<const Pending> batch, std::span<const std::uint32_t> orphans);
  static ConfigBlockWriter open_once(std::string_view block_name, const WriterOptions& options,
                                     std::span<const Entry> source, bool may_supersede);
  void adopt(std::span<const Entry> source);
  void initialize(std::span<const Entry> source);
  void stamp(const BlockLease& lease) noexcept;

  std::shared_ptr<Mapping> mapping_;  // shared with readers made by reader()
  WriterOptions options_;
  RepairReport report_;
  std::unordered_map<std::string, std::uint32_t> index_;  // path -> slot
};

}  // namespace tv::shm
