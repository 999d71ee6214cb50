// The one transaction type of the SQLite layer. Construction runs BEGIN IMMEDIATE; every exit
// that is not an explicit commit() rolls back: an exception, an early return, a COMMIT that
// failed. No store writes ROLLBACK by hand.
//
// Why IMMEDIATE: it takes the file's write lock up front (waiting up to the busy timeout, then
// StoreError with busy()), so a read-then-write inside cannot be overtaken by another
// connection and never fails half-way with SQLITE_BUSY_SNAPSHOT. Every transaction of the
// coordinator's stores writes, so there is no deferred (read-only) form.
//
// The first error is the one reported: when SQLite has rolled the transaction back on its own
// (a full disk, some I/O errors), every later statement and commit() inside it throws that
// error again (StorageFull for a full disk), and the destructor does not try a ROLLBACK that
// could only fail. A ROLLBACK that fails otherwise is reported on stderr (a destructor does not
// throw) and the next Transaction on the connection ends what it left open.
//
// Nesting is not supported (SQLite has no nested BEGIN): a second Transaction on a connection
// that is inside one throws StoreError. Thread-safety: the connection's (one thread at a time).
#pragma once

#include "trainvisor/fleet/store/connection.hpp"

namespace tv::fleet::store {

class Transaction {
 public:
  explicit Transaction(Connection& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  // Throws StoreError when COMMIT fails (StorageFull for a full disk); nothing is written then.
  void commit();

 private:
  Connection& db_;
  bool open_ = true;
};

}  // namespace tv::fleet::store
