// Manifest reloads are idempotent and write nothing when nothing changed; specs come back from
// the file exactly as they went in; bad manifests are refused whole; the schema is versioned.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cmath>
#include <limits>

#include "test_support.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet {
namespace {

using plugin::ParamValue;
using test::FakeClock;
using test::make_job;

class Manifest : public ::testing::Test {
 protected:
  JobQueue open() { return JobQueue::open(path(), test::options_with(clock)); }
  std::string path() const { return dir.file("jobs.db"); }

  test::TempDir dir;
  FakeClock clock;
};

// Equal including the alternative held, with NaN equal to NaN (the manifest may say nan).
void expect_same_params(const plugin::Params& got, const plugin::Params& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [key, value] : want) {
    ASSERT_TRUE(got.count(key)) << key;
    const ParamValue& g = got.at(key);
    ASSERT_EQ(g.index(), value.index()) << key;
    if (const double* d = std::get_if<double>(&value); d && std::isnan(*d)) {
      EXPECT_TRUE(std::isnan(std::get<double>(g))) << key;
    } else if (d) {
      // Bit for bit: -0.0 must stay negative, 0.1 must not drift in the last digit.
      EXPECT_EQ(std::signbit(std::get<double>(g)), std::signbit(*d)) << key;
      EXPECT_EQ(std::get<double>(g), *d) << key;
    } else {
      EXPECT_EQ(g, value) << key;
    }
  }
}

JobSpec full_spec() {
  JobSpec j = make_job("everything", "transformer");
  j.mode = "finetune";
  j.hyper = {
      {"training/optimizer/learning_rate", 0.1},
      {"training/whole_double", 3.0},  // must not come back as the integer 3
      {"training/max_epochs", std::int64_t{3}},
      {"training/big_int", std::numeric_limits<std::int64_t>::max()},
      {"training/neg_int", std::int64_t{-42}},
      {"training/tiny", 1e-300},
      {"training/neg_zero", -0.0},
      {"training/nan", std::numeric_limits<double>::quiet_NaN()},
      {"training/inf", std::numeric_limits<double>::infinity()},
      {"training/minus_inf", -std::numeric_limits<double>::infinity()},
      {"training/amp", true},
      {"training/off", false},
      {"training/name", std::string("quote \" backslash \\ unicode \xc3\xa9 \xe2\x82\xac")},
      {"training/empty", std::string()},
  };
  j.model_params = {
      {"layers", std::int64_t{6}}, {"dropout", 0.25}, {"activation", std::string("gelu")}};
  j.policies = {{"plateau", {{"patience", std::int64_t{5}}, {"factor", 0.5}}}, {"divergence", {}}};
  j.constraints.require_cuda = true;
  j.constraints.prefer_cuda = true;
  j.constraints.min_vram_gib = 7.5;
  j.constraints.min_ram_gib = 15.25;
  j.constraints.allowed_hosts = {"gpu-1", "gpu-2"};
  j.data.max_train_samples = 20000;
  j.data.max_val_samples = 500;
  j.seed = std::numeric_limits<std::uint64_t>::max();  // beyond int64: stored by its bits
  j.max_attempts = 7;
  j.priority = -3;
  j.canonical = "{\"model\":\"transformer\",\"seed\":18446744073709551615}";
  return j;
}

void expect_same_spec(const JobSpec& got, const JobSpec& want) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.model, want.model);
  EXPECT_EQ(got.mode, want.mode);
  expect_same_params(got.hyper, want.hyper);
  expect_same_params(got.model_params, want.model_params);
  ASSERT_EQ(got.policies.size(), want.policies.size());
  for (std::size_t i = 0; i < want.policies.size(); ++i) {
    EXPECT_EQ(got.policies[i].name, want.policies[i].name);
    expect_same_params(got.policies[i].params, want.policies[i].params);
  }
  EXPECT_EQ(got.constraints.require_cuda, want.constraints.require_cuda);
  EXPECT_EQ(got.constraints.prefer_cuda, want.constraints.prefer_cuda);
  EXPECT_EQ(got.constraints.min_vram_gib, want.constraints.min_vram_gib);
  EXPECT_EQ(got.constraints.min_ram_gib, want.constraints.min_ram_gib);
  EXPECT_EQ(got.constraints.allowed_hosts, want.constraints.allowed_hosts);
  EXPECT_EQ(got.data.max_train_samples, want.data.max_train_samples);
  EXPECT_EQ(got.data.max_val_samples, want.data.max_val_samples);
  EXPECT_EQ(got.seed, want.seed);
  EXPECT_EQ(got.max_attempts, want.max_attempts);
  EXPECT_EQ(got.priority, want.priority);
  EXPECT_EQ(got.canonical, want.canonical);
}

TEST_F(Manifest, EverySpecFieldRoundTripsThroughTheFile) {
  const JobSpec spec = full_spec();
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{spec});
  }
  // A fresh connection: the values come from the file, not from anything cached.
  auto q = open();
  auto row = q.get(spec.id);
  ASSERT_TRUE(row);
  expect_same_spec(row->spec, spec);
  EXPECT_EQ(row->status, JobStatus::kPending);
  EXPECT_EQ(row->created_ms, FakeClock::kStart);
  auto claim = q.claim_next("gpu-1", test::cuda_host(), clock.now());
  ASSERT_TRUE(claim);
  expect_same_spec(claim->spec, spec);
}

TEST_F(Manifest, IdenticalReloadWritesNothing) {
  const std::vector<JobSpec> jobs{make_job("a"), make_job("b"), full_spec()};
  auto q = open();
  ManifestReport first = q.upsert_manifest(jobs);
  EXPECT_EQ(first.added, 3);
  EXPECT_EQ(first.unchanged, 0);
  auto claim = q.claim_next("w1", test::cpu_host(), clock.now());
  ASSERT_TRUE(claim);
  ASSERT_EQ(q.mark_running(claim->spec.id, claim->lease_token), QueueResult::kOk);

  clock.advance(1000);
  const auto changes = q.total_changes();
  ManifestReport second = q.upsert_manifest(jobs);
  EXPECT_EQ(second.added, 0);
  EXPECT_EQ(second.updated, 0);
  EXPECT_EQ(second.unchanged, 3);
  EXPECT_EQ(q.total_changes(), changes);
  // The running job is untouched by the reload.
  auto row = q.get(claim->spec.id);
  EXPECT_EQ(row->status, JobStatus::kRunning);
  EXPECT_EQ(row->attempt, 1);
  EXPECT_EQ(q.heartbeat(claim->spec.id, claim->lease_token).result, QueueResult::kOk);
}

TEST_F(Manifest, ChangedHyperIsANewJobAndRemovedJobsStay) {
  JobSpec a = make_job("a");
  auto q = open();
  q.upsert_manifest(std::vector<JobSpec>{a, make_job("b")});
  // What the manifest loader does for a changed learning rate: a new canonical, a new id.
  JobSpec a2 = a;
  a2.hyper["training/optimizer/learning_rate"] = 0.02;
  a2.id = "id-a-lr0.02";
  ManifestReport r = q.upsert_manifest(std::vector<JobSpec>{a2});
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.unchanged, 0);
  auto all = q.list();
  ASSERT_EQ(all.size(), 3u);  // a and b, absent from this manifest, stay
  EXPECT_EQ(all[0].spec.id, "id-a");
  EXPECT_EQ(std::get<double>(all[0].spec.hyper.at("training/optimizer/learning_rate")), 0.01);
  EXPECT_EQ(all[1].spec.id, "id-b");
  EXPECT_EQ(all[2].spec.id, "id-a-lr0.02");
  EXPECT_EQ(std::get<double>(all[2].spec.hyper.at("training/optimizer/learning_rate")), 0.02);
  for (const auto& row : all)
    EXPECT_EQ(row.status, JobStatus::kPending);
}

TEST_F(Manifest, ChangedSchedulingFieldsUpdateInPlaceKeepingStatus) {
  JobSpec a = make_job("a");
  auto q = open();
  q.upsert_manifest(std::vector<JobSpec>{a});
  auto claim = q.claim_next("w1", test::cpu_host(), clock.now());
  ASSERT_TRUE(claim);
  a.priority = 10;
  a.max_attempts = 9;
  ManifestReport r = q.upsert_manifest(std::vector<JobSpec>{a});
  EXPECT_EQ(r.added, 0);
  EXPECT_EQ(r.updated, 1);
  EXPECT_EQ(r.unchanged, 0);
  auto row = q.get("id-a");
  EXPECT_EQ(row->spec.priority, 10);
  EXPECT_EQ(row->spec.max_attempts, 9);
  EXPECT_EQ(row->status, JobStatus::kClaimed);
  EXPECT_EQ(row->attempt, 1);
  EXPECT_EQ(q.complete("id-a", claim->lease_token), QueueResult::kOk);
}

TEST_F(Manifest, ABadEntryRefusesTheWholeManifest) {
  auto q = open();
  q.upsert_manifest(std::vector<JobSpec>{make_job("kept")});
  const auto changes = q.total_changes();

  const auto expect_refused = [&](std::vector<JobSpec> jobs, const std::string& needle) {
    jobs.insert(jobs.begin(), make_job("fresh"));  // a valid new job that must not land
    try {
      q.upsert_manifest(jobs);
      ADD_FAILURE() << "accepted a manifest that should fail with '" << needle << "'";
    } catch (const QueueError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  JobSpec zero_attempts = make_job("zero");
  zero_attempts.max_attempts = 0;
  expect_refused({zero_attempts}, "'zero': max_attempts");
  JobSpec negative_vram = make_job("neg");
  negative_vram.constraints.min_vram_gib = -1;
  expect_refused({negative_vram}, "'neg': min_vram_gib");
  JobSpec nan_ram = make_job("nanram");
  nan_ram.constraints.min_ram_gib = std::numeric_limits<double>::quiet_NaN();
  expect_refused({nan_ram}, "'nanram': min_ram_gib");
  JobSpec no_id = make_job("noid");
  no_id.id.clear();
  expect_refused({no_id}, "'noid': empty id");
  JobSpec twin = make_job("twin");
  JobSpec twin2 = make_job("twin2");
  twin2.id = twin.id;
  expect_refused({twin, twin2}, "appears twice");
  JobSpec bad_utf8 = make_job("bytes");
  bad_utf8.hyper["training/name"] = std::string("\xff\xfe");
  expect_refused({bad_utf8}, "'bytes'");

  EXPECT_EQ(q.total_changes(), changes);
  ASSERT_EQ(q.list().size(), 1u);
  EXPECT_FALSE(q.get("id-fresh"));
}

TEST_F(Manifest, HostPoliciesReplaceAndReloadIdempotently) {
  auto q = open();
  const std::vector<HostPolicy> hosts{HostPolicy{"pi", {"gbt", "mlp"}, {}, 0},
                                      HostPolicy{"desktop", {}, {"gbt"}, 5}};
  q.upsert_hosts(hosts);
  auto stored = q.hosts();
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].name, "desktop");
  EXPECT_EQ(stored[0].deny_jobs, std::vector<std::string>{"gbt"});
  EXPECT_EQ(stored[0].priority, 5);
  EXPECT_EQ(stored[1].allow_jobs, (std::vector<std::string>{"gbt", "mlp"}));

  const auto changes = q.total_changes();
  q.upsert_hosts(std::vector<HostPolicy>{hosts[1], hosts[0]});  // order does not matter
  EXPECT_EQ(q.total_changes(), changes);

  q.upsert_hosts(std::vector<HostPolicy>{HostPolicy{"pi", {"gbt"}, {}, 0}});
  stored = q.hosts();
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].allow_jobs, std::vector<std::string>{"gbt"});

  EXPECT_THROW(q.upsert_hosts(
                   std::vector<HostPolicy>{HostPolicy{"x", {}, {}, 0}, HostPolicy{"x", {}, {}, 1}}),
               QueueError);
  EXPECT_THROW(q.upsert_hosts(std::vector<HostPolicy>{HostPolicy{}}), QueueError);
  EXPECT_EQ(q.hosts().size(), 1u);
}

// Reads one integer or text pragma with a plain SQLite connection, as an operator would.
std::string pragma(const std::string& path, const std::string& name) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, ("PRAGMA " + name).c_str(), -1, &st, nullptr), SQLITE_OK);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST_F(Manifest, SchemaVersionAndWalOnOpen) {
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{make_job("a")});
  }
  EXPECT_EQ(pragma(path(), "user_version"), std::to_string(kQueueSchemaVersion));
  EXPECT_EQ(pragma(path(), "journal_mode"), "wal");
  // Reopening keeps the data and runs no migration.
  auto q = open();
  EXPECT_EQ(q.total_changes(), 0);
  EXPECT_TRUE(q.get("id-a"));
}

// Runs `sql` on the database file behind the queue's back (an older build's file, made by hand).
void run_sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(db);
  sqlite3_close(db);
}

TEST_F(Manifest, AVersion1DatabaseMigratesKeepingItsJobs) {
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{make_job("a"), make_job("b")});
    auto c = q.claim_next("w1", test::cpu_host());
    ASSERT_TRUE(c);
    ASSERT_EQ(q.complete(c->spec.id, c->lease_token), QueueResult::kOk);
  }
  // The columns versions 2, 4 and 5 added, gone again: the table as version 1 left it.
  run_sql(path(),
          "ALTER TABLE jobs DROP COLUMN stopped_by; ALTER TABLE jobs DROP COLUMN stop_reason; "
          "ALTER TABLE jobs DROP COLUMN generation; ALTER TABLE jobs DROP COLUMN pipeline; "
          "ALTER TABLE jobs DROP COLUMN trainer; PRAGMA user_version=1");
  auto q = open();
  EXPECT_EQ(pragma(path(), "user_version"), std::to_string(kQueueSchemaVersion));
  ASSERT_EQ(q.list().size(), 2u);
  EXPECT_EQ(q.get("id-a")->status, JobStatus::kCompleted);
  EXPECT_EQ(q.get("id-b")->status, JobStatus::kPending);
  EXPECT_EQ(q.get("id-a")->generation, 0);
  // The new status is allowed by the rebuilt table.
  auto c = q.claim_next("w1", test::cpu_host());
  ASSERT_TRUE(c);
  ASSERT_EQ(q.complete(c->spec.id, c->lease_token, std::nullopt, StopCause{"human:ana", "enough"}),
            QueueResult::kOk);
  EXPECT_EQ(q.get("id-b")->status, JobStatus::kStopped);
}

TEST_F(Manifest, AVersion3DatabaseGainsThePipelineColumnAndKeepsItsJobs) {
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{make_job("a")});
  }
  run_sql(path(),
          "ALTER TABLE jobs DROP COLUMN trainer; ALTER TABLE jobs DROP COLUMN pipeline; "
          "PRAGMA user_version=3");
  auto q = open();
  EXPECT_EQ(pragma(path(), "user_version"), std::to_string(kQueueSchemaVersion));
  ASSERT_TRUE(q.get("id-a"));
  EXPECT_FALSE(q.get("id-a")->spec.pipeline);
  // A pipeline's training is stored with its window and read back whole.
  JobSpec t = make_job("t");
  PipelineTraining p;
  p.pipeline = "stream";
  p.trigger = 3;
  p.segments = {std::string(64, 'a'), std::string(64, 'b')};
  p.segments_first_sample = 100;
  p.window_begin = 150;
  p.window_end = 900;
  p.sample_shape = {1, 28, 28};
  p.num_classes = 10;
  p.epochs = 0;
  p.initial_weights = std::string(64, 'c');
  p.holdout = 0.25;
  t.pipeline = p;
  q.upsert_manifest(std::vector<JobSpec>{t});
  ASSERT_TRUE(q.get("id-t")->spec.pipeline);
  EXPECT_EQ(*q.get("id-t")->spec.pipeline, p);
}

TEST_F(Manifest, AVersion4DatabaseGainsTheTrainerColumnAndKeepsItsJobs) {
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{make_job("a")});
  }
  run_sql(path(), "ALTER TABLE jobs DROP COLUMN trainer; PRAGMA user_version=4");
  auto q = open();
  EXPECT_EQ(pragma(path(), "user_version"), std::to_string(kQueueSchemaVersion));
  ASSERT_TRUE(q.get("id-a"));
  EXPECT_FALSE(q.get("id-a")->spec.command);
  // A command job is stored with its command line and working directory and read back whole.
  JobSpec t = make_job("py", "");
  t.command = CommandTrainer{{"python3", "train.py", "--epochs", "2"}, std::string(64, 'd'), ""};
  q.upsert_manifest(std::vector<JobSpec>{t});
  ASSERT_TRUE(q.get("id-py")->spec.command);
  EXPECT_EQ(*q.get("id-py")->spec.command, *t.command);
  // A row whose trainer is not what the queue wrote is refused by name, not run.
  run_sql(path(), "UPDATE jobs SET trainer='{\"argv\":[]}' WHERE id='id-py'");
  try {
    q.get("id-py");
    FAIL() << "a malformed trainer was read";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find("job id-py trainer"), std::string::npos) << e.what();
  }
}

// The lease token column as stored: its digest, never the token a claim returned.
std::string stored_token(const std::string& path, const std::string& id) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  EXPECT_EQ(sqlite3_prepare_v2(db, "SELECT lease_token FROM jobs WHERE id=?", -1, &st, nullptr),
            SQLITE_OK);
  sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
  std::string out;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    out = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  return out;
}

TEST_F(Manifest, LeaseTokensAreStoredHashedAndAVersion2DatabaseKeepsItsLeases) {
  std::string token;
  {
    auto q = open();
    q.upsert_manifest(std::vector<JobSpec>{make_job("a")});
    auto c = q.claim_next("w1", test::cpu_host());
    ASSERT_TRUE(c);
    token = c->lease_token;
  }
  EXPECT_EQ(stored_token(path(), "id-a"), sha256_hex(token));
  // A version 2 file held the token itself: opening it hashes it, and the holder keeps its lease.
  run_sql(path(), "UPDATE jobs SET lease_token='" + token +
                      "' WHERE id='id-a'; ALTER TABLE jobs DROP COLUMN trainer; "
                      "ALTER TABLE jobs DROP COLUMN pipeline; PRAGMA user_version=2");
  auto q = open();
  EXPECT_EQ(pragma(path(), "user_version"), std::to_string(kQueueSchemaVersion));
  EXPECT_EQ(stored_token(path(), "id-a"), sha256_hex(token));
  EXPECT_EQ(q.heartbeat("id-a", token, "w1").result, QueueResult::kOk);
}

TEST_F(Manifest, RefusesASchemaNewerThanThisBuild) {
  { open(); }
  pragma(path(), "user_version=99");
  ASSERT_EQ(pragma(path(), "user_version"), "99");
  try {
    open();
    ADD_FAILURE() << "opened a database from the future";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 99"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path()), std::string::npos) << e.what();
  }
}

TEST_F(Manifest, UnusablePathIsNamed) {
  const std::string bad = dir.file("no-such-dir/jobs.db");
  try {
    JobQueue::open(bad);
    ADD_FAILURE() << "opened a database in a missing directory";
  } catch (const QueueError& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tv::fleet
