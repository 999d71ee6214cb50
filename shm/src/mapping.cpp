#include "mapping.hpp"

#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/interprocess/exceptions.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/value.hpp"

namespace bip = boost::interprocess;

namespace tv::shm {
namespace {

std::string quoted(std::string_view name) {
  return "shared-memory block '" + std::string(name) + "'";
}

constexpr std::uint64_t round_up(std::uint64_t v, std::uint64_t to) {
  return (v + to - 1) / to * to;
}

bool is_power_of_two(std::uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

}  // namespace

BlockGeometry BlockGeometry::compute(std::uint32_t slot_capacity, std::uint32_t ring_capacity) {
  BlockGeometry g;
  g.slot_capacity = slot_capacity;
  g.ring_capacity = ring_capacity;
  g.slots_offset = round_up(sizeof(BlockHeader), kCacheLine);
  g.ring_offset = g.slots_offset + std::uint64_t{slot_capacity} * sizeof(ConfigSlot);
  g.records_offset = g.ring_offset + sizeof(RingHeader);
  g.total_bytes =
      round_up(g.records_offset + std::uint64_t{ring_capacity} * sizeof(TelemetrySlot), 4096);
  return g;
}

Mapping::Mapping(std::string name, bip::shared_memory_object object, bool writable)
    : name_(std::move(name)), object_(std::move(object)), writable_(writable) {}

Mapping::~Mapping() = default;  // closing the descriptor drops the writer flock

std::shared_ptr<Mapping> Mapping::attach(std::string_view name, Open mode) {
  validate_block_name(name);
  const bool writable = mode == Open::kReadWrite;
  bip::shared_memory_object object;
  try {
    object = bip::shared_memory_object(bip::open_only, std::string(name).c_str(),
                                       writable ? bip::read_write : bip::read_only);
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) {
      throw ShmError(quoted(name) + " does not exist (no /dev/shm/" + std::string(name) + ")");
    }
    throw ShmError("cannot open " + quoted(name) + ": " + e.what());
  }
  std::shared_ptr<Mapping> m(new Mapping(std::string(name), std::move(object), writable));
  const std::uint64_t bytes = m->object_bytes();
  if (bytes < sizeof(BlockHeader)) {
    throw ShmError(quoted(name) + " is " + std::to_string(bytes) +
                   " bytes, smaller than a block header (" + std::to_string(sizeof(BlockHeader)) +
                   " bytes): not ready (still being created) or not a Trainvisor block");
  }
  m->map_whole();
  m->validate();
  return m;
}

void Mapping::validate() {
  try {
    geometry_ = check_header();
  } catch (const ShmError&) {
    // A header read as zeros because the object was cut short under it: say so.
    if (faulted()) {
      throw ShmError(quoted(name_) + " was truncated to " + std::to_string(object_bytes()) +
                     " bytes while it was being attached");
    }
    throw;
  }
}

BlockGeometry Mapping::check_header() const {
  if (mapped_bytes() < sizeof(BlockHeader)) {
    throw ShmError(quoted(name_) + " is " + std::to_string(mapped_bytes()) +
                   " bytes, smaller than a block header (" + std::to_string(sizeof(BlockHeader)) +
                   " bytes)");
  }
  const BlockHeader& h = *header();
  const bool ready = h.ready.load(std::memory_order_acquire) == kReadyWord;
  if (!ready && h.magic == 0) {
    throw ShmError(quoted(name_) + " is not ready: its writer has not finished creating it");
  }
  if (h.magic != kBlockMagic) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%016llx", static_cast<unsigned long long>(h.magic));
    throw ShmError(quoted(name_) + " has a wrong magic number " + buf + ": not a Trainvisor block");
  }
  if (h.layout_major != kLayoutMajor) {
    throw ShmError(quoted(name_) + " has layout version " + std::to_string(h.layout_major) + "." +
                   std::to_string(h.layout_minor) + "; this build reads major version " +
                   std::to_string(kLayoutMajor) + " only");
  }
  if (!ready) {
    throw ShmError(quoted(name_) + " is not ready: its writer has not finished creating it");
  }
  // The geometry comes from one read of the capacities, and every check is against it: a process
  // rewriting the header meanwhile cannot make the mapping's bounds larger than what is mapped.
  const BlockGeometry g = BlockGeometry::compute(h.slot_capacity, h.ring_capacity);
  if (g.total_bytes > mapped_bytes()) {
    throw ShmError(quoted(name_) + " is truncated: it is " + std::to_string(mapped_bytes()) +
                   " bytes but its header says " + std::to_string(g.total_bytes));
  }
  if (h.header_bytes != sizeof(BlockHeader) || h.slot_bytes != sizeof(ConfigSlot) ||
      h.record_bytes != sizeof(TelemetrySlot) || h.slots_offset != g.slots_offset ||
      h.ring_offset != g.ring_offset || h.total_bytes != g.total_bytes ||
      !is_power_of_two(g.ring_capacity)) {
    throw ShmError(quoted(name_) +
                   " has an inconsistent header (region sizes and offsets do "
                   "not match layout " +
                   std::to_string(kLayoutMajor) + "." + std::to_string(kLayoutMinor) + ")");
  }
  const std::uint64_t keys = h.key_count.load(std::memory_order_acquire);
  if (keys > g.slot_capacity) {
    throw ShmError(quoted(name_) + " has a corrupt key table: " + std::to_string(keys) +
                   " keys in " + std::to_string(g.slot_capacity) + " slots");
  }
  return g;
}

std::unique_ptr<Mapping> Mapping::open_for_writer(std::string_view name, bool& created) {
  validate_block_name(name);
  const std::string n(name);
  bip::permissions owner_only;
  owner_only.set_permissions(0600);
  try {
    bip::shared_memory_object object(bip::create_only, n.c_str(), bip::read_write, owner_only);
    created = true;
    return std::unique_ptr<Mapping>(new Mapping(n, std::move(object), true));
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() != bip::already_exists_error) {
      throw ShmError("cannot create " + quoted(name) + ": " + e.what());
    }
  }
  try {
    bip::shared_memory_object object(bip::open_only, n.c_str(), bip::read_write);
    created = false;
    return std::unique_ptr<Mapping>(new Mapping(n, std::move(object), true));
  } catch (const bip::interprocess_exception& e) {
    throw ShmError("cannot open " + quoted(name) + " for writing: " + e.what());
  }
}

void Mapping::lock_writer() {
  const int fd = object_.get_mapping_handle().handle;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      std::string who;
      if (object_bytes() >= sizeof(BlockHeader)) {
        map_whole();
        who = " (pid " + std::to_string(header()->writer_pid.load(std::memory_order_relaxed)) + ")";
      }
      throw ShmError(quoted(name_) + " already has a live writer" + who +
                     "; a block has exactly one writer");
    }
    throw ShmError("cannot lock " + quoted(name_) + " for writing: " + std::strerror(errno));
  }
  locked_ = true;
}

void Mapping::unlock_writer() noexcept {
  if (!locked_) return;
  ::flock(object_.get_mapping_handle().handle, LOCK_UN);
  locked_ = false;
}

void Mapping::resize(std::uint64_t bytes) {
  guard_.reset();
  region_ = bip::mapped_region();
  if (bytes == 0) {
    // Boost grows with posix_fallocate (so a full /dev/shm fails here, not with SIGBUS on first
    // touch), which refuses a length of 0: empty the object directly.
    if (::ftruncate(object_.get_mapping_handle().handle, 0) != 0) {
      throw ShmError("cannot empty " + quoted(name_) + ": " + std::strerror(errno));
    }
    return;
  }
  try {
    object_.truncate(static_cast<bip::offset_t>(bytes));
  } catch (const bip::interprocess_exception& e) {
    throw ShmError("cannot size " + quoted(name_) + " to " + std::to_string(bytes) +
                   " bytes: " + e.what());
  }
}

void Mapping::map_whole() {
  guard_.reset();
  region_ = bip::mapped_region();
  try {
    region_ = bip::mapped_region(object_, writable_ ? bip::read_write : bip::read_only);
  } catch (const bip::interprocess_exception& e) {
    throw ShmError("cannot map " + quoted(name_) + ": " + e.what());
  }
  guard_.emplace(region_.get_address(), region_.get_size(), writable_);
}

std::optional<std::string> Mapping::damage() const {
  struct stat st {};
  if (::fstat(object_.get_mapping_handle().handle, &st) != 0) {
    return "cannot read the size of " + quoted(name_) + ": " + std::strerror(errno);
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < geometry_.total_bytes) {
    return quoted(name_) + " was truncated to " + std::to_string(size) + " bytes (expected " +
           std::to_string(geometry_.total_bytes) + ")";
  }
  if (faulted()) {
    return quoted(name_) + " faulted on access: it was truncated (now " + std::to_string(size) +
           " bytes, expected " + std::to_string(geometry_.total_bytes) + ") and regrown";
  }
  if (mapped_bytes() >= sizeof(BlockHeader) && geometry_.total_bytes != 0 &&
      header()->magic != kBlockMagic) {
    return quoted(name_) + " was overwritten: its header lost its magic number";
  }
  return std::nullopt;
}

bool Mapping::named() const noexcept {
  struct stat mine {
  }, named{};
  if (::fstat(object_.get_mapping_handle().handle, &mine) != 0) return false;
  if (::stat(("/dev/shm/" + name_).c_str(), &named) != 0) return false;
  return mine.st_dev == named.st_dev && mine.st_ino == named.st_ino;
}

std::uint64_t Mapping::object_bytes() const {
  bip::offset_t size = 0;
  if (!object_.get_size(size)) {
    throw ShmError("cannot read the size of " + quoted(name_) + ": " + std::strerror(errno));
  }
  return static_cast<std::uint64_t>(size);
}

}  // namespace tv::shm
