#include "trainvisor/fleet/store/transaction.hpp"

#include <sqlite3.h>

#include <cstdio>

namespace tv::fleet::store {

Transaction::Transaction(Connection& db) : db_(db) {
  db_.exec("BEGIN IMMEDIATE");
}

Transaction::~Transaction() {
  // After some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM) SQLite has rolled back
  // already and a second ROLLBACK would only fail; after a busy COMMIT the transaction is still
  // open, and ends here.
  if (!open_ || !db_.in_transaction()) return;
  char* error = nullptr;
  if (sqlite3_exec(db_.db_, "ROLLBACK", nullptr, nullptr, &error) != SQLITE_OK) {
    // A destructor may not throw, and the error being unwound matters more; but a connection
    // left inside a transaction refuses the next BEGIN, so say why where an operator sees it.
    std::fprintf(stderr, "%s %s: ROLLBACK failed: %s\n", db_.options().owner.c_str(),
                 db_.path().c_str(), error != nullptr ? error : "unknown error");
  }
  sqlite3_free(error);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  open_ = false;
}

}  // namespace tv::fleet::store
