// The one SQLite layer of the coordinator: a connection to one database file and the prepared
// statements it caches; the one transaction type is in transaction.hpp. The job queue, the
// config hub and the telemetry store sit on it. Only stores inside core/fleet/ may use it:
// hosts, trainers and the CLI reach the coordinator's state through its HTTP API.
//
// Opening sets what every store relies on: WAL (readers never block the writer, and several
// connections, in one process or in many, may share the file), a busy timeout (a write waits
// that long for another connection's transaction, then StoreError), synchronous FULL or NORMAL
// (the owner's Durability), extended result codes; foreign keys stay off (no table declares one).
//
// Thread-safety: a Connection and the Statements it hands out are used by one thread at a time;
// the owner guards it with its mutex (JobQueue, ConfigHub and TelemetryStore each hold one
// around their own connection). Distinct Connections, to one file or not, are independent.
//
// Errors: every call throws StoreError (store_error.hpp); nothing is reported any other way. A
// full disk throws StorageFull. The first error of a transaction is the one reported: after an
// error that made SQLite end the transaction itself (a full disk, some I/O errors), every later
// statement or commit inside that Transaction throws the same error again, instead of running
// outside any transaction or failing with "no transaction is active".
#pragma once

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>

#include "trainvisor/fleet/store/store_error.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace tv::fleet::store {

class Connection;

// What a commit on this connection promises when the machine loses power. In WAL mode both keep
// the file consistent; they differ in whether the last commits survive.
enum class Durability {
  // synchronous=FULL: the WAL is fsynced at every commit, so an acknowledged commit stays.
  kFull,
  // synchronous=NORMAL: fsynced at checkpoints only; a power cut may lose the last commits.
  kNormal,
};

struct ConnectionOptions {
  std::string owner = "store";  // names the owner in errors: "job queue", "config hub"
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(10)};
  Durability durability = Durability::kFull;
  // Opens an existing file without writing to it: no WAL switch, no pragma that writes, and any
  // write statement fails. For tools that read a database a coordinator owns (a replay).
  bool read_only = false;
};

// A cached statement in use. Its destructor resets it and clears its bindings on every exit,
// exceptions included, so a throw while reading rows (a decode that fails) neither leaks it nor
// leaves it holding a read snapshot. One SQL text is in use at most once at a time: collect a
// SELECT's rows before preparing the same text again (StoreError otherwise).
class Statement {
 public:
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Parameters are 1-based, as in SQLite.
  Statement& bind_int(int index, std::int64_t value);
  Statement& bind_double(int index, double value);
  Statement& bind_text(int index, std::string_view value);
  Statement& bind_null(int index);
  Statement& bind_optional_int(int index, std::optional<std::int64_t> value);
  // Binds parameters 1..n by type: text (std::string, string_view, const char*), a signed
  // integer or bool, double, nullptr (NULL), std::optional<std::int64_t>. Unsigned values must
  // be cast by the caller, who knows whether they fit in 63 bits.
  template <class... Values>
  Statement& bind_all(const Values&... values) {
    int index = 0;
    (bind_value(++index, values), ...);
    return *this;
  }

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
  friend class Connection;
  Statement(Connection& db, sqlite3_stmt* stmt, bool& in_use)
      : db_(&db), stmt_(stmt), in_use_(&in_use) {}

  void bind_value(int index, std::string_view value) { bind_text(index, value); }
  void bind_value(int index, const std::string& value) { bind_text(index, value); }
  void bind_value(int index, const char* value) { bind_text(index, value); }
  void bind_value(int index, double value) { bind_double(index, value); }
  void bind_value(int index, std::nullptr_t) { bind_null(index); }
  void bind_value(int index, std::optional<std::int64_t> value) { bind_optional_int(index, value); }
  template <class Integer>
  requires(std::is_signed_v<Integer>&& std::is_integral_v<Integer>) ||
      std::is_same_v<Integer, bool> void bind_value(int index, Integer value) {
    bind_int(index, static_cast<std::int64_t>(value));
  }

  Connection* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
};

class Connection {
 public:
  // Opens `path` (creating it, unless options.read_only) and sets the pragmas above. Switching a
  // file to WAL needs a moment of exclusive access, so a connection opening beside busy ones
  // retries for up to the busy timeout. Throws StoreError naming the path.
  Connection(std::string path, ConnectionOptions options);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection();

  // The statement for `sql`, prepared once and cached for the connection's life.
  Statement prepare(const std::string& sql);
  // Runs one or more statements that return no rows (schema, pragmas, migrations).
  void exec(const std::string& sql);

  std::int64_t changes() const;        // rows changed by the last statement
  std::int64_t total_changes() const;  // rows changed since open
  bool in_transaction() const;
  // Statements stepped and not yet reset: 0 whenever no Statement object is alive.
  int active_statements() const;
  const std::string& path() const { return path_; }
  const ConnectionOptions& options() const { return options_; }

 private:
  friend class Statement;
  friend class Transaction;
  struct Cached {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };

  void use_wal();
  // Throws StoreError: "OWNER PATH: DOING: SQLite's message (code)"; StorageFull for a full
  // disk. SQLite's message for `rc` when it is the connection's last error, else its generic one.
  [[noreturn]] void fail(std::string_view doing, int rc);
  // The same with the message given; remembers an error that ended the live transaction.
  [[noreturn]] void fail(std::string_view doing, int rc, std::string message);
  // Throws the error that ended the live Transaction when SQLite has rolled it back already.
  void check_transaction() const;

  std::string path_;
  ConnectionOptions options_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, Cached> cache_;  // node-based: a Cached never moves
  bool transaction_live_ = false;  // a Transaction object is open on this connection
  std::exception_ptr ended_by_;    // the error that ended it, when SQLite rolled it back
};

}  // namespace tv::fleet::store
