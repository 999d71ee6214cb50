// The one transaction type: rollback on every exit that is not a commit, commits that outlive
// the connection, and the busy timeout between two connections to one file.
#include "trainvisor/fleet/store/transaction.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include "temp_dir.hpp"

namespace tv::fleet::store {
namespace {

using namespace std::chrono_literals;

ConnectionOptions options(std::chrono::milliseconds busy_timeout = 2000ms) {
  return {"test store", busy_timeout, Durability::kFull};
}

std::int64_t count_rows(Connection& db) {
  Statement st = db.prepare("SELECT COUNT(*) FROM t");
  st.step();
  return st.column_int(0);
}

void insert(Connection& db, const std::string& v) {
  db.prepare("INSERT INTO t (v) VALUES (?)").bind_all(v).run();
}

class TransactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Connection db(path(), options());
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)");
  }
  std::string path() const { return dir.file("db.sqlite"); }
  tv::fleet::test::TempDir dir;
};

TEST_F(TransactionTest, CommitKeepsTheWrites) {
  Connection db(path(), options());
  {
    Transaction tx(db);
    EXPECT_TRUE(db.in_transaction());
    insert(db, "a");
    insert(db, "b");
    tx.commit();
  }
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(count_rows(db), 2);
}

TEST_F(TransactionTest, AnExceptionRollsBack) {
  Connection db(path(), options());
  // Thrown by the caller's own code after a write, and by a statement inside (UNIQUE).
  const std::function<void()> failures[] = {
      [&] {
        insert(db, "a");
        throw std::runtime_error("a check after the first write failed");
      },
      [&] {
        insert(db, "a");
        insert(db, "a");
      },
  };
  for (const auto& fail : failures) {
    try {
      Transaction tx(db);
      fail();
      tx.commit();
      ADD_FAILURE() << "committed";
    } catch (const std::exception&) {
    }
    EXPECT_FALSE(db.in_transaction());
    EXPECT_EQ(count_rows(db), 0);
    EXPECT_EQ(db.active_statements(), 0);
  }
}

// Writes, then returns before committing when `give_up` says so.
bool write_unless(Connection& db, bool give_up) {
  Transaction tx(db);
  insert(db, "a");
  if (give_up) return false;
  tx.commit();
  return true;
}

TEST_F(TransactionTest, AnEarlyReturnRollsBack) {
  Connection db(path(), options());
  EXPECT_FALSE(write_unless(db, true));
  EXPECT_FALSE(db.in_transaction());
  EXPECT_EQ(count_rows(db), 0);
  EXPECT_TRUE(write_unless(db, false));
  EXPECT_EQ(count_rows(db), 1);
}

TEST_F(TransactionTest, ACommitOutlivesTheConnectionAndAnOpenTransactionDoesNot) {
  {
    Connection db(path(), options());
    Transaction tx(db);
    insert(db, "kept");
    tx.commit();
  }
  {
    Connection db(path(), options());
    Transaction tx(db);
    insert(db, "lost");
  }
  Connection db(path(), options());
  Statement st = db.prepare("SELECT v FROM t");
  ASSERT_TRUE(st.step());
  EXPECT_EQ(st.column_text(0), "kept");
  EXPECT_FALSE(st.step());
}

TEST_F(TransactionTest, NestingIsRefused) {
  Connection db(path(), options());
  Transaction outer(db);
  EXPECT_THROW(Transaction inner(db), StoreError);
  insert(db, "a");
  outer.commit();
  EXPECT_EQ(count_rows(db), 1);
}

TEST_F(TransactionTest, AWriterPastTheBusyTimeoutGetsABusyError) {
  Connection holder(path(), options());
  Connection waiter(path(), options(50ms));
  Transaction held(holder);
  insert(holder, "a");
  try {
    Transaction tx(waiter);
    ADD_FAILURE() << "took the write lock another connection holds";
  } catch (const StoreError& e) {
    EXPECT_TRUE(e.busy()) << e.what();
    EXPECT_NE(std::string(e.what()).find("busy timeout"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(waiter.in_transaction());
  EXPECT_EQ(count_rows(waiter), 0);  // WAL: the reader is not blocked, and sees no uncommitted row
  held.commit();
  Transaction tx(waiter);
  insert(waiter, "b");
  tx.commit();
  EXPECT_EQ(count_rows(holder), 2);
}

TEST_F(TransactionTest, AWriterWaitsForTheLockWithinTheBusyTimeout) {
  std::promise<void> began;
  std::thread holder([&] {
    Connection db(path(), options());
    Transaction tx(db);
    insert(db, "first");
    began.set_value();
    std::this_thread::sleep_for(100ms);
    tx.commit();
  });
  began.get_future().wait();
  Connection waiter(path(), options(5000ms));
  {
    Transaction tx(waiter);  // waits for the holder's commit
    EXPECT_EQ(count_rows(waiter), 1);
    insert(waiter, "second");
    tx.commit();
  }
  holder.join();
  EXPECT_EQ(count_rows(waiter), 2);
}

}  // namespace
}  // namespace tv::fleet::store
