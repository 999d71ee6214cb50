#include "trainvisor/fleet/pipelines/segment_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <system_error>

#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet::pipelines {
namespace {

namespace fs = std::filesystem;
using store::Statement;

constexpr const char* kOwner = "segment store";
constexpr const char* kSuffix = ".batch";
constexpr const char* kTempPrefix = ".tmp-";
constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0600;
constexpr std::size_t kMaxName = 200;

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS pipeline_segments (pipeline TEXT NOT NULL, seq INTEGER NOT NULL,"
    "  digest TEXT NOT NULL, rows INTEGER NOT NULL, first_sample INTEGER NOT NULL,"
    "  first_time_ns INTEGER NOT NULL, last_time_ns INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    "  sample_shape TEXT NOT NULL, idempotency_key TEXT, PRIMARY KEY (pipeline, seq));"
    "CREATE UNIQUE INDEX IF NOT EXISTS pipeline_segments_key ON pipeline_segments"
    "  (pipeline, idempotency_key) WHERE idempotency_key IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS pipeline_segments_digest ON pipeline_segments (digest);";

constexpr const char* kColumns =
    "pipeline, seq, digest, rows, first_sample, first_time_ns, last_time_ns, bytes, sample_shape";

std::string errno_text(int e) {
  return std::generic_category().message(e);
}

bool is_digest(std::string_view s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Names and keys travel in URLs, headers and log lines: printable ASCII, bounded.
void check_name(std::string_view what, const std::string& value) {
  if (value.empty() || value.size() > kMaxName) {
    throw SegmentError(std::string(what) + " '" + value.substr(0, kMaxName) + "' is not 1 to " +
                       std::to_string(kMaxName) + " characters long");
  }
  for (const char c : value) {
    if (c < 0x20 || c > 0x7e) {
      throw SegmentError(std::string(what) + " '" + value +
                         "' holds a character outside printable ASCII");
    }
  }
}

std::string shape_column(const std::vector<std::int64_t>& shape) {
  std::string s;
  for (const std::int64_t d : shape)
    s += (s.empty() ? "" : ",") + std::to_string(d);
  return s;
}

std::vector<std::int64_t> shape_of_column(const std::string& text) {
  std::vector<std::int64_t> shape;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = std::min(text.find(',', pos), text.size());
    shape.push_back(std::stoll(text.substr(pos, end - pos)));
    pos = end + 1;
  }
  return shape;
}

SegmentInfo info_of_row(const Statement& st) {
  SegmentInfo s;
  s.pipeline = st.column_text(0);
  s.seq = st.column_int(1);
  s.digest = st.column_text(2);
  s.rows = st.column_int(3);
  s.first_sample = st.column_int(4);
  s.first_time_ns = st.column_int(5);
  s.last_time_ns = st.column_int(6);
  s.bytes = st.column_int(7);
  s.sample_shape = shape_of_column(st.column_text(8));
  return s;
}

// A failed system call on a segment file: StorageFull when the disk is full (the coordinator
// answers it apart), else StoreError; both name the path.
[[noreturn]] void fail_os(int e, const std::string& doing, const std::string& path) {
  const std::string message = std::string(kOwner) + " " + path + ": " + doing + ": " +
                              errno_text(e) + "; nothing was stored";
  if (e == ENOSPC || e == EDQUOT) throw store::StorageFull(message, 0, kOwner, path);
  throw store::StoreError(message);
}

int sync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int e = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return e;
}

// Writes `bytes` to a fresh temp file in `dir`, syncs it and renames it to `target`. On any
// failure the temp file is removed and nothing exists under `target` that was not there before.
void write_durably(const std::string& dir, const std::string& target, std::string_view bytes) {
  std::string temp = dir + "/" + kTempPrefix + "XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) fail_os(errno, "cannot create a temp file", dir);
  int e = 0;
  const char* doing = "cannot write";
  for (std::size_t done = 0; e == 0 && done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno != EINTR) e = errno;
    if (n > 0) done += static_cast<std::size_t>(n);
  }
  if (e == 0 && (::fchmod(fd, kFileMode) != 0 || ::fsync(fd) != 0)) {
    e = errno;
    doing = "cannot sync";
  }
  if (::close(fd) != 0 && e == 0) e = errno;
  if (e == 0 && ::rename(temp.c_str(), target.c_str()) != 0) {
    e = errno;
    doing = "cannot rename into place";
  }
  if (e != 0) {
    ::unlink(temp.c_str());
    fail_os(e, doing, temp);
  }
  if (const int d = sync_directory(dir)) {
    ::unlink(target.c_str());
    fail_os(d, "cannot sync the directory", dir);
  }
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw SegmentError("segment file " + path + ": cannot open: " + errno_text(errno));
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      throw SegmentError("segment file " + path + ": cannot read: " + errno_text(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Creates `dir` and its parents; new ones get kDirMode.
void make_directories(const std::string& dir) {
  std::error_code ec;
  fs::path made;
  for (const fs::path& part : fs::path(dir)) {
    made /= part;
    if (::mkdir(made.c_str(), kDirMode) != 0 && errno != EEXIST) {
      throw std::runtime_error(std::string(kOwner) + " directory " + dir + ": cannot create " +
                               made.string() + ": " + errno_text(errno));
    }
  }
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(std::string(kOwner) + " directory " + dir + ": is not a directory");
  }
}

}  // namespace

struct SegmentStore::Impl {
  mutable std::mutex mu;
  mutable store::Connection db;  // guarded by mu
  std::string dir;
  std::vector<std::string> recovered;

  bool read_only;

  Impl(const std::string& db_path, std::string d, bool ro)
      : db(db_path, {kOwner, std::chrono::seconds(10), store::Durability::kFull, ro}),
        dir(std::move(d)),
        read_only(ro) {
    if (!read_only) {
      db.exec(kSchema);
      return;
    }
    Statement st =
        db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='pipeline_segments'");
    if (!st.step()) {
      throw std::runtime_error(std::string(kOwner) + " " + db_path +
                               ": holds no stream segments (no table pipeline_segments)");
    }
  }

  std::string path_of(const std::string& digest) const {
    if (!is_digest(digest)) {
      throw SegmentError("segment digest '" + digest.substr(0, 80) +
                         "' is not 64 lowercase hex characters");
    }
    return dir + "/" + digest + kSuffix;
  }

  std::optional<SegmentInfo> last(const std::string& pipeline) const {
    Statement st = db.prepare(std::string("SELECT ") + kColumns +
                              " FROM pipeline_segments WHERE pipeline=? ORDER BY seq DESC LIMIT 1");
    st.bind_all(pipeline);
    if (!st.step()) return std::nullopt;
    return info_of_row(st);
  }

  std::optional<SegmentInfo> by_key(const std::string& pipeline, const std::string& key) const {
    Statement st = db.prepare(std::string("SELECT ") + kColumns +
                              " FROM pipeline_segments WHERE pipeline=? AND idempotency_key=?");
    st.bind_all(pipeline, key);
    if (!st.step()) return std::nullopt;
    return info_of_row(st);
  }

  bool named(const std::string& digest) const {
    Statement st = db.prepare("SELECT 1 FROM pipeline_segments WHERE digest=? LIMIT 1");
    st.bind_all(digest);
    return st.step();
  }

  std::optional<SegmentInfo> plan(const std::string& pipeline, const SampleBatchData& batch,
                                  const std::string& digest, const std::string& key) const;
  void insert(const SegmentInfo& s, const std::string& key);
  void recover();
};

// The segment stored earlier under the same key, or nothing when the batch is to be stored as
// a new segment. Throws SegmentError for a refusal.
std::optional<SegmentInfo> SegmentStore::Impl::plan(const std::string& pipeline,
                                                    const SampleBatchData& batch,
                                                    const std::string& digest,
                                                    const std::string& key) const {
  const std::string where = "pipeline '" + pipeline + "'";
  if (!key.empty()) {
    if (auto earlier = by_key(pipeline, key)) {
      if (earlier->digest != digest) {
        throw SegmentError(where + ": idempotency key '" + key + "' was used for segment " +
                           std::to_string(earlier->seq) + " with other data (" + earlier->digest +
                           "); choose a new key for a new batch");
      }
      return *earlier;
    }
  }
  const std::optional<SegmentInfo> prev = last(pipeline);
  if (!prev) return std::nullopt;
  if (prev->sample_shape != batch.sample_shape) {
    throw SegmentError(where + ": sample shape (" + shape_column(batch.sample_shape) +
                       ") differs from its earlier segments' (" + shape_column(prev->sample_shape) +
                       ")");
  }
  if (batch.time_ns.front() < prev->last_time_ns) {
    throw SegmentError(where + ": the batch starts at " + std::to_string(batch.time_ns.front()) +
                       ", before the pipeline's last timestamp " +
                       std::to_string(prev->last_time_ns) + " (segment " +
                       std::to_string(prev->seq) + ")");
  }
  return std::nullopt;
}

void SegmentStore::Impl::insert(const SegmentInfo& s, const std::string& key) {
  Statement st = db.prepare(std::string("INSERT INTO pipeline_segments (") + kColumns +
                            ", idempotency_key) VALUES (?,?,?,?,?,?,?,?,?,?)");
  st.bind_all(s.pipeline, s.seq, s.digest, s.rows, s.first_sample, s.first_time_ns, s.last_time_ns,
              s.bytes, shape_column(s.sample_shape));
  if (key.empty()) {
    st.bind_null(10);
  } else {
    st.bind_text(10, key);
  }
  st.run();
}

// A crash leaves temp files (mid-write) and files no row names (between rename and commit).
void SegmentStore::Impl::recover() {
  std::vector<std::string> doomed;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool temp = name.starts_with(kTempPrefix);
    const bool segment = name.size() == 64 + std::string_view(kSuffix).size() &&
                         name.ends_with(kSuffix) && is_digest(name.substr(0, 64));
    if (temp || (segment && !named(name.substr(0, 64)))) doomed.push_back(it->path().string());
  }
  if (ec) throw std::runtime_error(std::string(kOwner) + " directory " + dir + ": " + ec.message());
  for (const std::string& path : doomed) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      throw std::runtime_error(std::string(kOwner) + ": cannot remove " + path + ", left by a " +
                               "crash: " + errno_text(errno));
    }
    recovered.push_back(path);
  }
  // Best effort: a removal the disk forgets is made again at the next open.
  if (!doomed.empty()) sync_directory(dir);
}

SegmentStore::SegmentStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SegmentStore::SegmentStore(SegmentStore&&) noexcept = default;
SegmentStore& SegmentStore::operator=(SegmentStore&&) noexcept = default;
SegmentStore::~SegmentStore() = default;

SegmentStore SegmentStore::open(const std::string& db_path, const std::string& dir) {
  if (dir.empty()) throw std::runtime_error(std::string(kOwner) + ": the directory is empty");
  make_directories(dir);
  auto impl = std::make_unique<Impl>(db_path, dir, false);
  std::lock_guard lock(impl->mu);
  impl->recover();
  return SegmentStore(std::move(impl));
}

SegmentStore SegmentStore::open_read_only(const std::string& db_path, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(db_path, ec)) {
    throw std::runtime_error(std::string(kOwner) + " " + db_path + ": no such database file");
  }
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(std::string(kOwner) + " directory " + dir + ": no such directory");
  }
  return SegmentStore(std::make_unique<Impl>(db_path, dir, true));
}

SegmentInfo SegmentStore::append(const std::string& pipeline, const SampleBatchData& batch,
                                 const std::string& idempotency_key) {
  if (impl_->read_only) {
    throw SegmentError("pipeline '" + pipeline + "': the segment store " + impl_->dir +
                       " was opened read-only; nothing was stored");
  }
  check_name("pipeline name", pipeline);
  if (!idempotency_key.empty()) check_name("idempotency key", idempotency_key);
  const std::string bytes = encode_batch(batch);
  const std::string digest = sha256_hex(bytes);
  std::lock_guard lock(impl_->mu);
  // Checked before the file is written, so that a refusal or a retry writes nothing, and again
  // inside the transaction, which another connection to the database cannot overtake.
  if (auto earlier = impl_->plan(pipeline, batch, digest, idempotency_key)) return *earlier;
  const std::string path = impl_->path_of(digest);
  struct stat st {};
  const bool existed = ::stat(path.c_str(), &st) == 0;
  if (!existed) write_durably(impl_->dir, path, bytes);
  try {
    store::Transaction tx(impl_->db);
    if (auto earlier = impl_->plan(pipeline, batch, digest, idempotency_key)) return *earlier;
    const std::optional<SegmentInfo> prev = impl_->last(pipeline);
    SegmentInfo s{pipeline,
                  prev ? prev->seq + 1 : 0,
                  digest,
                  static_cast<std::int64_t>(batch.rows),
                  prev ? prev->first_sample + prev->rows : 0,
                  batch.time_ns.front(),
                  batch.time_ns.back(),
                  static_cast<std::int64_t>(bytes.size()),
                  batch.sample_shape};
    impl_->insert(s, idempotency_key);
    tx.commit();
    return s;
  } catch (...) {
    // The file this append created must not outlive its refused or failed row. Whether another
    // row names it cannot be asked of a database that fails; then open() removes it if needed.
    bool named = true;
    try {
      named = impl_->named(digest);
    } catch (const store::StoreError&) {
    }
    if (!existed && !named) ::unlink(path.c_str());
    throw;
  }
}

std::vector<SegmentInfo> SegmentStore::segments(const std::string& pipeline, std::int64_t from_seq,
                                                std::int64_t limit) const {
  std::lock_guard lock(impl_->mu);
  Statement st = impl_->db.prepare(std::string("SELECT ") + kColumns +
                                   " FROM pipeline_segments WHERE pipeline=? AND seq>=? ORDER BY "
                                   "seq LIMIT ?");
  st.bind_all(pipeline, from_seq, limit < 0 ? std::int64_t{-1} : limit);
  std::vector<SegmentInfo> out;
  while (st.step())
    out.push_back(info_of_row(st));
  return out;
}

std::vector<std::string> SegmentStore::pipelines() const {
  std::lock_guard lock(impl_->mu);
  Statement st =
      impl_->db.prepare("SELECT DISTINCT pipeline FROM pipeline_segments ORDER BY pipeline");
  std::vector<std::string> out;
  while (st.step())
    out.push_back(st.column_text(0));
  return out;
}

std::optional<SegmentInfo> SegmentStore::last(const std::string& pipeline) const {
  std::lock_guard lock(impl_->mu);
  return impl_->last(pipeline);
}

std::int64_t SegmentStore::total_rows(const std::string& pipeline) const {
  const std::optional<SegmentInfo> s = last(pipeline);
  return s ? s->first_sample + s->rows : 0;
}

SampleBatchData SegmentStore::read(const std::string& digest) const {
  const std::string path = path_of(digest);
  const std::string bytes = read_file(path);
  const std::string actual = sha256_hex(bytes);
  if (actual != digest) {
    throw SegmentError("segment file " + path + ": its bytes hash to " + actual +
                       ", not to its name; the file is corrupt");
  }
  try {
    return decode_batch(bytes, BatchLimits{bytes.size(), SIZE_MAX, SIZE_MAX});
  } catch (const BatchError& e) {
    throw SegmentError("segment file " + path + ": " + e.what());
  }
}

std::string SegmentStore::path_of(const std::string& digest) const {
  return impl_->path_of(digest);
}

std::vector<std::string> SegmentStore::recovered() const {
  std::lock_guard lock(impl_->mu);
  return impl_->recovered;
}

}  // namespace tv::fleet::pipelines
