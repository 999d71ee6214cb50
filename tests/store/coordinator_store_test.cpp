// The coordinator's store: the queue, the config hub and telemetry in one database file, and
// a data directory of the older three-file layout refused by name.
#include "trainvisor/fleet/coordinator_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

// The tables of a database file, read with a plain SQLite connection as an operator would.
std::set<std::string> tables(const std::string& path) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(
      sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type='table'", -1, &st, nullptr),
      SQLITE_OK);
  std::set<std::string> out;
  while (sqlite3_step(st) == SQLITE_ROW)
    out.insert(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

using test::files_in;

void fill(CoordinatorStore& store) {
  store.queue().upsert_hosts(std::vector<HostPolicy>{HostPolicy{"pi", {}, {}, 0}});
  store.config().seed("job1", {{"training/optimizer/learning_rate", 0.1}});
  plugin::TelemetryPoint p;
  p.step = 1;
  p.loss = 0.5;
  p.config_revision = 1;
  store.telemetry().append("job1", {p}, "pi", 0, 1000);
}

TEST(CoordinatorStoreTest, KeepsEveryStoreInOneFile) {
  test::TempDir dir;
  {
    CoordinatorStore store = CoordinatorStore::open(dir.path().string());
    EXPECT_EQ(store.path(), dir.file(kCoordinatorDatabase));
    fill(store);
    for (const std::string& name : files_in(dir.path()))
      EXPECT_EQ(name.rfind("coordinator.sqlite", 0), 0u) << "a second file: " << name;
  }
  const auto t = tables(dir.file(kCoordinatorDatabase));
  for (const char* name : {"jobs", "workers", "hosts", "config_jobs", "config_values",
                           "config_frozen", "config_audit", "telemetry", "telemetry_applied"}) {
    EXPECT_TRUE(t.count(name)) << "no table " << name;
  }
  // Opened again: the state is there, in every store.
  CoordinatorStore store = CoordinatorStore::open(dir.path().string());
  EXPECT_EQ(store.queue().hosts().size(), 1u);
  EXPECT_EQ(store.config().get("job1").revision, 1u);
  ASSERT_TRUE(store.telemetry().applied("job1").has_value());
  EXPECT_EQ(store.telemetry().curve("job1", 0).size(), 1u);
}

TEST(CoordinatorStoreTest, TheStoresStayValidWhenTheStoreIsMoved) {
  test::TempDir dir;
  CoordinatorStore first = CoordinatorStore::open(dir.path().string());
  JobQueue& queue = first.queue();
  CoordinatorStore moved = std::move(first);
  EXPECT_EQ(&moved.queue(), &queue);
  fill(moved);
  EXPECT_EQ(queue.hosts().size(), 1u);
}

TEST(CoordinatorStoreTest, RefusesADataDirectoryOfTheOldLayoutByName) {
  test::TempDir dir;
  for (const char* old : {"queue.sqlite", "telemetry.sqlite"})
    std::ofstream(dir.file(old)) << "";
  try {
    CoordinatorStore::open(dir.path().string());
    ADD_FAILURE() << "opened beside the old layout's files";
  } catch (const store::StoreError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(dir.file("queue.sqlite")), std::string::npos) << what;
    EXPECT_NE(what.find(dir.file("telemetry.sqlite")), std::string::npos) << what;
    EXPECT_EQ(what.find(dir.file("config.sqlite")), std::string::npos) << what;
    EXPECT_NE(what.find(dir.file(kCoordinatorDatabase)), std::string::npos) << what;
    EXPECT_NE(what.find("Move those files out"), std::string::npos) << what;
  }
  EXPECT_FALSE(fs::exists(dir.file(kCoordinatorDatabase)));
}

TEST(CoordinatorStoreTest, OldFilesBesideTheOneDatabaseAreIgnored) {
  test::TempDir dir;
  { CoordinatorStore::open(dir.path().string()); }
  std::ofstream(dir.file("config.sqlite")) << "";
  CoordinatorStore store = CoordinatorStore::open(dir.path().string());
  EXPECT_TRUE(store.queue().hosts().empty());
}

TEST(CoordinatorStoreTest, AMissingDataDirectoryIsAStoreErrorNamingTheFile) {
  test::TempDir dir;
  const std::string missing = dir.file("nope");
  try {
    CoordinatorStore::open(missing);
    ADD_FAILURE() << "opened a database in a missing directory";
  } catch (const store::StoreError& e) {
    EXPECT_NE(std::string(e.what()).find(missing + "/" + kCoordinatorDatabase), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tv::fleet
