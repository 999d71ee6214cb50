#include "trainvisor/fleet/coordinator_store.hpp"

#include <array>
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

}  // namespace

struct CoordinatorStore::Stores {
  std::string path;
  JobQueue queue;
  ConfigHub config;
  TelemetryStore telemetry;
};

CoordinatorStore::CoordinatorStore(std::unique_ptr<Stores> stores) : stores_(std::move(stores)) {}
CoordinatorStore::CoordinatorStore(CoordinatorStore&&) noexcept = default;
CoordinatorStore& CoordinatorStore::operator=(CoordinatorStore&&) noexcept = default;
CoordinatorStore::~CoordinatorStore() = default;

CoordinatorStore CoordinatorStore::open(const std::string& data_dir, QueueOptions queue_options,
                                        TelemetryOptions telemetry_options) {
  refuse_old_layout(data_dir);
  const std::string path = (fs::path(data_dir) / kCoordinatorDatabase).string();
  try {
    // The queue first: it switches the new file to WAL and writes its schema version.
    return CoordinatorStore(std::make_unique<Stores>(
        Stores{path, JobQueue::open(path, queue_options), ConfigHub::open(path),
               TelemetryStore::open(path, telemetry_options)}));
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
const std::string& CoordinatorStore::path() const {
  return stores_->path;
}

}  // namespace tv::fleet
