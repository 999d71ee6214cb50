// The one exception type of the SQLite layer (tv_store) and of the coordinator's store.
//
// Error style of the layer: a database failure (cannot open, busy past the timeout, disk full,
// I/O error, constraint violated, a statement misused) is a broken invariant for the caller and
// throws StoreError; there are no expected failures at this level, so there is no result type.
// A full disk throws the subtype StorageFull, which a server answers apart (HTTP 507): it is
// the operator's to fix, and passes without a restart once space is freed.
// The message names the owner ("job queue", "config hub"), the file, what was being done (the
// SQL or the step) and SQLite's own message with its extended result code, e.g.
//   "job queue /srv/tv/coordinator.sqlite: BEGIN IMMEDIATE: database is locked (5) (another
//    connection held the lock past the busy timeout)".
// The stores above it (JobQueue, ConfigHub, TelemetryStore) let StoreError through, except in
// their open() factories, which keep their own documented error types.
//
// Thread-safety: an immutable value; copy it freely.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace tv::fleet::store {

class StoreError : public std::runtime_error {
 public:
  // `code` is SQLite's extended result code, 0 for a failure SQLite did not report.
  explicit StoreError(const std::string& message, int code = 0)
      : std::runtime_error(message), code_(code) {}

  int code() const { return code_; }
  // SQLITE_BUSY or SQLITE_LOCKED (any extended form): another connection held the lock past
  // the busy timeout. The only failure that a caller may sensibly retry.
  bool busy() const;

 private:
  int code_;
};

// The file system holding the database is full (SQLITE_FULL, or an I/O error whose errno is
// ENOSPC or EDQUOT). The write that met it was rolled back whole, as SQLite does for this error;
// reads go on working, and the same write succeeds once space is freed, on the same connection.
class StorageFull : public StoreError {
 public:
  StorageFull(const std::string& message, int code, std::string owner, std::string path)
      : StoreError(message, code), owner_(std::move(owner)), path_(std::move(path)) {}

  // What was being written ("job queue", "config hub", "telemetry store") and where.
  const std::string& owner() const { return owner_; }
  const std::string& path() const { return path_; }

 private:
  std::string owner_;
  std::string path_;
};

}  // namespace tv::fleet::store
