// The artifact store against real files in a temp directory: uploads, dedup, refusals that leave
// nothing behind, parallel uploads, a large streamed upload, and a reopen from disk.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <iomanip>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "child_report.hpp"
#include "trainvisor/fleet/artifact_store.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Computed here with OpenSSL's streaming API, apart from the store's own hashing path.
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void update(const void* data, std::size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }
  std::string hex() {
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    EVP_DigestFinal_ex(ctx_.get(), d, &n);
    std::ostringstream out;
    out << std::hex << std::setfill('0');
    for (unsigned i = 0; i < n; ++i)
      out << std::setw(2) << static_cast<int>(d[i]);
    return out.str();
  }

 private:
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx_;
};

std::string sha256_hex(std::string_view data) {
  Sha256 h;
  h.update(data.data(), data.size());
  return h.hex();
}

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span<const char>(s.data(), s.size()));
}

std::string random_bytes(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out)
    c = static_cast<char>(gen());
  return out;
}

std::string read_all(std::istream& in) {
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  if (!fs::exists(dir)) return 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    n += e.is_regular_file();
  return n;
}

std::size_t count_lines(const fs::path& file) {
  std::ifstream in(file);
  std::size_t n = 0;
  for (std::string line; std::getline(in, line);)
    ++n;
  return n;
}

// Uploads `data` in chunks of `chunk` bytes, declaring its real digest and size.
ArtifactResult<CommitInfo> upload(ArtifactStore& store, std::string_view data, std::string_view job,
                                  std::string_view name, std::size_t chunk = 4096) {
  auto up = store.begin_upload(sha256_hex(data), data.size(), job, name);
  if (!up) return up.error();
  for (std::size_t off = 0; off < data.size(); off += chunk) {
    auto w = up.value().write(as_bytes(data.substr(off, chunk)));
    if (!w) return w.error();
  }
  return up.value().commit();
}

class ArtifactStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::temp_directory_path() /
            ("tv-artifacts-" + std::to_string(::getpid()) + "-" + info->name());
    fs::remove_all(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::permissions(root_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(root_, ec);
  }

  ArtifactStore open(StoreOptions options = {}) {
    auto r = ArtifactStore::open(root_, options);
    if (!r) ADD_FAILURE() << r.error().message;
    return std::move(r).value();
  }

  std::size_t temp_files() const { return count_files(root_ / "tmp"); }
  std::size_t objects() const { return count_files(root_ / "objects"); }
  fs::path index_file() const { return root_ / "index" / "refs.jsonl"; }

  fs::path root_;
};

TEST_F(ArtifactStoreTest, RoundTripKeepsEveryByteAndListsTheJob) {
  ArtifactStore store = open();
  // Over the store's 1 MiB write buffer, in uneven chunks, so that both buffered and direct
  // writes carry part of it.
  const std::string data = random_bytes((3 << 20) + 17, 1);
  const std::string digest = sha256_hex(data);
  auto up = store.begin_upload(digest, data.size(), "job-1", "bundle.tvb");
  ASSERT_TRUE(up) << up.error().message;
  const std::size_t chunks[] = {1, 100, 5000, (2 << 20) + 3, 65536};
  std::size_t off = 0;
  for (std::size_t i = 0; off < data.size(); ++i) {
    const std::size_t n = std::min(chunks[i % 5], data.size() - off);
    auto w = up.value().write(as_bytes(std::string_view(data).substr(off, n)));
    ASSERT_TRUE(w) << w.error().message;
    off += n;
    EXPECT_EQ(w.value(), off);
  }
  const auto before = std::chrono::system_clock::now();
  auto done = up.value().commit();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done.value().digest, digest);
  EXPECT_EQ(done.value().size, data.size());
  EXPECT_FALSE(done.value().deduplicated);

  EXPECT_TRUE(store.contains(digest));
  EXPECT_FALSE(store.contains(sha256_hex("something else")));
  const auto info = store.stat(digest);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, data.size());
  EXPECT_EQ(info->path, root_ / "objects" / digest.substr(0, 2) / digest.substr(2));
  EXPECT_EQ(fs::status(info->path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  EXPECT_EQ(fs::status(root_ / "tmp").permissions() & fs::perms::all,
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);

  auto in = store.open_read(digest);
  ASSERT_TRUE(in) << in.error().message;
  EXPECT_TRUE(read_all(in.value()) == data) << "read back differs";

  auto listed = store.list_for_job("job-1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  const ArtifactRef& ref = listed.value()[0];
  EXPECT_EQ(ref.job_id, "job-1");
  EXPECT_EQ(ref.name, "bundle.tvb");
  EXPECT_EQ(ref.digest, digest);
  EXPECT_EQ(ref.size, data.size());
  const auto unix_now = [](auto t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  };
  EXPECT_GE(ref.uploaded_at, unix_now(before));
  EXPECT_LE(ref.uploaded_at, unix_now(std::chrono::system_clock::now()));
  EXPECT_EQ(temp_files(), 0u);

  auto unknown = store.list_for_job("job-2");
  ASSERT_TRUE(unknown);
  EXPECT_TRUE(unknown.value().empty());
  auto missing = store.open_read(sha256_hex("absent"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, ArtifactErrc::not_found);
}

TEST_F(ArtifactStoreTest, SameBytesTwiceAreStoredOnceAndListedForBothJobs) {
  ArtifactStore store = open();
  const std::string data = random_bytes(100000, 2);
  auto first = upload(store, data, "job-a", "bundle.tvb");
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_FALSE(first.value().deduplicated);
  auto second = upload(store, data, "job-b", "copy.tvb");
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_TRUE(second.value().deduplicated);
  EXPECT_EQ(second.value().digest, first.value().digest);

  EXPECT_EQ(objects(), 1u);
  EXPECT_EQ(temp_files(), 0u) << "the duplicate's temp file was kept";
  auto a = store.list_for_job("job-a");
  auto b = store.list_for_job("job-b");
  ASSERT_TRUE(a && b);
  ASSERT_EQ(a.value().size(), 1u);
  ASSERT_EQ(b.value().size(), 1u);
  EXPECT_EQ(a.value()[0].digest, first.value().digest);
  EXPECT_EQ(b.value()[0].digest, first.value().digest);
  EXPECT_EQ(b.value()[0].name, "copy.tvb");
}

TEST_F(ArtifactStoreTest, DigestMismatchKeepsNothing) {
  ArtifactStore store = open();
  const std::string declared = sha256_hex("the bundle the client meant");
  const std::string actual = sha256_hex("what arrived");
  auto up = store.begin_upload(declared, std::nullopt, "job-1", "bundle.tvb");
  ASSERT_TRUE(up) << up.error().message;
  ASSERT_TRUE(up.value().write(as_bytes("what arrived")));
  EXPECT_EQ(temp_files(), 1u);
  auto done = up.value().commit();
  ASSERT_FALSE(done);
  EXPECT_EQ(done.error().code, ArtifactErrc::digest_mismatch);
  EXPECT_NE(done.error().message.find(declared), std::string::npos) << done.error().message;
  EXPECT_NE(done.error().message.find(actual), std::string::npos) << done.error().message;

  EXPECT_FALSE(store.contains(declared));
  EXPECT_FALSE(store.contains(actual));
  EXPECT_EQ(objects(), 0u);
  EXPECT_EQ(temp_files(), 0u);
  EXPECT_TRUE(store.list_for_job("job-1").value().empty());
  EXPECT_EQ(count_lines(index_file()), 0u);
  auto again = up.value().commit();
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ArtifactErrc::upload_closed);
}

TEST_F(ArtifactStoreTest, DeclaredSizeIsHeldToBothWays) {
  ArtifactStore store = open();
  const std::string data = "0123456789";
  auto short_up = store.begin_upload(sha256_hex(data), 11, "job-1", "bundle.tvb");
  ASSERT_TRUE(short_up);
  ASSERT_TRUE(short_up.value().write(as_bytes(data)));
  auto short_done = short_up.value().commit();
  ASSERT_FALSE(short_done);
  EXPECT_EQ(short_done.error().code, ArtifactErrc::size_mismatch);
  EXPECT_NE(short_done.error().message.find("10 bytes arrived, 11 were declared"),
            std::string::npos)
      << short_done.error().message;

  auto long_up = store.begin_upload(sha256_hex(data), 9, "job-1", "bundle.tvb");
  ASSERT_TRUE(long_up);
  auto w = long_up.value().write(as_bytes(data));
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().code, ArtifactErrc::size_mismatch);
  EXPECT_EQ(objects(), 0u);
  EXPECT_EQ(temp_files(), 0u);
}

TEST_F(ArtifactStoreTest, UploadPastMaxBytesIsRefusedAtTheCrossingWrite) {
  ArtifactStore store = open({.max_bytes = 1000});
  const std::string data = random_bytes(1001, 3);
  auto up = store.begin_upload(sha256_hex(data), std::nullopt, "job-1", "bundle.tvb");
  ASSERT_TRUE(up);
  auto w1 = up.value().write(as_bytes(std::string_view(data).substr(0, 600)));
  ASSERT_TRUE(w1) << w1.error().message;
  auto w2 = up.value().write(as_bytes(std::string_view(data).substr(600, 400)));
  ASSERT_TRUE(w2) << "exactly max_bytes must be accepted: " << w2.error().message;
  auto w3 = up.value().write(as_bytes(std::string_view(data).substr(1000, 1)));
  ASSERT_FALSE(w3) << "byte 1001 was accepted";
  EXPECT_EQ(w3.error().code, ArtifactErrc::too_large);
  EXPECT_NE(w3.error().message.find("limit of 1000 bytes"), std::string::npos)
      << w3.error().message;
  EXPECT_EQ(temp_files(), 0u) << "the refused upload's temp file was kept";
  EXPECT_EQ(up.value().write(as_bytes("x")).error().code, ArtifactErrc::upload_closed);
  EXPECT_EQ(up.value().commit().error().code, ArtifactErrc::upload_closed);
  EXPECT_EQ(objects(), 0u);
  EXPECT_TRUE(store.list_for_job("job-1").value().empty());

  auto declared = store.begin_upload(sha256_hex(data), 1001, "job-1", "bundle.tvb");
  ASSERT_FALSE(declared) << "a declared size over the limit was accepted";
  EXPECT_EQ(declared.error().code, ArtifactErrc::too_large);
  EXPECT_EQ(temp_files(), 0u);

  auto exact = upload(store, std::string_view(data).substr(0, 1000), "job-1", "bundle.tvb");
  ASSERT_TRUE(exact) << exact.error().message;
}

TEST_F(ArtifactStoreTest, RefusesBadDigestsJobIdsAndNamesAndKeepsWhatIsStored) {
  ArtifactStore store = open();
  const std::string kept = "kept bytes";
  ASSERT_TRUE(upload(store, kept, "job-1", "bundle.tvb"));
  const std::string digest = sha256_hex("payload");

  std::string upper = digest;
  upper[0] = 'A';
  for (const std::string& bad : {std::string(""), std::string("abc"), digest.substr(1), upper,
                                 std::string("../") + digest.substr(3)}) {
    auto up = store.begin_upload(bad, std::nullopt, "job-1", "bundle.tvb");
    ASSERT_FALSE(up) << "digest '" << bad << "' was accepted";
    EXPECT_EQ(up.error().code, ArtifactErrc::invalid_argument);
    EXPECT_NE(up.error().message.find("digest '" + bad + "'"), std::string::npos)
        << up.error().message;
    EXPECT_FALSE(store.contains(bad));
    EXPECT_FALSE(store.stat(bad));
    EXPECT_EQ(store.open_read(bad).error().code, ArtifactErrc::invalid_argument);
  }

  struct Case {
    std::string value;
    std::string shown;  // how the message must show it
  };
  const std::vector<Case> common = {
      {"..", "'..'"},
      {"a/b", "'a/b'"},
      {"/abs", "'/abs'"},
      {"a\\b", "'a\\b'"},
      {"", "''"},
      {std::string(201, 'x'), "'" + std::string(64, 'x') + "...' (201 bytes)"},
      {std::string("a\0b", 3), "'a\\x00b'"},
  };
  for (const auto& c : common) {
    auto by_job = store.begin_upload(digest, std::nullopt, c.value, "bundle.tvb");
    ASSERT_FALSE(by_job) << "job id " << c.shown << " was accepted";
    EXPECT_EQ(by_job.error().code, ArtifactErrc::invalid_argument);
    EXPECT_NE(by_job.error().message.find("job id " + c.shown), std::string::npos)
        << by_job.error().message;
    EXPECT_FALSE(store.list_for_job(c.value)) << "listing job id " << c.shown;

    auto by_name = store.begin_upload(digest, std::nullopt, "job-1", c.value);
    ASSERT_FALSE(by_name) << "name " << c.shown << " was accepted";
    EXPECT_NE(by_name.error().message.find("artifact name " + c.shown), std::string::npos)
        << by_name.error().message;
  }
  auto hidden = store.begin_upload(digest, std::nullopt, "job-1", ".bundle");
  ASSERT_FALSE(hidden);
  EXPECT_NE(hidden.error().message.find("artifact name '.bundle': starts with '.'"),
            std::string::npos)
      << hidden.error().message;

  EXPECT_EQ(temp_files(), 0u);
  EXPECT_EQ(objects(), 1u);
  auto listed = store.list_for_job("job-1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0].digest, sha256_hex(kept));
}

TEST_F(ArtifactStoreTest, AbandonedUploadLeavesNoTempFile) {
  ArtifactStore store = open();
  const std::string data = random_bytes(5000, 4);
  {
    auto up = store.begin_upload(sha256_hex(data), data.size(), "job-1", "bundle.tvb");
    ASSERT_TRUE(up);
    ASSERT_TRUE(up.value().write(as_bytes(std::string_view(data).substr(0, 2000))));
    EXPECT_EQ(temp_files(), 1u);
  }
  EXPECT_EQ(temp_files(), 0u);
  EXPECT_EQ(objects(), 0u);
  EXPECT_TRUE(store.list_for_job("job-1").value().empty());

  // A moved upload keeps one owner of its temp file: the moved-from shell removes nothing.
  auto up = store.begin_upload(sha256_hex(data), data.size(), "job-1", "bundle.tvb");
  ASSERT_TRUE(up);
  Upload moved = std::move(up).value();
  ASSERT_TRUE(moved.write(as_bytes(data)));
  {
    auto dropped = store.begin_upload(sha256_hex(data), data.size(), "job-1", "bundle.tvb");
    ASSERT_TRUE(dropped);
    EXPECT_EQ(temp_files(), 2u) << "two uploads of one digest share a temp file";
  }
  EXPECT_EQ(temp_files(), 1u);
  auto done = moved.commit();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(temp_files(), 0u);
  EXPECT_TRUE(store.contains(sha256_hex(data)));
}

TEST_F(ArtifactStoreTest, EightThreadsUploadingDistinctAndIdenticalBytes) {
  ArtifactStore store = open();
  constexpr int kThreads = 8;
  const std::string shared = random_bytes(512 << 10, 99);
  std::vector<std::string> own;
  for (int i = 0; i < kThreads; ++i)
    own.push_back(random_bytes((256 << 10) + i, 100 + i));

  std::vector<std::optional<ArtifactResult<CommitInfo>>> own_done(kThreads), shared_done(kThreads);
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      const std::string job = "job-" + std::to_string(i);
      start.arrive_and_wait();
      // Small chunks keep the uploads interleaved for most of their lifetime.
      shared_done[i] = upload(store, shared, job, "shared.tvb", 1024);
      own_done[i] = upload(store, own[i], job, "own.tvb", 1024);
    });
  }
  for (auto& t : threads)
    t.join();

  int stored = 0;
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_TRUE(*own_done[i]) << own_done[i]->error().message;
    ASSERT_TRUE(*shared_done[i]) << shared_done[i]->error().message;
    EXPECT_FALSE(own_done[i]->value().deduplicated);
    EXPECT_EQ(own_done[i]->value().digest, sha256_hex(own[i]));
    EXPECT_EQ(shared_done[i]->value().digest, sha256_hex(shared));
    stored += !shared_done[i]->value().deduplicated;
  }
  EXPECT_EQ(stored, 1) << "exactly one upload of the shared bytes must report storing it";
  EXPECT_EQ(objects(), kThreads + 1u);
  EXPECT_EQ(temp_files(), 0u);
  EXPECT_EQ(count_lines(index_file()), 2u * kThreads);
  for (int i = 0; i < kThreads; ++i) {
    auto listed = store.list_for_job("job-" + std::to_string(i));
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed.value().size(), 2u);
    EXPECT_EQ(listed.value()[0].name, "own.tvb");
    EXPECT_EQ(listed.value()[0].digest, sha256_hex(own[i]));
    EXPECT_EQ(listed.value()[1].name, "shared.tvb");
    EXPECT_EQ(listed.value()[1].digest, sha256_hex(shared));
    auto in = store.open_read(sha256_hex(own[i]));
    ASSERT_TRUE(in);
    EXPECT_TRUE(read_all(in.value()) == own[i]) << "thread " << i << "'s bytes differ";
  }
}

// Bytes of a 256 MiB bundle, one 1 MiB chunk at a time, reproducible from the chunk number so
// that neither the test nor the store ever holds the whole thing.
void fill_chunk(std::vector<std::byte>& chunk, std::uint64_t index) {
  std::uint64_t x = 0x9e3779b97f4a7c15ull * (index + 1);
  for (std::size_t i = 0; i < chunk.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(chunk.data() + i, &x, 8);
  }
}

long max_rss_kib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

TEST_F(ArtifactStoreTest, LargeUploadStreamsAndMatchesAnIndependentDigest) {
  constexpr std::uint64_t kChunk = 1 << 20;
  constexpr std::uint64_t kChunks = 256;
  ArtifactStore store = open();
  std::vector<std::byte> chunk(kChunk);
  Sha256 expected;
  for (std::uint64_t i = 0; i < kChunks; ++i) {
    fill_chunk(chunk, i);
    expected.update(chunk.data(), chunk.size());
  }
  const std::string digest = expected.hex();

  const long rss_before = max_rss_kib();
  auto up = store.begin_upload(digest, kChunk * kChunks, "job-big", "bundle.tvb");
  ASSERT_TRUE(up) << up.error().message;
  for (std::uint64_t i = 0; i < kChunks; ++i) {
    fill_chunk(chunk, i);
    auto w = up.value().write(chunk);
    ASSERT_TRUE(w) << "chunk " << i << ": " << w.error().message;
  }
  auto done = up.value().commit();
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(done.value().digest, digest);
  EXPECT_EQ(done.value().size, kChunk * kChunks);
  EXPECT_LT(max_rss_kib() - rss_before, 64 * 1024) << "the upload was held in memory";

  auto info = store.stat(digest);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->size, kChunk * kChunks);
  auto in = store.open_read(digest);
  ASSERT_TRUE(in);
  Sha256 reread;
  std::vector<char> buf(kChunk);
  while (in.value().read(buf.data(), buf.size()) || in.value().gcount() > 0) {
    reread.update(buf.data(), static_cast<std::size_t>(in.value().gcount()));
  }
  EXPECT_EQ(reread.hex(), digest) << "the stored file does not hash to the upload's digest";
}

TEST_F(ArtifactStoreTest, ReuploadUnderOneNameIsOneEntryAndANewDigestReplacesIt) {
  ArtifactStore store = open();
  const std::string v1 = "weights v1";
  const std::string v2 = "weights v2";
  ASSERT_TRUE(upload(store, v1, "job-1", "bundle.tvb"));
  auto again = upload(store, v1, "job-1", "bundle.tvb");
  ASSERT_TRUE(again);
  EXPECT_TRUE(again.value().deduplicated);
  EXPECT_EQ(store.list_for_job("job-1").value().size(), 1u);
  EXPECT_EQ(count_lines(index_file()), 1u) << "a repeated reference was appended";

  ASSERT_TRUE(upload(store, v2, "job-1", "bundle.tvb"));
  auto listed = store.list_for_job("job-1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 1u);
  EXPECT_EQ(listed.value()[0].digest, sha256_hex(v2));
  EXPECT_TRUE(store.contains(sha256_hex(v1))) << "objects are never deleted by a replacement";
}

TEST_F(ArtifactStoreTest, ReopenedStoreSeesEverything) {
  std::vector<ArtifactRef> job1, job2;
  {
    ArtifactStore store = open();
    ASSERT_TRUE(upload(store, "alpha", "job-1", "a.tvb"));
    ASSERT_TRUE(upload(store, "beta", "job-1", "b.tvb"));
    ASSERT_TRUE(upload(store, "alpha-2", "job-1", "a.tvb"));
    ASSERT_TRUE(upload(store, "beta", "job-2", "b.tvb"));
    job1 = store.list_for_job("job-1").value();
    job2 = store.list_for_job("job-2").value();
  }
  ArtifactStore store = open();
  auto listed1 = store.list_for_job("job-1");
  auto listed2 = store.list_for_job("job-2");
  ASSERT_TRUE(listed1 && listed2);
  ASSERT_EQ(listed1.value().size(), 2u);
  ASSERT_EQ(listed2.value().size(), 1u);
  for (std::size_t i = 0; i < job1.size(); ++i) {
    EXPECT_EQ(listed1.value()[i].name, job1[i].name);
    EXPECT_EQ(listed1.value()[i].digest, job1[i].digest);
    EXPECT_EQ(listed1.value()[i].size, job1[i].size);
    EXPECT_EQ(listed1.value()[i].uploaded_at, job1[i].uploaded_at);
  }
  EXPECT_EQ(listed1.value()[0].digest, sha256_hex("alpha-2")) << "the replacement was lost";
  EXPECT_EQ(listed2.value()[0].digest, job2[0].digest);
  for (const char* s : {"alpha", "beta", "alpha-2"}) {
    EXPECT_TRUE(store.contains(sha256_hex(s))) << s;
  }
  auto dedup = upload(store, "beta", "job-3", "b.tvb");
  ASSERT_TRUE(dedup);
  EXPECT_TRUE(dedup.value().deduplicated);
}

TEST_F(ArtifactStoreTest, TornLastIndexLineIsCutAtOpen) {
  {
    ArtifactStore store = open();
    ASSERT_TRUE(upload(store, "one", "job-1", "a.tvb"));
  }
  {
    // What a crash in the middle of an append leaves.
    std::ofstream out(index_file(), std::ios::app);
    out << R"({"job_id":"job-1","name":"b.tv)";
  }
  {
    ArtifactStore store = open();
    EXPECT_EQ(store.list_for_job("job-1").value().size(), 1u);
    ASSERT_TRUE(upload(store, "two", "job-1", "b.tvb"));
  }
  ArtifactStore store = open();
  auto listed = store.list_for_job("job-1");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed.value().size(), 2u);
  EXPECT_EQ(listed.value()[1].digest, sha256_hex("two"));
  EXPECT_EQ(count_lines(index_file()), 2u);
}

TEST_F(ArtifactStoreTest, CorruptIndexLineIsRefusedWithItsLineNumber) {
  {
    ArtifactStore store = open();
    ASSERT_TRUE(upload(store, "one", "job-1", "a.tvb"));
  }
  {
    std::ofstream out(index_file(), std::ios::app);
    out << R"({"job_id":"job/1","name":"a.tvb","digest":")" << sha256_hex("one")
        << R"(","size":3,"time":0})"
        << "\n";
  }
  auto r = ArtifactStore::open(root_);
  ASSERT_FALSE(r) << "a corrupt index was accepted";
  EXPECT_EQ(r.error().code, ArtifactErrc::io);
  EXPECT_NE(r.error().message.find("refs.jsonl: line 2: job id 'job/1'"), std::string::npos)
      << r.error().message;
}

TEST_F(ArtifactStoreTest, OpenRefusesARootThatIsAFile) {
  fs::create_directories(root_.parent_path());
  { std::ofstream(root_) << "not a directory"; }
  auto r = ArtifactStore::open(root_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(root_.string()), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("is not a directory"), std::string::npos) << r.error().message;
  std::ifstream in(root_);
  EXPECT_EQ(read_all(in), "not a directory");
  fs::remove(root_);
}

using test::in_child;

TEST_F(ArtifactStoreTest, OpenRefusesARootItCannotWrite) {
  fs::create_directories(root_);
  fs::permissions(root_, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                             fs::perms::group_exec | fs::perms::others_read |
                             fs::perms::others_exec);
  // Permissions do not stop root; the open runs in a child that gives root up when it has it.
  const auto msg = in_child([&]() -> std::optional<std::string> {
    if (::geteuid() == 0 && (::setgid(65534) != 0 || ::setuid(65534) != 0)) return std::nullopt;
    auto r = ArtifactStore::open(root_);
    return r ? std::string("opened") : r.error().message;
  });
  if (!msg) GTEST_SKIP() << "running as root without the right to drop it";
  EXPECT_NE(msg->find(root_.string()), std::string::npos) << *msg;
  EXPECT_NE(msg->find("not writable"), std::string::npos) << *msg;
  EXPECT_FALSE(fs::exists(root_ / "objects"));
}

// In a mount namespace of its own with a tmpfs of 1 MiB on `root` (root only): an upload that
// does not fit, then one that does. Returns the report.
std::optional<std::string> upload_on_a_full_file_system(const fs::path& root) {
  if (::geteuid() != 0 || ::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tmpfs", root.c_str(), "tmpfs", 0, "size=1m") != 0)
    return std::nullopt;
  auto store = ArtifactStore::open(root);
  if (!store) return "open: " + store.error().message;
  const std::string big = random_bytes(3 << 20, 7);
  auto up = store.value().begin_upload(sha256_hex(big), big.size(), "job-1", "big.tvb");
  if (!up) return "begin: " + up.error().message;
  auto w = up.value().write(as_bytes(big));
  ArtifactResult<CommitInfo> done = w ? up.value().commit() : ArtifactResult<CommitInfo>(w.error());
  if (done) return std::string("3 MiB stored on 1 MiB");
  std::ostringstream out;
  out << "full=" << (done.error().code == ArtifactErrc::storage_full)
      << ";temps=" << count_files(root / "tmp") << ";objects=" << count_files(root / "objects")
      << ";small=";
  const std::string small = "fits";
  auto up2 = store.value().begin_upload(sha256_hex(small), small.size(), "job-1", "s.tvb");
  out << (up2 && up2.value().write(as_bytes(small)) && up2.value().commit() ? "ok" : "err")
      << ";msg=" << done.error().message;
  return out.str();
}

TEST_F(ArtifactStoreTest, AFullFileSystemIsStorageFullAndLeavesNothingBehind) {
  fs::create_directories(root_);
  const auto r = in_child([&] { return upload_on_a_full_file_system(root_); });
  if (!r) GTEST_SKIP() << "mounting a small tmpfs needs root and mount namespaces";
  // ENOSPC is its own code (the coordinator answers 507), the temp file is gone, and the next
  // upload that fits is stored.
  EXPECT_EQ(r->rfind("full=1;temps=0;objects=0;small=ok;msg=upload of ", 0), 0u) << *r;
  EXPECT_NE(r->find("No space left on device"), std::string::npos) << *r;
  EXPECT_NE(r->find(root_.string()), std::string::npos) << *r;
}

TEST_F(ArtifactStoreTest, OpenRemovesOnlyStaleTempFiles) {
  { ArtifactStore store = open(); }
  const fs::path stale = root_ / "tmp" / "upload-0123456789ab-dead01";
  const fs::path live = root_ / "tmp" / "upload-0123456789ab-live01";
  std::ofstream(stale) << "left by a crash";
  std::ofstream(live) << "another upload, still running";
  fs::last_write_time(stale, fs::file_time_type::clock::now() - std::chrono::hours(2));
  ArtifactStore store = open({.stale_upload_after = std::chrono::hours(1)});
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(live));
}

}  // namespace
}  // namespace tv::fleet
