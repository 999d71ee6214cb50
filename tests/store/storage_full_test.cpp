// A full disk through the SQLite layer, made real without root or a small file system: PRAGMA
// max_page_count caps the file, and a write past it fails as a full disk does (SQLITE_FULL,
// after which SQLite rolls the transaction back on its own). The error is StorageFull naming
// the owner and the file, nothing of the transaction is written, every later statement inside
// it repeats the first error instead of running outside any transaction, reads go on, and once
// there is room the same write succeeds on the same connection with the file intact.
#include <gtest/gtest.h>

#include <string>

#include "temp_dir.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet::store {
namespace {

ConnectionOptions options() {
  return {"test store", std::chrono::milliseconds(2000), Durability::kFull};
}

std::int64_t count_rows(Connection& db, const std::string& table) {
  Statement st = db.prepare("SELECT COUNT(*) FROM " + table);
  st.step();
  return st.column_int(0);
}

std::string integrity(Connection& db) {
  Statement st = db.prepare("PRAGMA integrity_check");
  return st.step() ? st.column_text(0) : "";
}

class StorageFullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)");
    db.exec("CREATE TABLE big (v TEXT)");
    db.exec("INSERT INTO t (v) VALUES ('a'), ('b'), ('c')");
    Statement st = db.prepare("PRAGMA page_count");
    st.step();
    // A few pages of room: a handful of the rows below fill it.
    db.exec("PRAGMA max_page_count=" + std::to_string(st.column_int(0) + 4));
  }

  // Inserts rows of 3000 bytes into `big` until the file is full; the rows fit only a few.
  void fill() {
    const std::string row(3000, 'x');
    for (int i = 0; i < 1000; ++i)
      db.prepare("INSERT INTO big (v) VALUES (?)").bind_all(row).run();
    FAIL() << "1000 rows of 3000 bytes fit in a file of a few pages";
  }

  // Inside `tx`, after a write that met the full disk: every statement and the commit.
  void repeat_after_the_first_error(Transaction& tx);

  tv::fleet::test::TempDir dir;
  Connection db{dir.file("db.sqlite"), options()};
};

TEST_F(StorageFullTest, AWriteThatFillsTheDiskIsStorageFullAndWritesNothing) {
  try {
    Transaction tx(db);
    db.prepare("INSERT INTO t (v) VALUES ('d')").run();
    fill();
    tx.commit();
    ADD_FAILURE() << "committed";
  } catch (const StorageFull& e) {
    EXPECT_EQ(e.owner(), "test store");
    EXPECT_EQ(e.path(), dir.file("db.sqlite"));
    const std::string what = e.what();
    EXPECT_NE(what.find("database or disk is full"), std::string::npos) << what;
    EXPECT_NE(what.find(dir.file("db.sqlite")), std::string::npos) << what;
    EXPECT_FALSE(e.busy());
  }
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(db.active_statements(), 0);
  // Reads go on, and see nothing of the rolled-back transaction.
  EXPECT_EQ(count_rows(db, "t"), 3);
  EXPECT_EQ(count_rows(db, "big"), 0);
  EXPECT_EQ(integrity(db), "ok");
}

TEST_F(StorageFullTest, EverythingLaterInTheTransactionRepeatsTheFirstError) {
  {
    Transaction tx(db);
    repeat_after_the_first_error(tx);
  }
  EXPECT_EQ(count_rows(db, "t"), 3);  // once the transaction is gone, the connection is usable
}

void StorageFullTest::repeat_after_the_first_error(Transaction& tx) {
  std::string first;
  try {
    fill();
  } catch (const StorageFull& e) {
    first = e.what();
  }
  ASSERT_FALSE(first.empty());
  // SQLite has ended the transaction: a statement now would run and commit on its own, and a
  // COMMIT or ROLLBACK would say "no transaction is active". Both report the disk instead.
  try {
    db.prepare("INSERT INTO t (v) VALUES ('d')").run();
    ADD_FAILURE() << "a write ran outside the transaction";
  } catch (const StorageFull& e) {
    EXPECT_EQ(std::string(e.what()), first);
  }
  try {
    tx.commit();
    ADD_FAILURE() << "committed";
  } catch (const StorageFull& e) {
    EXPECT_EQ(std::string(e.what()), first);
  }
  EXPECT_THROW(count_rows(db, "t"), StorageFull);  // reads too, inside the transaction
}

TEST_F(StorageFullTest, EveryStatementOfAFailedTransactionReportsTheDiskNotTheRollback) {
  // Whatever the caller does after the error inside the transaction's scope, no message is
  // about a missing transaction.
  for (int round = 0; round < 3; ++round) {
    try {
      Transaction tx(db);
      try {
        fill();
      } catch (const StorageFull&) {
      }
      db.exec("UPDATE t SET v = v || '!'");
      ADD_FAILURE() << "the update ran";
    } catch (const StoreError& e) {
      EXPECT_EQ(std::string(e.what()).find("no transaction is active"), std::string::npos)
          << e.what();
      EXPECT_NE(dynamic_cast<const StorageFull*>(&e), nullptr) << e.what();
    }
  }
  Statement st = db.prepare("SELECT v FROM t ORDER BY id LIMIT 1");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.column_text(0), "a");
}

TEST_F(StorageFullTest, WritesSucceedAgainOnceThereIsRoom) {
  EXPECT_THROW(
      {
        Transaction tx(db);
        fill();
      },
      StorageFull);
  db.exec("PRAGMA max_page_count=1000000");  // space freed
  {
    Transaction tx(db);
    const std::string row(3000, 'x');
    for (int i = 0; i < 20; ++i)
      db.prepare("INSERT INTO big (v) VALUES (?)").bind_all(row).run();
    tx.commit();
  }
  EXPECT_EQ(count_rows(db, "big"), 20);
  EXPECT_EQ(integrity(db), "ok");
}

TEST_F(StorageFullTest, OtherErrorsStayPlainStoreErrors) {
  try {
    Transaction tx(db);
    db.prepare("INSERT INTO t (v) VALUES ('a')").run();  // UNIQUE
    ADD_FAILURE() << "a duplicate was stored";
  } catch (const StoreError& e) {
    EXPECT_EQ(dynamic_cast<const StorageFull*>(&e), nullptr) << e.what();
  }
  // The transaction is usable again right after: nothing of the error lingers.
  Transaction tx(db);
  db.prepare("INSERT INTO t (v) VALUES ('d')").run();
  tx.commit();
  EXPECT_EQ(count_rows(db, "t"), 4);
}

TEST_F(StorageFullTest, ATransactionLeftOpenIsEndedByTheNextOne) {
  // What a ROLLBACK that failed leaves behind: the connection inside a transaction that no
  // Transaction owns. The next Transaction ends it rather than refusing every BEGIN from now on.
  db.exec("BEGIN");
  db.prepare("INSERT INTO t (v) VALUES ('left')").run();
  {
    Transaction tx(db);
    db.prepare("INSERT INTO t (v) VALUES ('d')").run();
    tx.commit();
  }
  EXPECT_EQ(count_rows(db, "t"), 4);
  Statement st = db.prepare("SELECT COUNT(*) FROM t WHERE v='left'");
  st.step();
  EXPECT_EQ(st.column_int(0), 0);
}

}  // namespace
}  // namespace tv::fleet::store
