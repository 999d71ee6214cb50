#include "trainvisor/fleet/coordinator_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

// The files of the layout before one database: the queue's, the hub's, the telemetry's.
constexpr std::array<const char*, 3> kOldDatabases{"queue.sqlite", "config.sqlite",
                                                   "telemetry.sqlite"};

void refuse_old_layout(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / kCoordinatorDatabase, ec)) return;
  std::string found;
  for (const char* name : kOldDatabases) {
    if (!fs::exists(dir / name, ec)) continue;
    found += (found.empty() ? "" : ", ") + (dir / name).string();
  }
  if (found.empty()) return;
  throw store::StoreError(
      "coordinator store " + dir.string() + ": the data directory holds " + found +
      " from an older trainvisor, which kept its state in three files; this one keeps it in " +
      (dir / kCoordinatorDatabase).string() +
      " and does not migrate them. Move those files out of the data directory to start with an "
      "empty state (a manifest reload brings its jobs back as pending), or keep running the "
      "older trainvisor on this directory");
}

// The database and its -wal and -shm owner-only: created 0600 before SQLite opens it (SQLite
// gives the -wal and -shm the database file's mode), and made 0600 when an older build or a
// wide umask left them readable by others.
void make_owner_only(const std::string& db) {
  const int fd = ::open(db.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    throw store::StoreError("coordinator store " + db + ": cannot open: " + std::strerror(errno));
  ::close(fd);
  for (const std::string& path : {db, db + "-wal", db + "-shm"}) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if ((st.st_mode & 0777) != 0600 && ::chmod(path.c_str(), 0600) != 0)
      throw store::StoreError("coordinator store " + path +
                              ": cannot make it owner-only: " + std::strerror(errno));
  }
}

}  // namespace

struct CoordinatorStore::Stores {
  std::string path;
  JobQueue queue;
  ConfigHub config;
  TelemetryStore telemetry;
  HostCredentials hosts;
};

CoordinatorStore::CoordinatorStore(std::unique_ptr<Stores> stores) : stores_(std::move(stores)) {}
CoordinatorStore::CoordinatorStore(CoordinatorStore&&) noexcept = default;
CoordinatorStore& CoordinatorStore::operator=(CoordinatorStore&&) noexcept = default;
CoordinatorStore::~CoordinatorStore() = default;

CoordinatorStore CoordinatorStore::open(const std::string& data_dir, QueueOptions queue_options,
                                        TelemetryOptions telemetry_options) {
  refuse_old_layout(data_dir);
  const std::string path = (fs::path(data_dir) / kCoordinatorDatabase).string();
  make_owner_only(path);
  try {
    // The queue first: it switches the new file to WAL and writes its schema version.
    return CoordinatorStore(std::make_unique<Stores>(
        Stores{path, JobQueue::open(path, queue_options), ConfigHub::open(path),
               TelemetryStore::open(path, telemetry_options), HostCredentials::open(path)}));
  } catch (const store::StoreError&) {
    throw;
  } catch (const std::runtime_error& e) {
    // QueueError, ConfigHubError: one error type out of open, as the header promises.
    throw store::StoreError(e.what());
  }
}

JobQueue& CoordinatorStore::queue() {
  return stores_->queue;
}
ConfigHub& CoordinatorStore::config() {
  return stores_->config;
}
TelemetryStore& CoordinatorStore::telemetry() {
  return stores_->telemetry;
}
HostCredentials& CoordinatorStore::hosts() {
  return stores_->hosts;
}
const std::string& CoordinatorStore::path() const {
  return stores_->path;
}

}  // namespace tv::fleet
