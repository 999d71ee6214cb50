#include "trainvisor/fleet/artifact_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet {

namespace fs = std::filesystem;

namespace {

constexpr mode_t kDirMode = 0750;
constexpr mode_t kFileMode = 0640;
constexpr std::size_t kWriteBuffer = std::size_t{1} << 20;

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

std::string q(std::string_view v) {
  return "'" + std::string(v) + "'";
}

ArtifactError io_error(std::string message) {
  return {ArtifactErrc::io, std::move(message)};
}

// The code for a failed system call's errno: a full file system (or quota) is the operator's to
// fix and is answered apart from other I/O errors.
ArtifactErrc os_code(int e) {
  return e == ENOSPC || e == EDQUOT ? ArtifactErrc::storage_full : ArtifactErrc::io;
}

// Retries short writes and EINTR, which a plain write() leaves to the caller.
bool write_all(int fd, const std::byte* data, std::size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// A rename or a new entry is durable only once its directory is synced.
int fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

// Creates one directory with our mode; returns errno, 0 when it exists or was made. `created`
// tells the caller that the parent needs an fsync.
int make_dir(const fs::path& dir, bool* created = nullptr) {
  if (created) *created = false;
  if (::mkdir(dir.c_str(), kDirMode) == 0) {
    if (created) *created = true;
    return 0;
  }
  if (errno != EEXIST) return errno;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return errno;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

nlohmann::json ref_to_json(const ArtifactRef& r) {
  return {{"job_id", r.job_id},
          {"name", r.name},
          {"digest", r.digest},
          {"size", r.size},
          {"time", r.uploaded_at}};
}

// Publishes `from` as `to` unless `to` exists. Returns 0, EEXIST (already stored) or errno.
// renameat2(RENAME_NOREPLACE) makes racing uploads of one digest agree on who stored it; on a
// filesystem without it, link() gives the same no-replace guarantee.
int publish_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL && errno != ENOSYS) return errno;
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

}  // namespace

namespace detail {

struct StoreState {
  fs::path root;
  fs::path objects;
  fs::path tmp;
  fs::path index_path;
  StoreOptions options;

  std::mutex mutex;  // guards everything below
  int index_fd = -1;
  std::uint64_t index_size = 0;
  std::map<std::string, std::map<std::string, ArtifactRef>, std::less<>> refs;  // job → name

  StoreState() = default;
  StoreState(const StoreState&) = delete;
  StoreState& operator=(const StoreState&) = delete;
  ~StoreState() {
    if (index_fd >= 0) ::close(index_fd);
  }

  fs::path object_path(std::string_view digest) const {
    return objects / std::string(digest.substr(0, 2)) / std::string(digest.substr(2));
  }

  // Appends the reference unless the job already has this name at this digest.
  std::optional<ArtifactError> record(ArtifactRef ref) {
    std::lock_guard lock(mutex);
    auto& names = refs[ref.job_id];
    if (auto it = names.find(ref.name); it != names.end() && it->second.digest == ref.digest) {
      return std::nullopt;
    }
    const std::string line = ref_to_json(ref).dump() + "\n";
    const auto* bytes = reinterpret_cast<const std::byte*>(line.data());
    if (!write_all(index_fd, bytes, line.size()) || ::fsync(index_fd) != 0) {
      const int e = errno;
      // A partial line would glue itself to the next append; cut it off while we still know
      // where it began.
      if (::ftruncate(index_fd, static_cast<off_t>(index_size)) != 0) {
        // Nothing more to do here: open() repairs a torn last line.
      }
      if (names.empty()) refs.erase(ref.job_id);
      return ArtifactError{os_code(e), "artifact index " + index_path.string() +
                                           ": cannot record job " + q(ref.job_id) + " name " +
                                           q(ref.name) + " -> " + ref.digest + ": " +
                                           errno_text(e) + " (the object itself is stored)"};
    }
    index_size += line.size();
    names[ref.name] = std::move(ref);
    return std::nullopt;
  }

  // Reads the index; cuts a torn last line (a crash mid-append) first.
  std::optional<ArtifactError> load_index() {
    const auto fail = [&](const std::string& why) {
      return io_error("artifact index " + index_path.string() + ": " + why);
    };
    std::string text;
    struct stat st {};
    if (::fstat(index_fd, &st) != 0) return fail(errno_text(errno));
    text.resize(static_cast<std::size_t>(st.st_size));
    std::size_t got = 0;
    while (got < text.size()) {
      const ssize_t r =
          ::pread(index_fd, text.data() + got, text.size() - got, static_cast<off_t>(got));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return fail(errno_text(errno));
      if (r == 0) break;
      got += static_cast<std::size_t>(r);
    }
    text.resize(got);
    const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    if (complete != text.size()) {
      if (::ftruncate(index_fd, static_cast<off_t>(complete)) != 0 || ::fsync(index_fd) != 0) {
        return fail("cannot cut the torn last line: " + errno_text(errno));
      }
      text.resize(complete);
    }
    index_size = complete;

    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t end = text.find('\n', pos);
      const std::string_view line(text.data() + pos, end - pos);
      pos = end + 1;
      ++line_no;
      const std::string where = "line " + std::to_string(line_no) + ": ";
      ArtifactRef r;
      try {
        const auto j = nlohmann::json::parse(line);
        r.job_id = j.at("job_id").get<std::string>();
        r.name = j.at("name").get<std::string>();
        r.digest = j.at("digest").get<std::string>();
        r.size = j.at("size").get<std::uint64_t>();
        r.uploaded_at = j.at("time").get<std::int64_t>();
      } catch (const nlohmann::json::exception& e) {
        return fail(where + e.what());
      }
      for (const auto& bad :
           {check_job_id(r.job_id), check_artifact_name(r.name), check_digest(r.digest)}) {
        if (bad) return fail(where + bad->message);
      }
      auto& slot = refs[r.job_id][r.name];
      slot = std::move(r);
    }
    return std::nullopt;
  }

  // Uploads of a process that died are never committed; their temp files would pile up.
  void remove_stale_temps() {
    // Best effort: a file we cannot inspect or remove now is retried at the next open().
    std::error_code ec;
    const auto now = fs::file_time_type::clock::now();
    for (fs::directory_iterator it(tmp, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code e2;
      if (!it->is_regular_file(e2)) continue;
      const auto mtime = it->last_write_time(e2);
      if (!e2 && now - mtime > options.stale_upload_after) fs::remove(it->path(), e2);
    }
  }
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Upload

// The upload's running digest; its own struct so that the public header needs no digest header.
struct Upload::Hasher {
  Sha256 sha;
};

Upload::Upload(std::shared_ptr<detail::StoreState> store, std::string declared_digest,
               std::optional<std::uint64_t> declared_size, std::string job_id, std::string name)
    : store_(std::move(store)),
      declared_digest_(std::move(declared_digest)),
      declared_size_(declared_size),
      job_id_(std::move(job_id)),
      name_(std::move(name)) {}

Upload::Upload(Upload&& other) noexcept {
  *this = std::move(other);
}

Upload& Upload::operator=(Upload&& other) noexcept {
  if (this == &other) return *this;
  discard();
  store_ = std::move(other.store_);
  declared_digest_ = std::move(other.declared_digest_);
  declared_size_ = other.declared_size_;
  job_id_ = std::move(other.job_id_);
  name_ = std::move(other.name_);
  temp_path_ = std::exchange(other.temp_path_, {});
  fd_ = std::exchange(other.fd_, -1);
  open_ = std::exchange(other.open_, false);
  received_ = std::exchange(other.received_, 0);
  hasher_ = std::move(other.hasher_);
  buffer_ = std::move(other.buffer_);
  return *this;
}

Upload::~Upload() {
  discard();
}

void Upload::discard() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  temp_path_.clear();
  open_ = false;
  buffer_.clear();
}

std::string Upload::describe() const {
  return "upload of " + declared_digest_ + " for job " + q(job_id_) + " name " + q(name_);
}

ArtifactError Upload::fail(ArtifactErrc code, const std::string& message) {
  discard();
  return {code, describe() + ": " + message};
}

int Upload::flush_buffer() {
  if (buffer_.empty()) return 0;
  if (!write_all(fd_, buffer_.data(), buffer_.size())) return errno;
  buffer_.clear();
  return 0;
}

ArtifactError Upload::fail_os(int e, const std::string& doing) {
  return fail(os_code(e), doing + temp_path_.string() + ": " + errno_text(e));
}

ArtifactResult<std::uint64_t> Upload::write(std::span<const std::byte> bytes) {
  if (!open_) return ArtifactError{ArtifactErrc::upload_closed, describe() + ": already closed"};
  const std::uint64_t max = store_->options.max_bytes;
  if (bytes.size() > max - received_) {
    return fail(ArtifactErrc::too_large, "more than the limit of " + std::to_string(max) +
                                             " bytes (" + std::to_string(received_) +
                                             " received, " + std::to_string(bytes.size()) +
                                             " more offered)");
  }
  if (declared_size_ && bytes.size() > *declared_size_ - received_) {
    return fail(ArtifactErrc::size_mismatch,
                "more than the declared " + std::to_string(*declared_size_) + " bytes");
  }
  try {
    hasher_->sha.update(bytes);
  } catch (const std::runtime_error& e) {
    return fail(ArtifactErrc::io, e.what());
  }
  if (buffer_.size() + bytes.size() > kWriteBuffer) {
    if (const int e = flush_buffer()) return fail_os(e, "cannot write ");
  }
  if (bytes.size() >= kWriteBuffer) {
    if (!write_all(fd_, bytes.data(), bytes.size())) return fail_os(errno, "cannot write ");
  } else {
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
  }
  received_ += bytes.size();
  return received_;
}

ArtifactResult<CommitInfo> Upload::commit() {
  if (!open_) return ArtifactError{ArtifactErrc::upload_closed, describe() + ": already closed"};
  if (const int e = flush_buffer()) return fail_os(e, "cannot write ");
  if (declared_size_ && received_ != *declared_size_) {
    return fail(ArtifactErrc::size_mismatch, std::to_string(received_) + " bytes arrived, " +
                                                 std::to_string(*declared_size_) +
                                                 " were declared; nothing was stored");
  }
  std::string digest;
  try {
    digest = hasher_->sha.hex();
  } catch (const std::runtime_error& e) {
    return fail(ArtifactErrc::io, e.what());
  }
  if (digest != declared_digest_) {
    return fail(ArtifactErrc::digest_mismatch,
                "the bytes hash to " + digest + ", not the declared digest; nothing was stored");
  }

  if (::fchmod(fd_, kFileMode) != 0 || ::fsync(fd_) != 0) return fail_os(errno, "");
  const int close_rc = ::close(fd_);
  fd_ = -1;
  if (close_rc != 0) return fail_os(errno, "");

  detail::StoreState& s = *store_;
  const fs::path target = s.object_path(digest);
  const fs::path shard = target.parent_path();
  bool shard_created = false;
  if (const int e = make_dir(shard, &shard_created)) {
    return fail(os_code(e), shard.string() + ": " + errno_text(e));
  }
  if (shard_created) {
    if (const int e = fsync_dir(s.objects)) {
      return fail(os_code(e), s.objects.string() + ": " + errno_text(e));
    }
  }
  const int published = publish_no_replace(temp_path_, target);
  if (published != 0 && published != EEXIST) {
    return fail(os_code(published),
                "cannot move into " + target.string() + ": " + errno_text(published));
  }
  // On EEXIST the temp file is still there; on success it is gone. discard() handles both.
  if (published == 0) temp_path_.clear();
  discard();
  // Also when deduplicated: the racing upload that stored the object may not have synced the
  // directory yet, and our reference must not outlive a crash that the object does not.
  if (const int e = fsync_dir(shard)) {
    return ArtifactError{os_code(e), describe() + ": " + shard.string() + ": " + errno_text(e)};
  }

  ArtifactRef ref{job_id_, name_, digest, received_,
                  std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()};
  if (auto e = s.record(std::move(ref))) return *e;
  return CommitInfo{digest, received_, published == EEXIST};
}

// ---------------------------------------------------------------------------------------------
// ArtifactStore

ArtifactResult<ArtifactStore> ArtifactStore::open(const fs::path& root, StoreOptions options) {
  const std::string where = "artifact store root " + q(root.string());
  if (root.empty()) return ArtifactError{ArtifactErrc::invalid_argument, where + ": is empty"};
  auto state = std::make_shared<detail::StoreState>();
  state->root = root;
  state->objects = root / "objects";
  state->tmp = root / "tmp";
  state->index_path = root / "index" / "refs.jsonl";
  state->options = options;

  std::error_code ec;
  if (fs::exists(root, ec) && !fs::is_directory(root, ec)) {
    return ArtifactError{ArtifactErrc::invalid_argument, where + ": is not a directory"};
  }
  if (root.has_parent_path()) fs::create_directories(root.parent_path(), ec);
  if (const int e = make_dir(root)) return io_error(where + ": cannot create: " + errno_text(e));
  for (const auto& dir : {state->objects, state->tmp, state->index_path.parent_path()}) {
    if (const int e = make_dir(dir)) {
      return io_error(where + ": not writable: cannot create " + dir.filename().string() +
                      "/: " + errno_text(e));
    }
  }
  // mkdir succeeds on existing directories that may since have become read-only; only creating
  // a file proves that uploads can land.
  std::string probe = (state->tmp / "probe-XXXXXX").string();
  const int probe_fd = ::mkostemp(probe.data(), O_CLOEXEC);
  if (probe_fd < 0) {
    return io_error(where + ": not writable: cannot create a file in tmp/: " + errno_text(errno));
  }
  ::close(probe_fd);
  ::unlink(probe.c_str());

  struct stat tmp_st {
  }, obj_st{};
  if (::stat(state->tmp.c_str(), &tmp_st) != 0 || ::stat(state->objects.c_str(), &obj_st) != 0) {
    return io_error(where + ": " + errno_text(errno));
  }
  if (tmp_st.st_dev != obj_st.st_dev) {
    return ArtifactError{ArtifactErrc::invalid_argument,
                         where +
                             ": tmp/ and objects/ are on different filesystems, so an "
                             "upload cannot be published with an atomic rename"};
  }

  state->index_fd =
      ::open(state->index_path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, kFileMode);
  if (state->index_fd < 0) {
    return io_error(where + ": cannot open " + state->index_path.string() + ": " +
                    errno_text(errno));
  }
  if (auto e = state->load_index()) return *e;
  state->remove_stale_temps();
  return ArtifactStore(std::move(state));
}

ArtifactResult<Upload> ArtifactStore::begin_upload(std::string_view declared_digest,
                                                   std::optional<std::uint64_t> declared_size,
                                                   std::string_view job_id, std::string_view name) {
  for (const auto& bad :
       {check_digest(declared_digest), check_job_id(job_id), check_artifact_name(name)}) {
    if (bad) return *bad;
  }
  const std::string what =
      "upload of " + std::string(declared_digest) + " for job " + q(job_id) + " name " + q(name);
  if (declared_size && *declared_size > state_->options.max_bytes) {
    return ArtifactError{ArtifactErrc::too_large,
                         what + ": declared size " + std::to_string(*declared_size) +
                             " bytes is more than the limit of " +
                             std::to_string(state_->options.max_bytes) + " bytes"};
  }
  Upload up(state_, std::string(declared_digest), declared_size, std::string(job_id),
            std::string(name));
  try {
    up.hasher_ = std::make_unique<Upload::Hasher>();
  } catch (const std::runtime_error& e) {
    return io_error(what + ": cannot start a sha256: " + e.what());
  }
  // mkostemp's O_EXCL random suffix keeps parallel uploads of the same digest apart.
  std::string temp =
      (state_->tmp / ("upload-" + std::string(declared_digest.substr(0, 12)) + "-XXXXXX")).string();
  up.fd_ = ::mkostemp(temp.data(), O_CLOEXEC);
  if (up.fd_ < 0) {
    const int e = errno;
    return ArtifactError{os_code(e), what + ": cannot create a temp file in " +
                                         state_->tmp.string() + ": " + errno_text(e)};
  }
  up.temp_path_ = temp;
  up.open_ = true;
  return up;
}

bool ArtifactStore::contains(std::string_view digest) const {
  return stat(digest).has_value();
}

std::optional<ObjectInfo> ArtifactStore::stat(std::string_view digest) const {
  if (check_digest(digest)) return std::nullopt;
  const fs::path p = state_->object_path(digest);
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return ObjectInfo{std::string(digest), static_cast<std::uint64_t>(st.st_size), p};
}

ArtifactResult<std::ifstream> ArtifactStore::open_read(std::string_view digest) const {
  if (auto bad = check_digest(digest)) return *bad;
  const auto info = stat(digest);
  if (!info) {
    return ArtifactError{ArtifactErrc::not_found,
                         "artifact " + std::string(digest) + ": not in the store"};
  }
  std::ifstream in(info->path, std::ios::binary);
  if (!in) {
    return io_error("artifact " + std::string(digest) + ": cannot open " + info->path.string() +
                    ": " + errno_text(errno));
  }
  return in;
}

ArtifactResult<std::vector<ArtifactRef>> ArtifactStore::list_for_job(
    std::string_view job_id) const {
  if (auto bad = check_job_id(job_id)) return *bad;
  std::vector<ArtifactRef> out;
  std::lock_guard lock(state_->mutex);
  if (auto it = state_->refs.find(job_id); it != state_->refs.end()) {
    for (const auto& [name, ref] : it->second)
      out.push_back(ref);
  }
  return out;
}

const fs::path& ArtifactStore::root() const noexcept {
  return state_->root;
}

const StoreOptions& ArtifactStore::options() const noexcept {
  return state_->options;
}

}  // namespace tv::fleet
