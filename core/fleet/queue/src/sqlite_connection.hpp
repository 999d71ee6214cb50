// A thin owner of one SQLite connection for the job queue: cached prepared statements, typed
// binds and columns, and `BEGIN IMMEDIATE` transactions that roll back unless committed.
// Every failure throws QueueError naming the database file and what was being done.
//
// Threading: a Connection is used by one thread at a time (JobQueue holds its mutex around it).
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tv::fleet::sql {

class Connection;

// A cached statement in use. Resetting on destruction makes it reusable; a statement must not
// be used twice at once (collect a SELECT's rows before running it again).
class Statement {
 public:
  Statement(Connection& db, sqlite3_stmt* stmt) : db_(&db), stmt_(stmt) {}
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  Statement& bind_int(int index, std::int64_t value);
  Statement& bind_double(int index, double value);
  Statement& bind_text(int index, std::string_view value);
  Statement& bind_null(int index);
  Statement& bind_optional_int(int index, std::optional<std::int64_t> value);

  // True when a row is ready, false when the statement is done.
  bool step();
  // Runs a statement that returns no rows.
  void run();

  // Columns are 0-based.
  bool is_null(int column) const;
  std::int64_t column_int(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;  // "" for NULL
  std::optional<std::int64_t> column_optional_int(int column) const;

 private:
  Connection* db_;
  sqlite3_stmt* stmt_;
};

class Connection {
 public:
  // Opens `path`, creating it, with `busy_timeout` for locks other connections hold.
  Connection(const std::string& path, std::chrono::milliseconds busy_timeout);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  Statement prepare(const std::string& sql);
  // Runs one or more statements that return no rows.
  void exec(const std::string& sql);
  std::int64_t changes() const;
  std::int64_t total_changes() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() { return db_; }

  // Throws QueueError: "job queue PATH: WHAT: SQLite's message (code)".
  [[noreturn]] void fail(std::string_view what, int rc) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

// BEGIN IMMEDIATE: takes the write lock up front, so a read-then-write inside cannot be
// overtaken by another connection (and never fails later with SQLITE_BUSY_SNAPSHOT).
class Transaction {
 public:
  explicit Transaction(Connection& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Connection& db_;
  bool open_ = true;
};

}  // namespace tv::fleet::sql
