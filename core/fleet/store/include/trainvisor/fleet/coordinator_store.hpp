// The coordinator's state behind one interface: the job queue, the config hub and the telemetry
// store over one database, the SQLite file `coordinator.sqlite` in the data directory. The
// coordinator reaches its state only through this object and the three stores it hands out, so
// a server database can stand in later by keeping the promises below, and no others.
//
// Who calls it: the coordinator, once per data directory (tests: on a temporary directory).
// Thread-safety: the stores it hands out may be shared by any number of threads; each one
// serialises its own calls with its mutex. The references live as long as this object (a move
// carries them along).
//
// One file, three connections. Each store keeps its own connection to the file (WAL lets them
// read beside each other's writes) rather than sharing one, because durability is a property of
// a connection in SQLite (PRAGMA synchronous) and the tables differ in it (below), and because
// each store keeps its own mutex, so a telemetry read does not wait behind a claim in this
// process. Writes still take the file's one write lock in turn (waiting up to the busy timeout).
//
// Isolation:
// - Every call that writes is one transaction (BEGIN IMMEDIATE): all of it or nothing, ordered
//   against every other writer of the file, in this process or another.
// - JobQueue decides inside its transactions (a claim, every lease call, a sweep): exactly one
//   of N racing claimers wins a job, across processes too.
// - ConfigHub and TelemetryStore read what a write depends on (the revision, the frozen
//   prefixes, the last stored step) just before their transaction, under their mutex: a call is
//   atomic against the other calls of this process, and the file must have one coordinator.
// - Reads see the latest commit at each statement. A read of several statements (explain,
//   subscribe, curve) is consistent against this process's writers (the mutex) only.
//
// Durability per table, on power loss (a crash of the process loses nothing committed):
// - jobs, workers, hosts (the queue), host_credentials and config_jobs, config_values,
// config_frozen,
//   config_audit (the hub): synchronous=FULL: a commit is fsynced before the call returns, so
//   an acknowledged claim, completion, config write or freeze survives.
// - telemetry, telemetry_applied: synchronous=NORMAL: fsynced at checkpoints only, so the last
//   batches may be lost (a gap at the end of a curve). The file stays consistent; the next
//   FULL commit of another table makes earlier telemetry durable too (they share one WAL).
//
// Schema: PRAGMA user_version is the queue's schema version (kQueueSchemaVersion); the host
// credentials, config and telemetry tables are created when missing.
//
// Secrets: the file holds no secret a client could present: lease tokens and host credentials
// are stored as their SHA-256. The file and its -wal/-shm are created owner-only (0600) and an
// existing one is made so at open, since its contents still say who runs what.
//
// Old layout: a data directory that holds queue.sqlite, config.sqlite or telemetry.sqlite (the
// layout before one file) and no coordinator.sqlite is refused, naming the files and what to
// do; nothing is migrated. Once coordinator.sqlite exists the old files are ignored.
//
// Errors: open() throws StoreError (store/store_error.hpp) for every failure, naming the file.
// After that each store keeps its documented style: database failures throw StoreError,
// refusals are their own results or error types (QueueResult, ConfigWriteResult, ...).
#pragma once

#include <memory>
#include <string>

#include "trainvisor/fleet/config_hub.hpp"
#include "trainvisor/fleet/host_credentials.hpp"
#include "trainvisor/fleet/job_queue.hpp"
#include "trainvisor/fleet/store/store_error.hpp"
#include "trainvisor/fleet/telemetry_store.hpp"

namespace tv::fleet {

// The coordinator's database, relative to its data directory.
inline constexpr const char* kCoordinatorDatabase = "coordinator.sqlite";

class CoordinatorStore {
 public:
  // Opens (creating) DATA_DIR/coordinator.sqlite; the directory must exist.
  static CoordinatorStore open(const std::string& data_dir, QueueOptions queue_options = {},
                               TelemetryOptions telemetry_options = {});

  CoordinatorStore(CoordinatorStore&&) noexcept;
  CoordinatorStore& operator=(CoordinatorStore&&) noexcept;
  ~CoordinatorStore();

  JobQueue& queue();
  ConfigHub& config();
  TelemetryStore& telemetry();
  HostCredentials& hosts();
  const std::string& path() const;  // the database file

 private:
  struct Stores;
  explicit CoordinatorStore(std::unique_ptr<Stores> stores);
  std::unique_ptr<Stores> stores_;
};

}  // namespace tv::fleet
