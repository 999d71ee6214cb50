// The C ABI over the C++ API. No exception crosses it: every entry point converts to a return
// value plus tv_shm_last_error().
#include <cstddef>
#include <cstring>
#include <optional>
#include <string>
#include <variant>

#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"
#include "tv_shm.h"

using namespace tv::shm;

struct tv_shm_block {
  ConfigBlockReader reader;
  std::optional<TelemetryWriter> telemetry_writer;
  std::optional<TelemetryReader> telemetry_reader;
};

struct tv_shm_handle {
  std::variant<Handle<double>, Handle<std::int64_t>, Handle<bool>, Handle<ShortString>> handle;
};

struct tv_shm_snapshot {
  Snapshot snapshot;
};

static_assert(sizeof(tv_shm_telemetry) == sizeof(TelemetryRecord));
static_assert(offsetof(tv_shm_telemetry, samples_per_sec) ==
              offsetof(TelemetryRecord, samples_per_sec));
static_assert(offsetof(tv_shm_telemetry, config_revision) ==
              offsetof(TelemetryRecord, config_revision));
static_assert(TV_SHM_MAX_STRING == kMaxStringBytes);

namespace {

thread_local std::string last_error;

template <class F>
auto guarded(F&& f, decltype(f()) on_error) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown error";
  }
  return on_error;
}

Value to_value(const tv_shm_value& v) {
  switch (v.type) {
    case TV_SHM_FLOAT64:
      return Value::f64(v.f64);
    case TV_SHM_INT64:
      return Value::i64(v.i64);
    case TV_SHM_BOOL:
      return Value::boolean(v.b != 0);
    case TV_SHM_STRING:
      return Value::string(std::string_view(v.str, ::strnlen(v.str, sizeof v.str)));
    default:
      throw ShmError("value type " + std::to_string(v.type) + " is not a tv_shm_type");
  }
}

void from_value(const Value& v, tv_shm_value& out) noexcept {
  std::memset(&out, 0, sizeof out);
  out.type = static_cast<int32_t>(v.type());
  switch (v.type()) {
    case ValueType::kFloat64:
      out.f64 = v.as_f64();
      break;
    case ValueType::kInt64:
      out.i64 = v.as_i64();
      break;
    case ValueType::kBool:
      out.b = v.as_bool() ? 1 : 0;
      break;
    case ValueType::kString:
      out.str_len = static_cast<uint32_t>(v.as_string().size());
      std::memcpy(out.str, v.as_string().data(), out.str_len);
      break;
    case ValueType::kNone:
      break;
  }
}

template <class T>
Handle<T>* as(tv_shm_handle* h) {
  if (h == nullptr) throw ShmError("handle is NULL");
  auto* typed = std::get_if<Handle<T>>(&h->handle);
  if (typed == nullptr) {
    throw ShmError("handle for key '" + std::visit([](auto& x) { return x.path(); }, h->handle) +
                   "' was resolved with another type");
  }
  return typed;
}

tv_shm_block* need(tv_shm_block* b) {
  if (b == nullptr) throw ShmError("block is NULL");
  return b;
}

}  // namespace

extern "C" {

int tv_shm_abi_version(void) {
  return TV_SHM_ABI_VERSION;
}

const char* tv_shm_last_error(void) {
  return last_error.c_str();
}

int tv_shm_block_name_for_job(const char* job_id, char* buf, size_t cap) {
  return guarded(
      [&] {
        const std::string name = block_name_for_job(job_id ? job_id : "");
        if (buf == nullptr || name.size() + 1 > cap) {
          throw ShmError("buffer of " + std::to_string(cap) + " bytes is too small for '" + name +
                         "'");
        }
        std::memcpy(buf, name.c_str(), name.size() + 1);
        return static_cast<int>(name.size());
      },
      -1);
}

tv_shm_block* tv_shm_attach(const char* block_name, int access) {
  return guarded(
      [&] {
        const auto mode = access == TV_SHM_READ_WRITE ? ConfigBlockReader::Access::kReadWrite
                                                      : ConfigBlockReader::Access::kReadOnly;
        return new tv_shm_block{
            ConfigBlockReader::attach(block_name ? block_name : "", mode), {}, {}};
      },
      static_cast<tv_shm_block*>(nullptr));
}

void tv_shm_detach(tv_shm_block* block) {
  delete block;
}

tv_shm_handle* tv_shm_resolve(tv_shm_block* block, const char* path, int type) {
  return guarded(
      [&]() -> tv_shm_handle* {
        const ConfigBlockReader& r = need(block)->reader;
        const std::string_view p = path ? path : "";
        switch (type) {
          case TV_SHM_FLOAT64:
            return new tv_shm_handle{r.resolve<double>(p)};
          case TV_SHM_INT64:
            return new tv_shm_handle{r.resolve<std::int64_t>(p)};
          case TV_SHM_BOOL:
            return new tv_shm_handle{r.resolve<bool>(p)};
          case TV_SHM_STRING:
            return new tv_shm_handle{r.resolve<ShortString>(p)};
          default:
            throw ShmError("cannot resolve '" + std::string(p) + "': type " + std::to_string(type) +
                           " is not a tv_shm_type");
        }
      },
      static_cast<tv_shm_handle*>(nullptr));
}

void tv_shm_handle_free(tv_shm_handle* handle) {
  delete handle;
}

double tv_shm_get_f64(tv_shm_handle* handle, double fallback) {
  return guarded([&] { return as<double>(handle)->get(fallback); }, fallback);
}

int64_t tv_shm_get_i64(tv_shm_handle* handle, int64_t fallback) {
  return guarded([&] { return as<std::int64_t>(handle)->get(fallback); }, fallback);
}

int tv_shm_get_bool(tv_shm_handle* handle, int fallback) {
  return guarded([&] { return as<bool>(handle)->get(fallback != 0) ? 1 : 0; }, fallback);
}

int tv_shm_get_string(tv_shm_handle* handle, const char* fallback, char* buf, size_t cap) {
  return guarded(
      [&] {
        ShortString dflt;
        const std::string_view f = fallback ? fallback : "";
        dflt.size = static_cast<std::uint8_t>(std::min(f.size(), kMaxStringBytes));
        std::memcpy(dflt.data, f.data(), dflt.size);
        const ShortString v = as<ShortString>(handle)->get(dflt);
        if (buf == nullptr || cap < std::size_t{v.size} + 1) {
          throw ShmError("buffer of " + std::to_string(cap) + " bytes is too small for a " +
                         std::to_string(v.size) + "-byte string");
        }
        std::memcpy(buf, v.data, v.size);
        buf[v.size] = '\0';
        return static_cast<int>(v.size);
      },
      -1);
}

int tv_shm_handle_bound(tv_shm_handle* handle) {
  if (handle == nullptr) return 0;
  return std::visit([](auto& h) { return h.bound() ? 1 : 0; }, handle->handle);
}

uint64_t tv_shm_handle_fallbacks(const tv_shm_handle* handle) {
  if (handle == nullptr) return 0;
  return std::visit([](const auto& h) { return h.stats().fallbacks; }, handle->handle);
}

tv_shm_snapshot* tv_shm_snapshot_new(tv_shm_block* block, const char* const* paths,
                                     const tv_shm_value* fallbacks, size_t count) {
  return guarded(
      [&] {
        std::vector<SnapshotKey> keys;
        for (size_t i = 0; i < count; ++i) {
          if (paths == nullptr || paths[i] == nullptr || fallbacks == nullptr) {
            throw ShmError("snapshot key " + std::to_string(i) + " has no path or fallback");
          }
          keys.push_back({paths[i], to_value(fallbacks[i])});
        }
        return new tv_shm_snapshot{need(block)->reader.snapshot(keys)};
      },
      static_cast<tv_shm_snapshot*>(nullptr));
}

void tv_shm_snapshot_free(tv_shm_snapshot* snapshot) {
  delete snapshot;
}

int tv_shm_snapshot_read(tv_shm_snapshot* snapshot, tv_shm_value* out, size_t count,
                         uint64_t* generation) {
  return guarded(
      [&] {
        if (snapshot == nullptr) throw ShmError("snapshot is NULL");
        if (count != snapshot->snapshot.size() || out == nullptr) {
          throw ShmError("snapshot has " + std::to_string(snapshot->snapshot.size()) +
                         " keys; the output holds " + std::to_string(count));
        }
        const bool fresh = snapshot->snapshot.read();
        for (size_t i = 0; i < count; ++i)
          from_value(snapshot->snapshot[i], out[i]);
        if (generation != nullptr) *generation = snapshot->snapshot.generation();
        return fresh ? 1 : 0;
      },
      -1);
}

int tv_shm_block_lease(tv_shm_block* block, uint64_t* attempt, char* digest_hex, size_t cap) {
  return guarded(
      [&] {
        const std::optional<BlockLease> lease = need(block)->reader.lease();
        if (!lease) return 0;
        const std::string hex = lease->digest_hex();
        if (digest_hex == nullptr || cap < hex.size() + 1) {
          throw ShmError("buffer of " + std::to_string(cap) + " bytes is too small for a " +
                         std::to_string(hex.size()) + "-digit lease digest");
        }
        std::memcpy(digest_hex, hex.c_str(), hex.size() + 1);
        if (attempt != nullptr) *attempt = lease->attempt;
        return 1;
      },
      -1);
}

uint64_t tv_shm_block_lease_version(tv_shm_block* block) {
  return block == nullptr ? 0 : block->reader.lease_version();
}

int tv_shm_block_heartbeat(tv_shm_block* block, uint64_t* unix_ns) {
  return guarded(
      [&] {
        if (unix_ns == nullptr) throw ShmError("heartbeat output is NULL");
        *unix_ns = need(block)->reader.info().heartbeat_unix_ns;
        return 0;
      },
      -1);
}

int tv_shm_block_check(tv_shm_block* block) {
  return guarded(
      [&] {
        if (const auto why = need(block)->reader.damage()) throw ShmError(*why);
        return 0;
      },
      -1);
}

int tv_shm_telemetry_push(tv_shm_block* block, const tv_shm_telemetry* record) {
  return guarded(
      [&] {
        tv_shm_block* b = need(block);
        if (record == nullptr) throw ShmError("telemetry record is NULL");
        if (!b->telemetry_writer) b->telemetry_writer.emplace(b->reader.telemetry_writer());
        TelemetryRecord r;
        std::memcpy(static_cast<void*>(&r), record, sizeof r);
        b->telemetry_writer->push(r);
        return 0;
      },
      -1);
}

long tv_shm_telemetry_poll(tv_shm_block* block, tv_shm_telemetry* out, size_t max,
                           uint64_t* missed) {
  return guarded(
      [&] {
        tv_shm_block* b = need(block);
        if (out == nullptr && max > 0) throw ShmError("telemetry output is NULL");
        if (!b->telemetry_reader) b->telemetry_reader.emplace(b->reader.telemetry_reader());
        std::vector<TelemetryRecord> records(max);
        const PollResult r = b->telemetry_reader->poll(records);
        std::memcpy(out, records.data(), r.count * sizeof(TelemetryRecord));
        if (missed != nullptr) *missed += r.missed;
        return static_cast<long>(r.count);
      },
      -1L);
}

}  // extern "C"
