// Fuzz target block_attach: the input is the bytes of a shared-memory block as another process
// of the same user could leave them. Attach must refuse it with ShmError or map it; then every
// read path (what `shm inspect` shows: header, keys, ring state, lease; a snapshot; handles of
// every type; the telemetry drain and a push) must stay inside the block, and once more after
// the object is cut to half its size under the mapping (the fault is contained to the block).
// One object per process, rewritten for each input: no create or unlink per run.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace {

using namespace tv::shm;

const std::string& object_name() {
  static const std::string name = "trainvisor.fuzz-block-attach-" + std::to_string(::getpid());
  return name;
}

int object_fd() {
  static const int fd = [] {
    const int f = ::shm_open(object_name().c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (f < 0) std::abort();
    std::atexit([] { ::shm_unlink(object_name().c_str()); });
    return f;
  }();
  return fd;
}

void set_bytes(const std::uint8_t* data, std::size_t size) {
  const int fd = object_fd();
  // Cut to 0 first, so bytes a previous input left past this one's end read as zeros.
  if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) std::abort();
  if (size > 0 && ::pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) std::abort();
}

template <class T>
void read_handle(const ConfigBlockReader& r, const std::string& path, T fallback) {
  try {
    Handle<T> h = r.resolve<T>(path);
    h.get(fallback);
    h.get(fallback);
  } catch (const ShmError&) {
    // A malformed key, or one of another type.
  }
}

// Each key as a trainer resolves it: with the type the block says it holds.
void read_key(const ConfigBlockReader& r, const KeyEntry& e) {
  switch (e.value.type()) {
    case ValueType::kFloat64:
      return read_handle<double>(r, e.path, 0.5);
    case ValueType::kInt64:
      return read_handle<std::int64_t>(r, e.path, 3);
    case ValueType::kBool:
      return read_handle<bool>(r, e.path, true);
    case ValueType::kString:
      return read_handle<ShortString>(r, e.path, ShortString{});
    default:
      return read_handle<double>(r, e.path, 0.5);  // a type no key may have: no binding
  }
}

void read_everything(const ConfigBlockReader& r) {
  (void)r.info();
  (void)r.ring_state();
  (void)r.lease();
  (void)r.lease_version();
  (void)r.damage();
  std::size_t keys = 0;
  for (const KeyEntry& e : r.entries()) {
    (void)e.value.to_string();
    if (keys++ < 8) read_key(r, e);
  }
  try {
    Snapshot s =
        r.snapshot(std::vector<SnapshotKey>{{"training/optimizer/learning_rate", Value::f64(0.1)},
                                            {"training/optimizer/name", Value::string("sgd")},
                                            {"training/control/max_epochs", Value::i64(1)}});
    s.read();
  } catch (const ShmError&) {
    // One of the keys exists with another type.
  }
  TelemetryRecord out[64];
  TelemetryReader drain = r.telemetry_reader();
  drain.poll(out);
  r.telemetry_writer().push(TelemetryRecord{});
  drain.poll(out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  set_bytes(data, size);
  try {
    const ConfigBlockReader r =
        ConfigBlockReader::attach(object_name(), ConfigBlockReader::Access::kReadWrite);
    read_everything(r);
    // Another process cuts the object under the mapping: the accesses that fault read zeros.
    if (::ftruncate(object_fd(), static_cast<off_t>(size / 2)) != 0) std::abort();
    read_everything(r);
    if (!r.damage()) std::abort();  // a cut block must say so
  } catch (const ShmError&) {
    // Refused with a message: the expected outcome for most inputs.
  }
  return 0;
}
