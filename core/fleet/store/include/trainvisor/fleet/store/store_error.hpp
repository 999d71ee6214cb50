// The one exception type of the SQLite layer (tv_store) and of the coordinator's store.
//
// Error style of the layer: a database failure (cannot open, busy past the timeout, disk full,
// I/O error, constraint violated, a statement misused) is a broken invariant for the caller and
// throws StoreError; there are no expected failures at this level, so there is no result type.
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

}  // namespace tv::fleet::store
