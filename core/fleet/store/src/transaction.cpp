#include "trainvisor/fleet/store/transaction.hpp"

#include <sqlite3.h>

#include <cstdio>

namespace tv::fleet::store {

Transaction::Transaction(Connection& db) : db_(db) {
  if (db_.transaction_live_) {
    db_.fail("BEGIN IMMEDIATE: a transaction is already open on this connection (no nesting)",
             SQLITE_MISUSE);
  }
  // A transaction that a failed ROLLBACK left open (reported on stderr then) would refuse every
  // BEGIN from now on: end it first, so the connection recovers without a restart.
  if (db_.in_transaction()) db_.exec("ROLLBACK");
  db_.exec("BEGIN IMMEDIATE");
  db_.transaction_live_ = true;
  db_.ended_by_ = nullptr;
}

Transaction::~Transaction() {
  db_.transaction_live_ = false;
  db_.ended_by_ = nullptr;
  // After some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) SQLite has rolled back
  // already and a second ROLLBACK would only fail; after a busy COMMIT the transaction is still
  // open, and ends here.
  if (!open_ || !db_.in_transaction()) return;
  char* error = nullptr;
  if (sqlite3_exec(db_.db_, "ROLLBACK", nullptr, nullptr, &error) != SQLITE_OK) {
    // A destructor may not throw, and the error being unwound is the one to report; the next
    // Transaction on this connection ends what is left open.
    std::fprintf(stderr, "%s %s: ROLLBACK failed: %s\n", db_.options().owner.c_str(),
                 db_.path().c_str(), error != nullptr ? error : "unknown error");
  }
  sqlite3_free(error);
}

void Transaction::commit() {
  // Throws the error that ended the transaction, when SQLite rolled it back already.
  db_.exec("COMMIT");
  open_ = false;
  db_.transaction_live_ = false;
}

}  // namespace tv::fleet::store
