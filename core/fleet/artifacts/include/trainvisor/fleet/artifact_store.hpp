// The coordinator's content-addressed artifact store: trainers upload a job's bundle, the store
// keeps it once under its sha256, and records which job referenced it under which name.
//
// Layout under the root directory (created 0750 if missing):
//   objects/ab/cdef...   one immutable file per digest (hex split after two characters), 0640
//   tmp/upload-...       uploads in progress; on the same filesystem as objects/ (checked at
//                        open), so that publishing an object is one atomic rename
//   index/refs.jsonl     append-only JSON lines {"job_id","name","digest","size","time"}; the
//                        last line for a (job_id, name) wins, and recording the digest a
//                        (job_id, name) already has appends nothing
//
// An upload streams: bytes go to a temp file and into a sha256 as they arrive, so neither the
// store (beyond a 1 MiB write buffer) nor its caller ever holds a whole bundle. commit() checks the
// computed digest against the declared one, fsyncs the file, renames it into place without
// replacing an existing object (when the object exists the temp file is dropped: deduplicated),
// fsyncs the directory, and then appends and fsyncs the index line. Success is reported only after
// all of that.
//
// Objects are never deleted here: a reference replaced by a newer digest leaves the old object on
// disk. Garbage collection is out of scope.
//
// Who calls it: the coordinator (HTTP upload and download of bundles). One process owns a root:
// the index is read once at open() and then kept in memory, so a second process writing the same
// root would not be seen. open() also removes temp files older than
// StoreOptions::stale_upload_after, which a second live process would not expect either.
//
// Thread-safety: every ArtifactStore method may be called from any thread at the same time;
// copies of an ArtifactStore share one state. An Upload belongs to one thread at a time (it is
// not synchronized itself), but any number of Uploads may run in parallel, for the same digest
// too. The index is guarded by one mutex inside the shared state. An Upload keeps that state
// alive, so the ArtifactStore it came from may be destroyed first.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace tv::fleet {

// Errors: every expected failure (a malformed name, a digest mismatch, a full disk) is an
// ArtifactResult holding an ArtifactError; nothing here throws for them. The store speaks no HTTP:
// the coordinator's route chooses the status, as noted on each code below.

// Why an operation was refused, with the HTTP status the route answers for it.
enum class ArtifactErrc {
  invalid_argument,  // 400: malformed digest, job id or artifact name
  digest_mismatch,   // 400: the bytes do not hash to the declared digest
  size_mismatch,     // 400: the bytes do not add up to the declared size
  too_large,         // 413: more than StoreOptions::max_bytes
  not_found,         // 404: no object with that digest
  upload_closed,     // 409: write or commit on an upload already committed or failed
  io,                // 500: the filesystem refused (the message carries errno's text)
  storage_full,      // 507: the filesystem is full (ENOSPC, EDQUOT); nothing was stored
};

struct ArtifactError {
  ArtifactErrc code;
  std::string message;  // names the thing (digest, job id, name, path) and the reason
};

// A value or the reason there is none. value() on an error throws std::logic_error carrying the
// message, so a test or a caller that forgot to check fails loudly instead of reading garbage.
template <class T>
class [[nodiscard]] ArtifactResult {
 public:
  ArtifactResult(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  ArtifactResult(ArtifactError error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & { return std::get<0>(checked()); }
  const T& value() const& { return std::get<0>(checked()); }
  T&& value() && { return std::get<0>(std::move(checked())); }

  // Only on an error.
  const ArtifactError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, ArtifactError>& checked() {
    if (!ok()) throw std::logic_error("ArtifactResult holds an error: " + error().message);
    return v_;
  }
  const std::variant<T, ArtifactError>& checked() const {
    if (!ok()) throw std::logic_error("ArtifactResult holds an error: " + error().message);
    return v_;
  }

  std::variant<T, ArtifactError> v_;
};

struct StoreOptions {
  // The most bytes one upload may carry; an upload of exactly max_bytes is accepted.
  std::uint64_t max_bytes = std::uint64_t{8} << 30;
  // open() deletes temp files untouched for this long: uploads of a process that died.
  std::chrono::seconds stale_upload_after = std::chrono::hours(24);
};

struct ObjectInfo {
  std::string digest;
  std::uint64_t size = 0;
  std::filesystem::path path;  // for a sendfile-style download
};

// One entry of a job's listing.
struct ArtifactRef {
  std::string job_id;
  std::string name;
  std::string digest;
  std::uint64_t size = 0;
  std::int64_t uploaded_at = 0;  // unix seconds of the commit that recorded it
};

struct CommitInfo {
  std::string digest;
  std::uint64_t size = 0;
  bool deduplicated = false;  // the object was already stored; this upload's bytes were dropped
};

namespace detail {
struct StoreState;
}

// An upload in progress. Move-only; destroying it before a successful commit() deletes its temp
// file. After an error from write() or commit() the temp file is already gone and every later
// call answers upload_closed.
class Upload {
 public:
  Upload(Upload&& other) noexcept;
  Upload& operator=(Upload&& other) noexcept;
  Upload(const Upload&) = delete;
  Upload& operator=(const Upload&) = delete;
  ~Upload();

  // Appends bytes; returns the total received so far. Refuses with too_large at the call that
  // would carry the upload past max_bytes, and with size_mismatch past the declared size.
  ArtifactResult<std::uint64_t> write(std::span<const std::byte> bytes);

  // Publishes the object and records the (job id, name) reference; see the file comment.
  ArtifactResult<CommitInfo> commit();

  std::uint64_t bytes_received() const noexcept { return received_; }
  const std::string& declared_digest() const noexcept { return declared_digest_; }

 private:
  friend class ArtifactStore;
  struct Hasher;
  Upload(std::shared_ptr<detail::StoreState> store, std::string declared_digest,
         std::optional<std::uint64_t> declared_size, std::string job_id, std::string name);

  std::string describe() const;  // the start of every error message about this upload
  // Drops the temp file and closes the upload; `message` says what went wrong.
  ArtifactError fail(ArtifactErrc code, const std::string& message);
  // fail() for a system call's errno `e` on the temp file: "DOING TEMP_PATH: strerror".
  ArtifactError fail_os(int e, const std::string& doing);
  // Writes the buffer out; 0, or the errno of the write that failed.
  int flush_buffer();
  void discard() noexcept;

  std::shared_ptr<detail::StoreState> store_;
  std::string declared_digest_;
  std::optional<std::uint64_t> declared_size_;
  std::string job_id_;
  std::string name_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
  bool open_ = false;  // neither committed nor failed
  std::uint64_t received_ = 0;
  std::unique_ptr<Hasher> hasher_;
  // Small writes are gathered here so that a caller handing over a few KiB at a time does not
  // cost one syscall each.
  std::vector<std::byte> buffer_;
};

class ArtifactStore {
 public:
  // Creates the layout if needed, checks that the root is a writable directory, repairs a torn
  // last index line (a crash mid-append), loads the index and removes stale temp files. Refuses
  // with a message naming the path and the reason.
  static ArtifactResult<ArtifactStore> open(const std::filesystem::path& root,
                                            StoreOptions options = {});

  // Validates everything and creates the temp file; refuses a declared size above max_bytes
  // before any byte is sent (too_large).
  ArtifactResult<Upload> begin_upload(std::string_view declared_digest,
                                      std::optional<std::uint64_t> declared_size,
                                      std::string_view job_id, std::string_view name);

  // A malformed digest is never stored: contains() answers false and stat() nothing, without
  // touching the filesystem. Use check_digest() first to tell the caller why.
  bool contains(std::string_view digest) const;
  std::optional<ObjectInfo> stat(std::string_view digest) const;

  // A binary stream over the object, for a streaming download.
  ArtifactResult<std::ifstream> open_read(std::string_view digest) const;

  // The artifacts of a job, one per name (the latest digest recorded for it), sorted by name.
  // An unknown job has an empty listing.
  ArtifactResult<std::vector<ArtifactRef>> list_for_job(std::string_view job_id) const;

  const std::filesystem::path& root() const noexcept;
  const StoreOptions& options() const noexcept;

 private:
  explicit ArtifactStore(std::shared_ptr<detail::StoreState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::StoreState> state_;
};

// Checks of what a client sends, usable before touching a store. Each returns nothing when the
// value is acceptable, else an invalid_argument error naming the value (escaped) and the reason.
//   digest: exactly 64 characters of [0-9a-f].
//   job id: 1..200 bytes of printable ASCII without space, '/', '\' or "..".
//   artifact name: 1..200 bytes of [A-Za-z0-9._-], not starting with '.', without "..".
std::optional<ArtifactError> check_digest(std::string_view digest);
std::optional<ArtifactError> check_job_id(std::string_view job_id);
std::optional<ArtifactError> check_artifact_name(std::string_view name);

}  // namespace tv::fleet
