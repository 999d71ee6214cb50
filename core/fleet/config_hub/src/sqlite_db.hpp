// A small SQLite handle shared by the hub's stores: open with a schema, exec, and parameterised
// queries with a row callback. Errors throw std::runtime_error naming the store and its file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace tv::fleet {

using Param = std::variant<std::string, std::int64_t, std::nullptr_t, double>;

class Db {
 public:
  // `what` names the store in errors ("config hub"); `schema` runs once, after opening.
  Db(std::string what, const std::string& path, const std::string& schema)
      : what_(std::move(what)), path_(path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error(what_ + " " + path + ": cannot open: " + why);
    }
    sqlite3_busy_timeout(db_, 10000);
    exec(schema);
  }
  ~Db() { sqlite3_close(db_); }
  void exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string why = err ? err : "unknown";
      sqlite3_free(err);
      throw std::runtime_error(what_ + " " + path_ + ": " + why);
    }
  }
  // Runs `sql` with text/int parameters; calls `row` per result row.
  void query(const std::string& sql, const std::vector<Param>& params,
             const std::function<void(sqlite3_stmt*)>& row = {}) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
      throw std::runtime_error(what_ + " " + path_ + ": " + sqlite3_errmsg(db_));
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      const int idx = static_cast<int>(i + 1);
      if (const auto* s = std::get_if<std::string>(&params[i]))
        sqlite3_bind_text(st, idx, s->c_str(), -1, SQLITE_TRANSIENT);
      else if (const auto* n = std::get_if<std::int64_t>(&params[i]))
        sqlite3_bind_int64(st, idx, *n);
      else if (const auto* d = std::get_if<double>(&params[i]))
        sqlite3_bind_double(st, idx, *d);
      else
        sqlite3_bind_null(st, idx);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (row) row(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
      throw std::runtime_error(what_ + " " + path_ + ": " + sqlite3_errmsg(db_));
  }

 private:
  std::string what_;
  std::string path_;
  sqlite3* db_ = nullptr;
};

inline std::string text(sqlite3_stmt* st, int col) {
  const auto* p = sqlite3_column_text(st, col);
  return p ? reinterpret_cast<const char*>(p) : "";
}

}  // namespace tv::fleet
