// The mapped block: the shared-memory object, its mapping and typed views of its regions.
// Internal to shm/.
#pragma once

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fault_guard.hpp"
#include "trainvisor/shm/layout.hpp"

namespace tv::shm {

struct BlockGeometry {
  std::uint32_t slot_capacity = 0;
  std::uint32_t ring_capacity = 0;
  std::uint64_t slots_offset = 0;
  std::uint64_t ring_offset = 0;
  std::uint64_t records_offset = 0;
  std::uint64_t total_bytes = 0;

  static BlockGeometry compute(std::uint32_t slot_capacity, std::uint32_t ring_capacity);
};

class Mapping {
 public:
  enum class Open { kReadOnly, kReadWrite };

  // Opens and maps an existing block, validating its header. Throws ShmError naming the block.
  static std::shared_ptr<Mapping> attach(std::string_view name, Open mode);

  // Writer side: the object, opened read-write, created (empty) if absent. `created` tells
  // which. The caller takes the writer lock, then sizes and maps it with map_whole().
  static std::unique_ptr<Mapping> open_for_writer(std::string_view name, bool& created);

  // Exclusive, non-blocking flock on the object: the single-writer guarantee. The kernel drops
  // it when the process dies, however it dies. Throws ShmError when another process holds it.
  void lock_writer();
  // Gives the lock up (if held) while the mapping stays.
  void unlock_writer() noexcept;
  // Unmaps and sizes the object; bytes added are zero-filled by the kernel.
  void resize(std::uint64_t bytes);
  // Maps the object at its current size, under a FaultGuard (fault_guard.hpp).
  void map_whole();
  std::uint64_t object_bytes() const;
  // Throws ShmError naming the block unless the mapped header is a ready block of this layout.
  // Keeps the geometry it checked: every later access is bounded by it, never by the header's
  // words, which any process of the same user may overwrite.
  void validate();
  // Adopts `g` as the block's geometry (the writer, which has just laid the block out).
  void set_geometry(const BlockGeometry& g) noexcept { geometry_ = g; }
  const BlockGeometry& geometry() const noexcept { return geometry_; }

  // Why the block cannot be used any more: its object is smaller than its geometry (truncated),
  // an access faulted, or its header lost its magic. nullopt while intact. One fstat.
  std::optional<std::string> damage() const;
  bool faulted() const noexcept { return guard_ && guard_->faulted(); }
  // True while `name()` still names this object (no one removed or replaced it).
  bool named() const noexcept;

  const std::string& name() const noexcept { return name_; }
  bool writable() const noexcept { return writable_; }
  char* base() const noexcept { return static_cast<char*>(region_.get_address()); }
  std::size_t mapped_bytes() const noexcept { return region_.get_size(); }

  BlockHeader* header() const noexcept { return reinterpret_cast<BlockHeader*>(base()); }
  ConfigSlot* slots() const noexcept {
    return reinterpret_cast<ConfigSlot*>(base() + geometry_.slots_offset);
  }
  RingHeader* ring() const noexcept {
    return reinterpret_cast<RingHeader*>(base() + geometry_.ring_offset);
  }
  TelemetrySlot* records() const noexcept {
    return reinterpret_cast<TelemetrySlot*>(base() + geometry_.records_offset);
  }

  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping();

 private:
  Mapping(std::string name, boost::interprocess::shared_memory_object object, bool writable);
  BlockGeometry check_header() const;  // the geometry it checked

  std::string name_;
  boost::interprocess::shared_memory_object object_;
  boost::interprocess::mapped_region region_;
  std::optional<FaultGuard> guard_;  // after region_: unregistered before the unmap
  BlockGeometry geometry_;
  bool writable_ = false;
  bool locked_ = false;
};

}  // namespace tv::shm
