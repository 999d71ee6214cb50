#include "trainvisor/shm/config_block.hpp"

#include <unistd.h>

#include <boost/interprocess/shared_memory_object.hpp>
#include <chrono>
#include <fstream>
#include <sstream>
#include <unordered_set>

#include "mapping.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::shm {

// Moves values between Value and a slot's payload words. Writer side stores, reader side decodes
// words it loaded itself (under a seqlock).
class SlotCodec {
 public:
  static std::size_t words(ValueType type) noexcept {
    return type == ValueType::kString ? ConfigSlot::kPayloadWords : 1;
  }

  static void store(ConfigSlot& slot, const Value& v) noexcept {
    if (v.type_ != ValueType::kString) {
      slot.payload[0].store(v.bits_, seqlock::kPayloadStore);
      return;
    }
    std::uint64_t w[ConfigSlot::kPayloadWords - 1] = {};
    std::memcpy(w, v.str_, kMaxStringBytes);
    for (std::size_t i = 0; i < ConfigSlot::kPayloadWords - 1; ++i) {
      slot.payload[i].store(w[i], seqlock::kPayloadStore);
    }
    slot.payload[6].store(v.str_len_, seqlock::kPayloadStore);
  }

  static void load(const ConfigSlot& slot, ValueType type, std::uint64_t* w) noexcept {
    for (std::size_t i = 0; i < words(type); ++i) {
      w[i] = slot.payload[i].load(seqlock::kPayloadLoad);
    }
  }

  static Value decode(ValueType type, const std::uint64_t* w) noexcept {
    if (type != ValueType::kString) return Value(type, w[0]);
    Value v(ValueType::kString, 0);
    v.str_len_ = static_cast<std::uint8_t>(w[6] > kMaxStringBytes ? kMaxStringBytes : w[6]);
    std::memcpy(v.str_, w, kMaxStringBytes);
    return v;
  }
};

namespace {

std::string block_label(std::string_view name) {
  return "shared-memory block '" + std::string(name) + "'";
}

std::uint64_t unix_ns() noexcept {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// Field 22 of /proc/PID/stat: start time in clock ticks since boot. With the pid it names a
// process unambiguously (pids are recycled, start times are not). 0 when unknown.
std::uint64_t process_start_ticks_of(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 > line.size()) return 0;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  // Fields after the command start at field 3.
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) return std::strtoull(field.c_str(), nullptr, 10);
  }
  return 0;
}

std::uint64_t own_start_ticks() {
  return process_start_ticks_of("self");
}

bool valid_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

}  // namespace

void validate_key(std::string_view path) {
  const std::string shown = "invalid key '" + std::string(path) + "'";
  if (path.empty()) throw ShmError("invalid key: it is empty");
  if (path.size() > kMaxKeyBytes) {
    throw ShmError("invalid key '" + std::string(path) + "': " + std::to_string(path.size()) +
                   " bytes, the limit is " + std::to_string(kMaxKeyBytes));
  }
  if (path.front() == '/' || path.back() == '/' || path.find("//") != std::string_view::npos) {
    throw ShmError(shown + ": segments must be non-empty and separated by single '/'");
  }
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] != '/' && !valid_key_char(path[i])) {
      throw ShmError(shown + ": character '" + std::string(1, path[i]) + "' at position " +
                     std::to_string(i) + " is not allowed (letters, digits, '_', '-', '.', '/')");
    }
  }
}

std::uint64_t key_hash(std::string_view path) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : path) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::uint64_t process_start_ticks(long pid) {
  return process_start_ticks_of(std::to_string(pid));
}

bool writer_alive(const BlockInfo& info) {
  if (info.writer_pid == 0) return false;
  const std::uint64_t ticks = process_start_ticks_of(std::to_string(info.writer_pid));
  return ticks != 0 && ticks == info.writer_start_ticks;
}

std::string BlockLease::digest_hex() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const std::uint8_t b : digest) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

std::string BlockLease::describe() const {
  if (*this == BlockLease{}) return "no lease";
  return "attempt " + std::to_string(attempt) + " (lease " + digest_hex().substr(0, 8) + "...)";
}

BlockLease BlockLease::from_hex(std::uint64_t attempt, std::string_view hex) {
  const auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  BlockLease l;
  l.attempt = attempt;
  bool ok = hex.size() == 2 * kLeaseDigestBytes;
  for (std::size_t i = 0; ok && i < kLeaseDigestBytes; ++i) {
    const int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    ok = hi >= 0 && lo >= 0;
    l.digest[i] = static_cast<std::uint8_t>(ok ? hi * 16 + lo : 0);
  }
  if (!ok) {
    throw ShmError("invalid lease digest '" + std::string(hex.substr(0, 80)) + "': expected " +
                   std::to_string(2 * kLeaseDigestBytes) + " hex digits");
  }
  return l;
}

namespace {

// Bounded like every other seqlock read; nullopt when every attempt overlapped a stamp.
std::optional<BlockLease> read_lease(const BlockHeader& h) noexcept {
  for (unsigned attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    const std::uint64_t begin = seqlock::read_begin(h.lease_seq);
    BlockLease l;
    l.attempt = h.lease_attempt.load(seqlock::kPayloadLoad);
    std::uint64_t words[kLeaseDigestBytes / 8];
    for (std::size_t i = 0; i < kLeaseDigestBytes / 8; ++i)
      words[i] = h.lease_digest[i].load(seqlock::kPayloadLoad);
    if (seqlock::read_valid(h.lease_seq, begin)) {
      std::memcpy(l.digest.data(), words, kLeaseDigestBytes);
      return l;
    }
    seqlock::cpu_relax();
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Readers

bool detail::Binding::try_bind() noexcept {
  std::uint64_t n = header->key_count.load(std::memory_order_acquire);
  if (n == keys_seen || type_conflict) return false;
  if (n > capacity) n = capacity;  // corrupt count: stay in bounds
  for (std::uint64_t i = keys_seen; i < n; ++i) {
    const ConfigSlot& s = slots[i];
    if (s.key_hash == hash && s.key_len == path.size() &&
        std::memcmp(s.key, path.data(), path.size()) == 0) {
      keys_seen = n;
      if (s.type != type) {
        type_conflict = true;
        return false;
      }
      slot = &s;
      return true;
    }
  }
  keys_seen = n;
  return false;
}

ConfigBlockReader ConfigBlockReader::attach(std::string_view block_name, Access access) {
  return ConfigBlockReader(Mapping::attach(block_name, access == Access::kReadWrite
                                                           ? Mapping::Open::kReadWrite
                                                           : Mapping::Open::kReadOnly));
}

const std::string& ConfigBlockReader::name() const noexcept {
  return mapping_->name();
}

detail::Binding ConfigBlockReader::bind(std::string_view path, ValueType type) const {
  validate_key(path);
  detail::Binding b;
  b.mapping = mapping_;
  b.header = mapping_->header();
  b.slots = mapping_->slots();
  b.capacity = mapping_->geometry().slot_capacity;
  b.hash = key_hash(path);
  b.path = std::string(path);
  b.type = type;
  b.try_bind();
  if (b.type_conflict) {
    const ConfigSlot* found = nullptr;
    for (std::uint64_t i = 0; i < b.keys_seen; ++i) {
      if (b.slots[i].key_hash == b.hash &&
          std::string_view(b.slots[i].key, b.slots[i].key_len) == path) {
        found = &b.slots[i];
      }
    }
    throw ShmError("key '" + std::string(path) + "' in " + block_label(name()) + " holds " +
                   std::string(type_name(found ? found->type : ValueType::kNone)) + ", not " +
                   std::string(type_name(type)));
  }
  return b;
}

Snapshot ConfigBlockReader::snapshot(std::span<const SnapshotKey> keys) const {
  Snapshot s;
  s.bindings_.reserve(keys.size());
  for (const SnapshotKey& k : keys) {
    if (k.fallback.type() == ValueType::kNone) {
      throw ShmError("snapshot key '" + k.path + "' has no type: give it a typed fallback value");
    }
    s.bindings_.push_back(bind(k.path, k.fallback.type()));
    s.fallbacks_.push_back(k.fallback);
  }
  s.values_ = s.fallbacks_;
  s.scratch_ = s.fallbacks_;
  return s;
}

bool Snapshot::read() noexcept {
  if (bindings_.empty()) return true;
  const BlockHeader& header = *bindings_.front().header;
  // Every write, new keys included, moves tree_seq: unchanged means values_ are current.
  if (header.tree_seq.load(std::memory_order_acquire) == seen_tree_seq_) return true;
  std::uint64_t w[ConfigSlot::kPayloadWords];
  for (unsigned attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    const std::uint64_t begin = seqlock::read_begin(header.tree_seq);
    if ((begin & 1) == 0) {
      bool torn = false;
      for (std::size_t i = 0; i < bindings_.size(); ++i) {
        detail::Binding& b = bindings_[i];
        if (b.slot == nullptr && !b.try_bind()) {
          scratch_[i] = fallbacks_[i];
          continue;
        }
        // An odd slot inside an even generation is one a dead writer left torn and its
        // successor could not restore: treat it like a write in progress.
        torn |= (b.slot->seq.load(seqlock::kPayloadLoad) & 1) != 0;
        SlotCodec::load(*b.slot, b.type, w);
        scratch_[i] = SlotCodec::decode(b.type, w);
      }
      if (seqlock::read_valid(header.tree_seq, begin) && !torn) {
        values_.swap(scratch_);
        generation_ = begin / 2;
        seen_tree_seq_ = begin;
        stats_.note(attempt + 1);
        return true;
      }
    }
    seqlock::cpu_relax();
  }
  stats_.note(kMaxReadAttempts);
  ++stats_.fallbacks;
  return false;
}

BlockInfo ConfigBlockReader::info() const {
  const BlockHeader& h = *mapping_->header();
  BlockInfo i;
  i.name = name();
  i.total_bytes = h.total_bytes;
  i.layout_major = h.layout_major;
  i.layout_minor = h.layout_minor;
  i.slot_capacity = h.slot_capacity;
  i.ring_capacity = h.ring_capacity;
  i.created_unix_ns = h.created_unix_ns;
  i.writer_pid = h.writer_pid.load(std::memory_order_relaxed);
  i.writer_start_ticks = h.writer_start_ticks.load(std::memory_order_relaxed);
  i.writer_start_unix_ns = h.writer_start_unix_ns.load(std::memory_order_relaxed);
  i.repairs = h.repairs.load(std::memory_order_relaxed);
  i.heartbeat_unix_ns = h.heartbeat_unix_ns.load(std::memory_order_relaxed);
  i.key_count = h.key_count.load(std::memory_order_acquire);
  i.tree_seq = h.tree_seq.load(std::memory_order_relaxed);
  return i;
}

std::vector<KeyEntry> ConfigBlockReader::entries() const {
  const BlockHeader& h = *mapping_->header();
  const std::uint64_t capacity = mapping_->geometry().slot_capacity;
  const std::uint64_t n = std::min(h.key_count.load(std::memory_order_acquire), capacity);
  std::vector<KeyEntry> out;
  out.reserve(n);
  std::uint64_t w[ConfigSlot::kPayloadWords] = {};
  for (std::uint64_t i = 0; i < n; ++i) {
    const ConfigSlot& s = mapping_->slots()[i];
    KeyEntry e;
    e.path.assign(s.key, std::min<std::size_t>(s.key_len, kMaxKeyBytes));
    e.consistent = false;
    for (unsigned attempt = 0; attempt < kMaxReadAttempts && !e.consistent; ++attempt) {
      const std::uint64_t begin = seqlock::read_begin(s.seq);
      SlotCodec::load(s, s.type, w);
      e.consistent = seqlock::read_valid(s.seq, begin);
    }
    e.value = SlotCodec::decode(s.type, w);
    out.push_back(std::move(e));
  }
  return out;
}

TelemetryWriter ConfigBlockReader::telemetry_writer() const {
  if (!mapping_->writable()) {
    throw ShmError("cannot write telemetry to " + block_label(name()) +
                   ": it was attached read-only");
  }
  return TelemetryWriter(mapping_);
}

TelemetryReader ConfigBlockReader::telemetry_reader() const {
  if (!mapping_->writable()) {
    throw ShmError("cannot consume telemetry from " + block_label(name()) +
                   ": it was attached read-only (the reader stores its cursor in the block)");
  }
  return TelemetryReader(mapping_);
}

RingState ConfigBlockReader::ring_state() const noexcept {
  const RingHeader& r = *mapping_->ring();
  RingState s;
  s.capacity = mapping_->geometry().ring_capacity;
  s.head = r.head.load(std::memory_order_acquire);
  s.reader_next = r.reader_next.load(std::memory_order_relaxed);
  s.reader_dropped = r.reader_dropped.load(std::memory_order_relaxed);
  return s;
}

std::optional<BlockLease> ConfigBlockReader::lease() const noexcept {
  return read_lease(*mapping_->header());
}

std::uint64_t ConfigBlockReader::lease_version() const noexcept {
  return mapping_->header()->lease_seq.load(std::memory_order_acquire);
}

std::optional<std::string> ConfigBlockReader::damage() const {
  return mapping_->damage();
}

bool ConfigBlockReader::faulted() const noexcept {
  return mapping_->faulted();
}

// ---------------------------------------------------------------------------------------------
// The writer

struct ConfigBlockWriter::Pending {
  const Entry* entry;
  std::int64_t slot;  // -1: a new key
};

ConfigBlockWriter::ConfigBlockWriter(std::unique_ptr<Mapping> mapping, WriterOptions options)
    : mapping_(std::move(mapping)), options_(std::move(options)) {}
ConfigBlockWriter::ConfigBlockWriter(ConfigBlockWriter&&) noexcept = default;

// Readers from reader() may keep the mapping, and with it the descriptor that holds the lock:
// give the lock up explicitly, so a writer that is gone no longer excludes the next one.
ConfigBlockWriter& ConfigBlockWriter::operator=(ConfigBlockWriter&& other) noexcept {
  if (this != &other) {
    if (mapping_) mapping_->unlock_writer();
    mapping_ = std::move(other.mapping_);
    options_ = std::move(other.options_);
    report_ = std::move(other.report_);
    index_ = std::move(other.index_);
  }
  return *this;
}

ConfigBlockWriter::~ConfigBlockWriter() {
  if (mapping_) mapping_->unlock_writer();
}

ConfigBlockReader ConfigBlockWriter::reader() const {
  return ConfigBlockReader(mapping_);
}

const std::string& ConfigBlockWriter::name() const noexcept {
  return mapping_->name();
}

ConfigBlockWriter ConfigBlockWriter::open_or_create(std::string_view block_name,
                                                    const WriterOptions& options,
                                                    std::span<const Entry> source) {
  return open_once(block_name, options, source, true);
}

ConfigBlockWriter ConfigBlockWriter::open_once(std::string_view block_name,
                                               const WriterOptions& options,
                                               std::span<const Entry> source, bool may_supersede) {
  if (options.slot_capacity == 0 || options.slot_capacity > 65536) {
    throw ShmError("cannot create " + block_label(block_name) + ": slot capacity " +
                   std::to_string(options.slot_capacity) + " is outside 1..65536");
  }
  if (options.ring_capacity == 0 || options.ring_capacity > (1u << 20)) {
    throw ShmError("cannot create " + block_label(block_name) + ": ring capacity " +
                   std::to_string(options.ring_capacity) + " is outside 1..1048576");
  }
  bool created = false;
  std::unique_ptr<Mapping> mapping = Mapping::open_for_writer(block_name, created);
  try {
    mapping->lock_writer();
  } catch (...) {
    if (created) boost::interprocess::shared_memory_object::remove(mapping->name().c_str());
    throw;
  }
  ConfigBlockWriter w(std::move(mapping), options);
  bool adopt = false;
  if (!created && w.mapping_->object_bytes() >= sizeof(BlockHeader)) {
    w.mapping_->map_whole();
    // Not ready and unlocked: its creator died before finishing, so no reader ever attached.
    adopt = w.mapping_->header()->ready.load(std::memory_order_acquire) == kReadyWord;
  }
  if (adopt) {
    w.mapping_->validate();
    const std::optional<BlockLease> found = read_lease(*w.mapping_->header());
    if (found != options.lease && may_supersede) {
      // Another lease's block: its trainer must stop, and no record of it may reach ours. It is
      // told by the stamp (it checks every step), and keeps its memory, which no one reads.
      w.stamp(options.lease);
      remove(w.name());
      ConfigBlockWriter fresh = open_once(block_name, options, source, false);
      fresh.report_.superseded = true;
      fresh.report_.previous = found;
      return fresh;
    }
    if (found != options.lease) {
      throw ShmError("cannot take over " + block_label(w.name()) + ": it belongs to " +
                     (found ? found->describe() : "a lease being stamped") + ", not " +
                     options.lease.describe());
    }
  }
  try {
    if (adopt) {
      w.adopt(source);
    } else {
      w.initialize(source);
    }
  } catch (...) {
    if (!adopt) boost::interprocess::shared_memory_object::remove(w.name().c_str());
    throw;
  }
  return w;
}

void ConfigBlockWriter::initialize(std::span<const Entry> source) {
  std::uint32_t ring = 1;
  while (ring < options_.ring_capacity)
    ring <<= 1;
  const BlockGeometry g = BlockGeometry::compute(options_.slot_capacity, ring);

  // Validate before touching the object, against an empty table of this capacity.
  std::vector<Pending> pending;
  index_.clear();
  validate_against(source, pending, g.slot_capacity);

  mapping_->resize(0);  // a dead creator may have left bytes behind
  mapping_->resize(g.total_bytes);
  mapping_->map_whole();
  mapping_->set_geometry(g);
  BlockHeader& h = *mapping_->header();
  h.magic = kBlockMagic;
  h.layout_major = kLayoutMajor;
  h.layout_minor = kLayoutMinor;
  h.header_bytes = sizeof(BlockHeader);
  h.total_bytes = g.total_bytes;
  h.slot_capacity = g.slot_capacity;
  h.slot_bytes = sizeof(ConfigSlot);
  h.ring_capacity = g.ring_capacity;
  h.record_bytes = sizeof(TelemetrySlot);
  h.slots_offset = g.slots_offset;
  h.ring_offset = g.ring_offset;
  h.created_unix_ns = unix_ns();
  h.writer_pid.store(static_cast<std::uint64_t>(::getpid()), std::memory_order_relaxed);
  h.writer_start_ticks.store(own_start_ticks(), std::memory_order_relaxed);
  h.writer_start_unix_ns.store(unix_ns(), std::memory_order_relaxed);
  stamp(options_.lease);
  heartbeat();
  write(pending, {});
  // Last: a reader that sees the ready word sees everything above (attach loads it acquire).
  h.ready.store(kReadyWord, std::memory_order_release);
}

void ConfigBlockWriter::adopt(std::span<const Entry> source) {
  BlockHeader& h = *mapping_->header();
  // validate() checked key_count against the capacity; a hostile process may have moved it since.
  const std::uint64_t n = std::min<std::uint64_t>(h.key_count.load(std::memory_order_relaxed),
                                                  mapping_->geometry().slot_capacity);
  ConfigSlot* slots = mapping_->slots();
  for (std::uint64_t i = 0; i < n; ++i) {
    const ConfigSlot& s = slots[i];
    const std::string_view key(s.key, std::min<std::size_t>(s.key_len, kMaxKeyBytes));
    const bool type_ok = s.type >= ValueType::kFloat64 && s.type <= ValueType::kString;
    if (!type_ok || s.key_len > kMaxKeyBytes || !index_.emplace(std::string(key), i).second) {
      index_.clear();
      throw ShmError("cannot take over " + block_label(name()) + ": slot " + std::to_string(i) +
                     " ('" + std::string(key) + "') is corrupt; remove the block and recreate it");
    }
  }
  std::vector<Pending> pending;
  validate_against(source, pending, mapping_->geometry().slot_capacity);

  report_.took_over = true;
  report_.tree_was_mid_write = (h.tree_seq.load(std::memory_order_relaxed) & 1) != 0;
  std::vector<bool> restored(n, false);
  for (const Pending& p : pending) {
    if (p.slot >= 0) restored[static_cast<std::size_t>(p.slot)] = true;
  }
  std::vector<std::uint32_t> orphans;
  for (std::uint64_t i = 0; i < n; ++i) {
    if ((slots[i].seq.load(std::memory_order_relaxed) & 1) == 0) continue;
    ++report_.slots_mid_write;
    if (!restored[i]) orphans.push_back(static_cast<std::uint32_t>(i));
  }
  h.writer_pid.store(static_cast<std::uint64_t>(::getpid()), std::memory_order_relaxed);
  h.writer_start_ticks.store(own_start_ticks(), std::memory_order_relaxed);
  h.writer_start_unix_ns.store(unix_ns(), std::memory_order_relaxed);
  h.repairs.fetch_add(1, std::memory_order_relaxed);
  heartbeat();
  write(pending, orphans);
}

void ConfigBlockWriter::validate_against(std::span<const Entry> batch, std::vector<Pending>& out,
                                         std::uint64_t capacity) const {
  // The writer's own count of published keys, not the block's word, which others could change.
  const std::uint64_t key_count = index_.size();
  out.clear();
  out.reserve(batch.size());
  std::unordered_set<std::string_view> seen;
  std::uint64_t added = 0;
  for (const Entry& e : batch) {
    validate_key(e.path);
    if (e.value.type() == ValueType::kNone) {
      throw ShmError("key '" + e.path + "': the value has no type");
    }
    if (!seen.insert(e.path).second) {
      throw ShmError("key '" + e.path + "' appears twice in one batch");
    }
    const auto it = index_.find(e.path);
    if (it == index_.end()) {
      ++added;
      out.push_back({&e, -1});
      continue;
    }
    const ValueType held = mapping_->slots()[it->second].type;
    if (held != e.value.type()) {
      throw ShmError("key '" + e.path + "' in " + block_label(name()) + " holds " +
                     std::string(type_name(held)) + "; refusing a " +
                     std::string(type_name(e.value.type())) + " value (" + e.value.to_string() +
                     ")");
    }
    out.push_back({&e, static_cast<std::int64_t>(it->second)});
  }
  if (key_count + added > capacity) {
    throw ShmError(block_label(name()) + " is full: " + std::to_string(key_count) + " of " +
                   std::to_string(capacity) + " slots used, the write adds " +
                   std::to_string(added) + " keys");
  }
}

void ConfigBlockWriter::write(std::span<const Pending> batch,
                              std::span<const std::uint32_t> orphans) {
  BlockHeader& h = *mapping_->header();
  ConfigSlot* slots = mapping_->slots();
  const std::uint64_t tree = seqlock::write_begin(h.tree_seq);
  bool hooked = false;
  for (const Pending& p : batch) {
    const Entry& e = *p.entry;
    if (p.slot >= 0) {
      ConfigSlot& s = slots[p.slot];
      const std::uint64_t seq = seqlock::write_begin(s.seq);
      if (!hooked && options_.mid_write_hook) {
        hooked = true;
        options_.mid_write_hook();
      }
      SlotCodec::store(s, e.value);
      seqlock::write_end(s.seq, seq);
      continue;
    }
    // A new key: fill the slot while no reader can see it, then publish it through key_count.
    const std::uint64_t i = index_.size();
    ConfigSlot& s = slots[i];
    const std::uint64_t seq = s.seq.load(std::memory_order_relaxed);
    s.seq.store((seq + 1) & ~std::uint64_t{1}, std::memory_order_relaxed);
    s.key_hash = key_hash(e.path);
    s.type = e.value.type();
    s.key_len = static_cast<std::uint16_t>(e.path.size());
    std::memset(s.key, 0, sizeof s.key);
    std::memcpy(s.key, e.path.data(), e.path.size());
    SlotCodec::store(s, e.value);
    h.key_count.store(i + 1, std::memory_order_release);
    index_.emplace(e.path, static_cast<std::uint32_t>(i));
  }
  for (const std::uint32_t i : orphans) {
    ConfigSlot& s = slots[i];
    const std::string_view key(s.key, s.key_len);
    if (s.type == ValueType::kString) {
      // Its bytes may be torn; readers keep their last good copy until it is set again.
      report_.unrestored.emplace_back(key);
    } else {
      // One word cannot be torn: whichever value it holds is whole.
      seqlock::write_end(s.seq, s.seq.load(std::memory_order_relaxed));
    }
  }
  seqlock::write_end(h.tree_seq, tree);
}

void ConfigBlockWriter::set(std::string_view path, const Value& value) {
  const Entry e{std::string(path), value};
  apply(std::span<const Entry>(&e, 1));
}

void ConfigBlockWriter::apply(std::span<const Entry> batch) {
  std::vector<Pending> pending;
  try {
    validate_against(batch, pending, mapping_->geometry().slot_capacity);
  } catch (const ShmError&) {
    // A slot of a cut block reads as zeros (no type): the cut is the reason, not the type.
    if (auto why = mapping_->damage()) throw ShmError(*why);
    throw;
  }
  write(pending, {});
}

void ConfigBlockWriter::heartbeat() noexcept {
  mapping_->header()->heartbeat_unix_ns.store(unix_ns(), std::memory_order_relaxed);
}

std::uint64_t ConfigBlockWriter::generation() const noexcept {
  return mapping_->header()->tree_seq.load(std::memory_order_relaxed) / 2;
}

void ConfigBlockWriter::stamp(const BlockLease& lease) noexcept {
  BlockHeader& h = *mapping_->header();
  const std::uint64_t seq = seqlock::write_begin(h.lease_seq);
  h.lease_attempt.store(lease.attempt, seqlock::kPayloadStore);
  std::uint64_t words[kLeaseDigestBytes / 8];
  std::memcpy(words, lease.digest.data(), kLeaseDigestBytes);
  for (std::size_t i = 0; i < kLeaseDigestBytes / 8; ++i)
    h.lease_digest[i].store(words[i], seqlock::kPayloadStore);
  seqlock::write_end(h.lease_seq, seq);
}

std::optional<std::string> ConfigBlockWriter::damage() const {
  return mapping_->damage();
}

bool ConfigBlockWriter::remove_own() {
  if (!mapping_->named()) return false;
  return remove(name());
}

bool ConfigBlockWriter::remove_if_lease(std::string_view block_name, const BlockLease& lease) {
  std::optional<ConfigBlockReader> reader;
  try {
    reader.emplace(ConfigBlockReader::attach(block_name));
  } catch (const ShmError&) {
    return false;
  }
  if (reader->lease() != lease || !reader->mapping_->named()) return false;
  return remove(block_name);
}

bool ConfigBlockWriter::remove(std::string_view block_name) {
  validate_block_name(block_name);
  return boost::interprocess::shared_memory_object::remove(std::string(block_name).c_str());
}

}  // namespace tv::shm
