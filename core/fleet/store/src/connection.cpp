#include "trainvisor/fleet/store/connection.hpp"

#include <sqlite3.h>

#include <cerrno>
#include <thread>
#include <utility>

namespace tv::fleet::store {

bool StoreError::busy() const {
  const int primary = code_ & 0xff;
  return primary == SQLITE_BUSY || primary == SQLITE_LOCKED;
}

namespace {

// SQLite says SQLITE_FULL when a write comes up short; growing the WAL index or a file by other
// means reports an I/O error whose errno tells the same.
bool storage_full(int rc, int system_errno) {
  if ((rc & 0xff) == SQLITE_FULL) return true;
  return (rc & 0xff) == SQLITE_IOERR && (system_errno == ENOSPC || system_errno == EDQUOT);
}

}  // namespace

Statement::~Statement() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

Statement& Statement::bind_int(int index, std::int64_t value) {
  if (int rc = sqlite3_bind_int64(stmt_, index, value); rc != SQLITE_OK) db_->fail("bind", rc);
  return *this;
}

Statement& Statement::bind_double(int index, double value) {
  if (int rc = sqlite3_bind_double(stmt_, index, value); rc != SQLITE_OK) db_->fail("bind", rc);
  return *this;
}

Statement& Statement::bind_text(int index, std::string_view value) {
  int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) db_->fail("bind", rc);
  return *this;
}

Statement& Statement::bind_null(int index) {
  if (int rc = sqlite3_bind_null(stmt_, index); rc != SQLITE_OK) db_->fail("bind", rc);
  return *this;
}

Statement& Statement::bind_optional_int(int index, std::optional<std::int64_t> value) {
  return value ? bind_int(index, *value) : bind_null(index);
}

bool Statement::step() {
  db_->check_transaction();
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->fail(sqlite3_sql(stmt_), rc);
}

void Statement::run() {
  if (step()) db_->fail(std::string("unexpected row from ") + sqlite3_sql(stmt_), SQLITE_MISUSE);
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::int64_t Statement::column_int(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

double Statement::column_double(int column) const {
  return sqlite3_column_double(stmt_, column);
}

std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::optional<std::int64_t> Statement::column_optional_int(int column) const {
  if (is_null(column)) return std::nullopt;
  return column_int(column);
}

Connection::Connection(std::string path, ConnectionOptions options)
    : path_(std::move(path)), options_(std::move(options)) {
  const int flags =
      options_.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    throw StoreError(options_.owner + " " + path_ + ": cannot open: " + message, rc);
  }
  try {
    sqlite3_extended_result_codes(db_, 1);
    sqlite3_busy_timeout(db_, static_cast<int>(options_.busy_timeout.count()));
    // A reader takes the journal mode its writer chose; setting one would write the header.
    if (options_.read_only) return;
    use_wal();
    exec(options_.durability == Durability::kFull ? "PRAGMA synchronous=FULL"
                                                  : "PRAGMA synchronous=NORMAL");
  } catch (...) {
    for (auto& [sql, cached] : cache_)
      sqlite3_finalize(cached.stmt);
    sqlite3_close(db_);
    throw;
  }
}

Connection::~Connection() {
  for (auto& [sql, cached] : cache_)
    sqlite3_finalize(cached.stmt);
  sqlite3_close(db_);
}

void Connection::use_wal() {
  // A connection opening beside others may get SQLITE_BUSY here without the busy handler being
  // consulted, so retry until the busy timeout. Once the file is in WAL mode this is a no-op.
  const auto deadline = std::chrono::steady_clock::now() + options_.busy_timeout;
  std::string mode;
  for (;;) {
    try {
      Statement st = prepare("PRAGMA journal_mode=WAL");
      if (st.step()) mode = st.column_text(0);
      break;
    } catch (const StoreError& e) {
      if (!e.busy() || std::chrono::steady_clock::now() > deadline) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  if (mode != "wal" && path_ != ":memory:") {
    throw StoreError(options_.owner + " " + path_ + ": cannot switch to WAL (journal mode is '" +
                     mode + "'); is the file on a network file system?");
  }
}

Statement Connection::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size() + 1),
                                SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) fail("prepare " + sql, rc);
    it = cache_.emplace(sql, Cached{stmt, false}).first;
  }
  if (it->second.in_use) {
    // Stepping it again would silently restart the caller's unfinished read.
    fail("prepare " + sql + ": the statement is still in use by this connection", SQLITE_MISUSE);
  }
  it->second.in_use = true;
  return Statement(*this, it->second.stmt, it->second.in_use);
}

void Connection::exec(const std::string& sql) {
  check_transaction();
  char* error = nullptr;
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error);
  if (rc != SQLITE_OK) {
    std::string message = error != nullptr ? error : sqlite3_errstr(rc);
    sqlite3_free(error);
    fail(sql, rc, std::move(message));
  }
}

std::int64_t Connection::changes() const {
  return sqlite3_changes64(db_);
}

std::int64_t Connection::total_changes() const {
  return sqlite3_total_changes64(db_);
}

bool Connection::in_transaction() const {
  return sqlite3_get_autocommit(db_) == 0;
}

int Connection::active_statements() const {
  int n = 0;
  for (sqlite3_stmt* st = sqlite3_next_stmt(db_, nullptr); st != nullptr;
       st = sqlite3_next_stmt(db_, st)) {
    if (sqlite3_stmt_busy(st) != 0) ++n;
  }
  return n;
}

void Connection::fail(std::string_view doing, int rc) {
  // The connection's message describes the last failed call; for a code that did not come
  // from it (our own misuse report) SQLite's generic text is the honest one.
  fail(doing, rc, sqlite3_extended_errcode(db_) == rc ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
}

void Connection::fail(std::string_view doing, int rc, std::string message) {
  if ((rc & 0xff) == SQLITE_BUSY) {
    message += " (another connection held the lock past the busy timeout)";
  }
  const bool full = storage_full(rc, sqlite3_system_errno(db_));
  if (full) message += " (the file system is full: writes succeed again once space is freed)";
  const std::string text = options_.owner + " " + path_ + ": " + std::string(doing) + ": " +
                           message + " (" + std::to_string(rc) + ")";
  std::exception_ptr error =
      full ? std::make_exception_ptr(StorageFull(text, rc, options_.owner, path_))
           : std::make_exception_ptr(StoreError(text, rc));
  // SQLite ends the transaction itself after some errors: this one is the cause to report for
  // everything else tried inside it.
  if (transaction_live_ && !in_transaction() && !ended_by_) ended_by_ = error;
  std::rethrow_exception(error);
}

void Connection::check_transaction() const {
  if (!transaction_live_ || in_transaction()) return;
  if (ended_by_) std::rethrow_exception(ended_by_);
  throw StoreError(options_.owner + " " + path_ +
                   ": the transaction was rolled back by SQLite after an earlier error; nothing "
                   "of it was written");
}

}  // namespace tv::fleet::store
