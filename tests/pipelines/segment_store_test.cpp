// The segment store on real files and a real SQLite file: bookkeeping, dedup, idempotency keys,
// reopening, refusals that change nothing, corruption found on read, crash leftovers removed at
// open, threads appending at once, and a full disk.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "child_report.hpp"
#include "numpy_script.hpp"
#include "temp_dir.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/store_error.hpp"

namespace tv::fleet::pipelines {
namespace {

namespace fs = std::filesystem;

// `rows` samples of `dims` features whose values depend on `seed`, at times from `t0` on.
SampleBatchData batch(std::size_t rows, std::int64_t t0, int seed = 0, std::int64_t dims = 4) {
  SampleBatchData b;
  b.sample_shape = {dims};
  b.rows = rows;
  for (std::size_t i = 0; i < rows * static_cast<std::size_t>(dims); ++i)
    b.features.push_back(static_cast<float>(seed) + static_cast<float>(i) / 8.0f);
  for (std::size_t r = 0; r < rows; ++r) {
    b.labels.push_back(static_cast<std::int64_t>((r + seed) % 10));
    b.time_ns.push_back(t0 + static_cast<std::int64_t>(r));
  }
  return b;
}

using test::files_in;

class SegmentStoreTest : public ::testing::Test {
 protected:
  SegmentStore open() { return SegmentStore::open(db_path(), seg_dir()); }
  std::string db_path() const { return tmp.file("coordinator.sqlite"); }
  std::string seg_dir() const { return tmp.file("segments"); }

  test::TempDir tmp;
};

TEST_F(SegmentStoreTest, AppendsNumberSegmentsAndSamplesPerPipeline) {
  SegmentStore store = open();
  const SegmentInfo a0 = store.append("mnist", batch(3, 100));
  const SegmentInfo a1 = store.append("mnist", batch(5, 200, 1));
  const SegmentInfo b0 = store.append("other", batch(4, 50, 2));
  const SegmentInfo a2 = store.append("mnist", batch(2, 204, 3));
  EXPECT_EQ(a0.seq, 0);
  EXPECT_EQ(a1.seq, 1);
  EXPECT_EQ(a2.seq, 2);
  EXPECT_EQ(b0.seq, 0);
  EXPECT_EQ(a0.first_sample, 0);
  EXPECT_EQ(a1.first_sample, 3);
  EXPECT_EQ(a2.first_sample, 8);
  EXPECT_EQ(b0.first_sample, 0);
  EXPECT_EQ(a1.rows, 5);
  EXPECT_EQ(a1.first_time_ns, 200);
  EXPECT_EQ(a1.last_time_ns, 204);
  EXPECT_EQ(a1.sample_shape, (std::vector<std::int64_t>{4}));
  EXPECT_EQ(a1.pipeline, "mnist");
  EXPECT_EQ(store.total_rows("mnist"), 10);
  EXPECT_EQ(store.total_rows("other"), 4);
  EXPECT_EQ(store.total_rows("none"), 0);
  EXPECT_EQ(store.segments("mnist"), (std::vector<SegmentInfo>{a0, a1, a2}));
  EXPECT_EQ(store.segments("mnist", 1, 1), (std::vector<SegmentInfo>{a1}));
  EXPECT_EQ(store.segments("mnist", 2), (std::vector<SegmentInfo>{a2}));
  EXPECT_TRUE(store.segments("none").empty());
  EXPECT_EQ(store.last("mnist"), a2);
  EXPECT_FALSE(store.last("none").has_value());
}

TEST_F(SegmentStoreTest, ASegmentIsItsCanonicalBytesUnderItsDigest) {
  SegmentStore store = open();
  const SampleBatchData b = batch(6, 1000, 4);
  const SegmentInfo s = store.append("mnist", b);
  const std::string path = store.path_of(s.digest);
  EXPECT_EQ(path, seg_dir() + "/" + s.digest + ".batch");
  const std::string bytes = test::read_whole_file(path);
  EXPECT_EQ(bytes, encode_batch(b));
  EXPECT_EQ(sha256_hex(bytes), s.digest);
  EXPECT_EQ(s.bytes, static_cast<std::int64_t>(bytes.size()));
  EXPECT_EQ(store.read(s.digest), b);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(seg_dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // A segment file is what a user's numpy reads back.
  const std::string seen = test::run_numpy(
      "f = open(arg, 'rb')\nx, y, t = np.load(f), np.load(f), np.load(f)\n"
      "open(out, 'w').write(f'{x.shape} {list(t)}')\n",
      path);
  EXPECT_EQ(seen, "(6, 4) [1000, 1001, 1002, 1003, 1004, 1005]");
}

TEST_F(SegmentStoreTest, IdenticalBytesAreStoredOnce) {
  SegmentStore store = open();
  const SampleBatchData b = batch(3, 10);
  const SegmentInfo a = store.append("a", b);
  const SegmentInfo again = store.append("a", batch(3, 12));
  const SegmentInfo other = store.append("b", b);
  EXPECT_EQ(a.digest, other.digest);
  EXPECT_NE(a.digest, again.digest);
  EXPECT_EQ(other.seq, 0);
  EXPECT_EQ(files_in(seg_dir()).size(), 2u);
}

TEST_F(SegmentStoreTest, AnIdempotencyKeyStoresARetryOnce) {
  SegmentStore store = open();
  const SegmentInfo first = store.append("mnist", batch(3, 10), "req-1");
  const SegmentInfo retry = store.append("mnist", batch(3, 10), "req-1");
  EXPECT_EQ(retry, first);
  EXPECT_EQ(store.segments("mnist").size(), 1u);
  EXPECT_EQ(store.total_rows("mnist"), 3);
  // The same key with other data is a client's mistake, refused.
  try {
    store.append("mnist", batch(3, 20, 1), "req-1");
    ADD_FAILURE() << "stored";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("pipeline 'mnist': idempotency key 'req-1' was used "
                                         "for segment 0 with other data"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(store.segments("mnist").size(), 1u);
  EXPECT_EQ(files_in(seg_dir()).size(), 1u);
  // Keys are per pipeline; a new key is a new segment.
  EXPECT_EQ(store.append("other", batch(3, 10), "req-1").seq, 0);
  EXPECT_EQ(store.append("mnist", batch(3, 20, 1), "req-2").seq, 1);
  // And they survive a reopen.
  SegmentStore reopened = open();
  EXPECT_EQ(reopened.append("mnist", batch(3, 10), "req-1"), first);
}

TEST_F(SegmentStoreTest, ASecondStoreOnTheSameFilesSeesEverything) {
  std::vector<SegmentInfo> written;
  {
    SegmentStore store = open();
    written.push_back(store.append("mnist", batch(3, 10)));
    written.push_back(store.append("mnist", batch(4, 20, 1)));
  }
  SegmentStore store = open();
  EXPECT_TRUE(store.recovered().empty());
  EXPECT_EQ(store.segments("mnist"), written);
  EXPECT_EQ(store.read(written[1].digest), batch(4, 20, 1));
  const SegmentInfo next = store.append("mnist", batch(1, 30, 2));
  EXPECT_EQ(next.seq, 2);
  EXPECT_EQ(next.first_sample, 7);
}

// The refusal's message, after checking that it left the store as it was.
std::string refusal_of(SegmentStore& store, const fs::path& dir, const std::string& pipeline,
                       const SampleBatchData& b) {
  const auto before = store.segments(pipeline);
  const auto files = files_in(dir);
  std::string why = "stored";
  try {
    store.append(pipeline, b);
  } catch (const SegmentError& e) {
    why = e.what();
  } catch (const BatchError& e) {
    why = e.what();
  }
  EXPECT_EQ(store.segments(pipeline), before);
  EXPECT_EQ(files_in(dir), files);
  return why;
}

TEST_F(SegmentStoreTest, RefusalsLeaveTheStoreAsItWas) {
  SegmentStore store = open();
  store.append("mnist", batch(3, 100));
  EXPECT_EQ(refusal_of(store, seg_dir(), "mnist", batch(3, 200, 0, 5)),
            "pipeline 'mnist': sample shape (5) differs from its earlier segments' (4)");
  EXPECT_EQ(refusal_of(store, seg_dir(), "mnist", batch(3, 101)),
            "pipeline 'mnist': the batch starts at 101, before the pipeline's last timestamp 102 "
            "(segment 0)");
  EXPECT_EQ(refusal_of(store, seg_dir(), "", batch(3, 200)),
            "pipeline name '' is not 1 to 200 characters long");
  EXPECT_EQ(refusal_of(store, seg_dir(), "a\nb", batch(3, 200)),
            "pipeline name 'a\nb' holds a character outside printable ASCII");
  EXPECT_EQ(refusal_of(store, seg_dir(), "mnist", SampleBatchData{}),
            "features: sample shape () is not of rank 1 to 4");
  // The time check allows equal timestamps: a batch may start where the last one ended.
  EXPECT_EQ(store.append("mnist", batch(1, 102, 7)).seq, 1);
  EXPECT_THROW(store.append("mnist", batch(1, 200), std::string(201, 'k')), SegmentError);
  EXPECT_EQ(store.total_rows("mnist"), 4);
}

TEST_F(SegmentStoreTest, ACorruptOrMissingFileIsFoundOnRead) {
  SegmentStore store = open();
  const SegmentInfo s = store.append("mnist", batch(3, 10));
  const std::string path = store.path_of(s.digest);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-3, std::ios::end);
    f.put('\x7f');
  }
  try {
    store.read(s.digest);
    ADD_FAILURE() << "read a corrupt segment";
  } catch (const SegmentError& e) {
    EXPECT_NE(std::string(e.what()).find("segment file " + path + ": its bytes hash to "),
              std::string::npos)
        << e.what();
  }
  fs::remove(path);
  try {
    store.read(s.digest);
    ADD_FAILURE() << "read a missing segment";
  } catch (const SegmentError& e) {
    EXPECT_EQ(std::string(e.what()),
              "segment file " + path + ": cannot open: No such file or directory");
  }
  EXPECT_THROW(store.read("../../etc/passwd"), SegmentError);
  EXPECT_THROW(store.path_of(std::string(64, 'A')), SegmentError);
}

TEST_F(SegmentStoreTest, OpenRemovesWhatACrashLeft) {
  SegmentInfo kept;
  {
    SegmentStore store = open();
    kept = store.append("mnist", batch(3, 10));
  }
  // A temp file (a crash mid-write) and a sealed file no row names (a crash before the commit).
  const std::string orphan_bytes = encode_batch(batch(2, 50, 9));
  const fs::path orphan = fs::path(seg_dir()) / (sha256_hex(orphan_bytes) + ".batch");
  const fs::path temp = fs::path(seg_dir()) / ".tmp-Ab12Cd";
  const fs::path unrelated = fs::path(seg_dir()) / "README";
  std::ofstream(orphan, std::ios::binary) << orphan_bytes;
  std::ofstream(temp, std::ios::binary) << orphan_bytes.substr(0, 40);
  std::ofstream(unrelated) << "not ours";
  SegmentStore store = open();
  std::vector<std::string> removed = store.recovered();
  std::sort(removed.begin(), removed.end());
  EXPECT_EQ(removed, (std::vector<std::string>{temp.string(), orphan.string()}));
  EXPECT_FALSE(fs::exists(orphan));
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_TRUE(fs::exists(unrelated));
  EXPECT_EQ(store.read(kept.digest), batch(3, 10));
  // The orphan's batch can be appended again: its file comes back under its name.
  EXPECT_EQ(store.append("mnist", batch(2, 50, 9)).digest, sha256_hex(orphan_bytes));
  EXPECT_TRUE(fs::exists(orphan));
}

TEST_F(SegmentStoreTest, AReadOnlyStoreReadsAndChangesNothing) {
  SegmentInfo kept;
  {
    SegmentStore store = open();
    kept = store.append("mnist", batch(3, 10));
    store.append("cifar", batch(2, 10, 1));
  }
  // What open() would remove as a crash's leftover is left alone: it may be a live append's.
  const fs::path temp = fs::path(seg_dir()) / ".tmp-Ab12Cd";
  std::ofstream(temp, std::ios::binary) << "half a batch";
  const std::set<std::string> before = files_in(seg_dir());
  SegmentStore store = SegmentStore::open_read_only(db_path(), seg_dir());
  EXPECT_TRUE(store.recovered().empty());
  EXPECT_EQ(store.pipelines(), (std::vector<std::string>{"cifar", "mnist"}));
  EXPECT_EQ(store.segments("mnist"), (std::vector<SegmentInfo>{kept}));
  EXPECT_EQ(store.read(kept.digest), batch(3, 10));
  try {
    store.append("mnist", batch(1, 20));
    ADD_FAILURE() << "a read-only store appended";
  } catch (const SegmentError& e) {
    EXPECT_EQ(std::string(e.what()), "pipeline 'mnist': the segment store " + seg_dir() +
                                         " was opened read-only; nothing was stored");
  }
  EXPECT_EQ(files_in(seg_dir()), before);
  EXPECT_EQ(store.total_rows("mnist"), 3);
}

TEST_F(SegmentStoreTest, AReadOnlyOpenNamesWhatIsMissing) {
  const auto refusal = [](const std::string& db, const std::string& dir) -> std::string {
    try {
      SegmentStore::open_read_only(db, dir);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "opened";
  };
  EXPECT_EQ(refusal(db_path(), seg_dir()),
            "segment store " + db_path() + ": no such database file");
  EXPECT_FALSE(fs::exists(db_path()));
  { store::Connection other(db_path(), {"test", std::chrono::seconds(1)}); }
  EXPECT_EQ(refusal(db_path(), seg_dir()),
            "segment store directory " + seg_dir() + ": no such directory");
  EXPECT_FALSE(fs::exists(seg_dir()));
  fs::create_directory(seg_dir());
  EXPECT_EQ(refusal(db_path(), seg_dir()), "segment store " + db_path() +
                                               ": holds no stream segments (no table "
                                               "pipeline_segments)");
}

TEST_F(SegmentStoreTest, ThreadsAppendingToTwoPipelinesKeepEachStreamWhole) {
  SegmentStore store = open();
  constexpr int kThreads = 4;
  constexpr int kAppends = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every batch of a pipeline has one timestamp, so any order of the threads is valid.
      const std::string pipeline = t % 2 == 0 ? "even" : "odd";
      for (int i = 0; i < kAppends; ++i) {
        SampleBatchData b = batch(1 + (i % 3), 500, t * 1000 + i);
        std::fill(b.time_ns.begin(), b.time_ns.end(), 500);
        store.append(pipeline, b);
      }
    });
  }
  for (auto& th : threads)
    th.join();
  for (const std::string pipeline : {"even", "odd"}) {
    const auto segs = store.segments(pipeline);
    ASSERT_EQ(segs.size(), static_cast<std::size_t>(2 * kAppends));
    std::int64_t next = 0;
    for (std::size_t i = 0; i < segs.size(); ++i) {
      EXPECT_EQ(segs[i].seq, static_cast<std::int64_t>(i));
      EXPECT_EQ(segs[i].first_sample, next);
      next += segs[i].rows;
      EXPECT_EQ(store.read(segs[i].digest).rows, static_cast<std::size_t>(segs[i].rows));
    }
    EXPECT_EQ(store.total_rows(pipeline), next);
  }
}

// In a mount namespace of its own with a tmpfs of 1 MiB on `root` (root only): a segment that
// does not fit, then one that does. Returns the report.
std::optional<std::string> append_on_a_full_file_system(const fs::path& root) {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", root.c_str(), "tmpfs", 0, "size=1m") != 0)
    return std::nullopt;
  SegmentStore store = SegmentStore::open((root / "db.sqlite").string(), (root / "seg").string());
  std::ostringstream out;
  try {
    store.append("mnist", batch(1 << 12, 10, 0, 128));  // 2 MiB of features
    out << "stored;";
  } catch (const store::StorageFull& e) {
    out << "full;path=" << (e.path().find((root / "seg").string()) == 0) << ";msg=" << e.what()
        << ";";
  }
  out << "rows=" << store.total_rows("mnist") << ";files=" << files_in(root / "seg").size();
  out << ";small=" << store.append("mnist", batch(2, 10)).seq;
  // Now a segment file that fits in the one page left, and an index that cannot grow.
  const fs::path filler = root / "filler";
  {
    std::ofstream f(filler, std::ios::binary);
    const std::string page(4096, 'f');
    while (f.write(page.data(), page.size()) && f.flush()) {
    }
  }
  fs::resize_file(filler, fs::file_size(filler) / 4096 * 4096 - 4096);
  const auto files = files_in(root / "seg");
  try {
    store.append("mnist", batch(2, 20, 1));
    out << ";index stored";
  } catch (const store::StorageFull& e) {
    out << ";index full=" << (e.path() == (root / "db.sqlite").string());
  }
  out << ";rows=" << store.total_rows("mnist")
      << ";same files=" << (files_in(root / "seg") == files);
  fs::remove(filler);
  out << ";after=" << store.append("mnist", batch(2, 20, 1)).seq;
  return out.str();
}

TEST_F(SegmentStoreTest, AFullDiskIsStorageFullAndStoresNothing) {
  const fs::path root = tmp.path() / "small";
  fs::create_directories(root);
  const auto r = test::in_child([&] { return append_on_a_full_file_system(root); });
  if (!r) GTEST_SKIP() << "mounting a small tmpfs needs root and mount namespaces";
  EXPECT_EQ(r->rfind("full;path=1;msg=segment store ", 0), 0u) << *r;
  EXPECT_NE(r->find("No space left on device; nothing was stored"), std::string::npos) << *r;
  EXPECT_NE(r->find("rows=0;files=0;small=0"), std::string::npos) << *r;
  // The index's own full disk: its StorageFull, and the segment file it would have named gone.
  EXPECT_NE(r->find(";index full=1;rows=2;same files=1;after=1"), std::string::npos) << *r;
}

}  // namespace
}  // namespace tv::fleet::pipelines
