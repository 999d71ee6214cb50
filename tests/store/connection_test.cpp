// The SQLite layer's connection and cached statements on real files: pragmas, typed binds and
// columns, errors that name what failed, and statements reset on every exit (run under asan:
// a statement that leaks shows up there).
#include "trainvisor/fleet/store/connection.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>

#include "temp_dir.hpp"

namespace tv::fleet::store {
namespace {

ConnectionOptions options(Durability durability = Durability::kFull) {
  return {"test store", std::chrono::milliseconds(2000), durability};
}

std::string text_of(Connection& db, const std::string& sql) {
  Statement st = db.prepare(sql);
  return st.step() ? st.column_text(0) : "";
}

std::int64_t count_rows(Connection& db) {
  Statement st = db.prepare("SELECT COUNT(*) FROM t");
  st.step();
  return st.column_int(0);
}

class ConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Connection db(path(), options());
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)");
    db.exec("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')");
  }
  std::string path() const { return dir.file("db.sqlite"); }
  tv::fleet::test::TempDir dir;
};

TEST_F(ConnectionTest, OpensInWalWithTheOwnersDurability) {
  Connection full(path(), options(Durability::kFull));
  EXPECT_EQ(text_of(full, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(text_of(full, "PRAGMA synchronous"), "2");  // FULL
  EXPECT_EQ(text_of(full, "PRAGMA foreign_keys"), "0");
  Connection normal(path(), options(Durability::kNormal));
  EXPECT_EQ(text_of(normal, "PRAGMA synchronous"), "1");  // NORMAL: per connection
  EXPECT_EQ(text_of(full, "PRAGMA synchronous"), "2");
}

TEST_F(ConnectionTest, AnUnusablePathIsNamed) {
  const std::string bad = dir.file("no-such-dir/db.sqlite");
  try {
    Connection db(bad, options());
    ADD_FAILURE() << "opened a database in a missing directory";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("test store " + bad + ": cannot open"), std::string::npos)
        << e.what();
  }
}

TEST_F(ConnectionTest, AReadOnlyConnectionReadsAndWritesNothing) {
  ConnectionOptions ro = options();
  ro.read_only = true;
  Connection db(path(), ro);
  EXPECT_EQ(count_rows(db), 3);
  EXPECT_THROW(db.exec("INSERT INTO t (v) VALUES ('d')"), StoreError);
  EXPECT_THROW(db.exec("CREATE TABLE u (x)"), StoreError);
  Connection writer(path(), options());
  EXPECT_EQ(count_rows(writer), 3);
  // A missing file is not created.
  const std::string missing = dir.file("missing.sqlite");
  try {
    Connection none(missing, ro);
    ADD_FAILURE() << "opened a missing database read-only";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("test store " + missing + ": cannot open"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(std::filesystem::exists(missing));
}

TEST_F(ConnectionTest, ErrorsNameTheOwnerTheFileAndTheStatement) {
  Connection db(path(), options());
  try {
    db.prepare("SELECT nope FROM t");
    ADD_FAILURE() << "prepared a statement naming a missing column";
  } catch (const StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("test store " + path()), std::string::npos) << what;
    EXPECT_NE(what.find("SELECT nope FROM t"), std::string::npos) << what;
    EXPECT_NE(what.find("no such column"), std::string::npos) << what;
    EXPECT_FALSE(e.busy());
  }
}

TEST_F(ConnectionTest, TypedBindsAndColumnsRoundTrip) {
  Connection db(path(), options());
  db.exec("CREATE TABLE typed (s TEXT, i INTEGER, d REAL, n INTEGER, o INTEGER, b INTEGER)");
  db.prepare("INSERT INTO typed VALUES (?,?,?,?,?,?)")
      .bind_all(std::string("x"), std::int64_t{-7}, 2.5, nullptr,
                std::optional<std::int64_t>(std::numeric_limits<std::int64_t>::max()), true)
      .run();
  Statement st = db.prepare("SELECT s, i, d, n, o, b FROM typed");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.column_text(0), "x");
  EXPECT_EQ(st.column_int(1), -7);
  EXPECT_EQ(st.column_double(2), 2.5);
  EXPECT_TRUE(st.is_null(3));
  EXPECT_EQ(st.column_text(3), "");
  EXPECT_EQ(st.column_optional_int(3), std::nullopt);
  EXPECT_EQ(st.column_optional_int(4), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(st.column_int(5), 1);
  EXPECT_FALSE(st.step());
}

TEST_F(ConnectionTest, AStatementIsResetWhenItsRowLoopThrows) {
  Connection db(path(), options());
  Connection other(path(), options());
  const std::string sql = "SELECT v FROM t ORDER BY id";
  EXPECT_THROW(
      {
        Statement st = db.prepare(sql);
        while (st.step()) {
          if (st.column_text(0) == "a") throw std::runtime_error("a row the caller cannot decode");
        }
      },
      std::runtime_error);
  EXPECT_EQ(db.active_statements(), 0);
  // A statement left stepping would pin its read snapshot: this connection would not see the
  // other one's commit.
  other.exec("INSERT INTO t (v) VALUES ('d')");
  EXPECT_EQ(count_rows(db), 4);
  // The cached statement starts from its first row again, with nothing bound.
  Statement again = db.prepare(sql);
  ASSERT_TRUE(again.step());
  EXPECT_EQ(again.column_text(0), "a");
}

TEST_F(ConnectionTest, AFailedStepThrowsAndLeavesTheStatementReusable) {
  Connection db(path(), options());
  const std::string sql = "INSERT INTO t (v) VALUES (?)";
  try {
    db.prepare(sql).bind_all("a").run();
    ADD_FAILURE() << "inserted a duplicate";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("UNIQUE constraint failed"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(sql), std::string::npos) << e.what();
  }
  EXPECT_EQ(db.active_statements(), 0);
  db.prepare(sql).bind_all("e").run();
  EXPECT_EQ(count_rows(db), 4);
}

TEST_F(ConnectionTest, AStatementInUseIsNotHandedOutTwice) {
  Connection db(path(), options());
  const std::string sql = "SELECT v FROM t ORDER BY id";
  Statement outer = db.prepare(sql);
  ASSERT_TRUE(outer.step());
  EXPECT_THROW(db.prepare(sql), StoreError);
  // The refusal did not disturb the outer read.
  ASSERT_TRUE(outer.step());
  EXPECT_EQ(outer.column_text(0), "b");
}

TEST_F(ConnectionTest, ManyStatementsAreCachedAndFinalizedWithTheConnection) {
  Connection db(path(), options());
  for (int i = 0; i < 50; ++i) {
    Statement st = db.prepare("SELECT " + std::to_string(i) + " FROM t");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int(0), i);
  }
  EXPECT_EQ(db.active_statements(), 0);
  // Closing finalizes all 50; LeakSanitizer reports any that stays.
}

}  // namespace
}  // namespace tv::fleet::store
