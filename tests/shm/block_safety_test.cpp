// A block belongs to one lease, and a block cut short by another process breaks that block
// alone: attach refuses it with its sizes, and an access after the cut reads zeros instead of
// killing the process with SIGBUS.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"
#include "tv_shm.h"

namespace tv::shm {
namespace {

using test::error_of;
using test::ScopedBlockName;

std::vector<Entry> knobs() {
  return {{"training/optimizer/learning_rate", Value::f64(0.1)},
          {"training/control/max_epochs", Value::i64(10)},
          {"training/optimizer/name", Value::string("sgd")}};
}

BlockLease lease(std::uint64_t attempt, char fill) {
  return BlockLease::from_hex(attempt, std::string(2 * kLeaseDigestBytes, fill));
}

WriterOptions with_lease(const BlockLease& l) {
  WriterOptions o;
  o.lease = l;
  return o;
}

// What any process of the same user can do to a block: cut its object to `bytes`.
void truncate_object(const std::string& name, off_t bytes) {
  const int fd = ::shm_open(name.c_str(), O_RDWR, 0);
  ASSERT_GE(fd, 0) << name;
  ASSERT_EQ(::ftruncate(fd, bytes), 0);
  ::close(fd);
}

// Replaces the object's bytes with `bytes` (sized to them).
void write_object(const std::string& name, const std::vector<char>& bytes) {
  const int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT, 0600);
  ASSERT_GE(fd, 0) << name;
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(bytes.size())), 0);
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

TEST(BlockLease, HexRoundTripsAndBadDigestsAreNamed) {
  const BlockLease l = lease(3, 'a');
  EXPECT_EQ(l.digest_hex(), std::string(64, 'a'));
  EXPECT_EQ(BlockLease::from_hex(3, l.digest_hex()), l);
  EXPECT_EQ(l.describe(), "attempt 3 (lease aaaaaaaa...)");
  EXPECT_EQ(BlockLease{}.describe(), "no lease");
  EXPECT_CONTAINS(error_of([] { BlockLease::from_hex(1, "abc"); }),
                  "invalid lease digest 'abc': expected 64 hex digits");
  EXPECT_CONTAINS(error_of([] { BlockLease::from_hex(1, std::string(63, 'a') + "g"); }),
                  "expected 64 hex digits");
}

TEST(BlockLease, WriterStampsItsLeaseAndTheSameLeaseTakesTheBlockOver) {
  ScopedBlockName name("lease-same");
  { auto w = ConfigBlockWriter::open_or_create(name, with_lease(lease(2, 'b')), knobs()); }
  auto reader = ConfigBlockReader::attach(name);
  ASSERT_TRUE(reader.lease());
  EXPECT_EQ(*reader.lease(), lease(2, 'b'));
  const std::uint64_t version = reader.lease_version();
  EXPECT_EQ(version % 2, 0u);

  // A restarted daemon holding the same lease adopts the block in place.
  auto w = ConfigBlockWriter::open_or_create(name, with_lease(lease(2, 'b')), knobs());
  EXPECT_TRUE(w.repair_report().took_over);
  EXPECT_FALSE(w.repair_report().superseded);
  EXPECT_EQ(reader.lease_version(), version);
  w.set("training/optimizer/learning_rate", Value::f64(0.5));
  EXPECT_EQ(reader.resolve<double>("training/optimizer/learning_rate").get(-1), 0.5);
}

TEST(BlockLease, AnotherLeaseStampsTheOldBlockAndGetsAFreshOne) {
  ScopedBlockName name("lease-other");
  { auto w = ConfigBlockWriter::open_or_create(name, with_lease(lease(1, 'a')), knobs()); }
  // The orphaned trainer of attempt 1, still running on the block.
  auto orphan = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  const std::uint64_t version = orphan.lease_version();
  TelemetryWriter orphan_ring = orphan.telemetry_writer();
  orphan_ring.push({});

  auto w = ConfigBlockWriter::open_or_create(name, with_lease(lease(2, 'c')), knobs());
  EXPECT_TRUE(w.repair_report().superseded);
  EXPECT_FALSE(w.repair_report().took_over);
  ASSERT_TRUE(w.repair_report().previous);
  EXPECT_EQ(*w.repair_report().previous, lease(1, 'a'));

  // The orphan sees the new lease on its own mapping: one load tells it something changed.
  EXPECT_NE(orphan.lease_version(), version);
  ASSERT_TRUE(orphan.lease());
  EXPECT_EQ(orphan.lease()->attempt, 2u);

  // The name holds a fresh block: nothing the orphan pushes, before or after, reaches its ring.
  orphan_ring.push({});
  auto fresh = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  EXPECT_EQ(*fresh.lease(), lease(2, 'c'));
  EXPECT_EQ(fresh.ring_state().head, 0u);
  TelemetryRecord out[4];
  EXPECT_EQ(fresh.telemetry_reader().poll(out).count, 0u);
  EXPECT_EQ(orphan.ring_state().head, 2u);
}

TEST(BlockLease, RemovalLeavesAnotherHoldersBlockAlone) {
  ScopedBlockName name("lease-remove");
  auto first = ConfigBlockWriter::open_or_create(name, with_lease(lease(1, 'a')), knobs());
  ConfigBlockWriter::remove(name);
  auto second = ConfigBlockWriter::open_or_create(name, with_lease(lease(2, 'b')), knobs());
  EXPECT_FALSE(first.remove_own());
  EXPECT_FALSE(ConfigBlockWriter::remove_if_lease(name, lease(1, 'a')));
  EXPECT_NO_THROW(ConfigBlockReader::attach(name));
  EXPECT_TRUE(ConfigBlockWriter::remove_if_lease(name, lease(2, 'b')));
  EXPECT_CONTAINS(error_of([&] { ConfigBlockReader::attach(name); }), "does not exist");
}

TEST(BlockSize, AttachOfAShortZeroOrGarbageBlockFailsCleanly) {
  ScopedBlockName name("short");
  write_object(name, {});
  EXPECT_CONTAINS(error_of([&] { ConfigBlockReader::attach(name); }),
                  "is 0 bytes, smaller than a block header (448 bytes)");
  write_object(name, std::vector<char>(7, 'x'));
  EXPECT_CONTAINS(error_of([&] { ConfigBlockReader::attach(name); }), "is 7 bytes");
  write_object(name, std::vector<char>(8192, '\x5a'));
  EXPECT_CONTAINS(error_of([&] { ConfigBlockReader::attach(name); }), "wrong magic number");
  // A real header over too few bytes.
  { auto w = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  truncate_object(name, 4096);
  EXPECT_CONTAINS(error_of([&] { ConfigBlockReader::attach(name); }),
                  "is truncated: it is 4096 bytes but its header says");
  // And through the C ABI, as the Python client sees it.
  EXPECT_EQ(tv_shm_attach(name.str().c_str(), TV_SHM_READ_ONLY), nullptr);
  EXPECT_CONTAINS(tv_shm_last_error(), "is truncated: it is 4096 bytes");
}

// Every access path of both sides after the object is cut to `bytes`: none may kill the process.
void every_access_survives(off_t bytes) {
  ScopedBlockName name("cut-" + std::to_string(bytes));
  auto w = ConfigBlockWriter::open_or_create(name, {}, knobs());
  auto reader = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  auto lr = reader.resolve<double>("training/optimizer/learning_rate");
  Snapshot snap =
      reader.snapshot(std::vector<SnapshotKey>{{"training/control/max_epochs", Value::i64(0)},
                                               {"training/optimizer/name", Value::string("")}});
  TelemetryWriter push = reader.telemetry_writer();
  TelemetryReader poll = w.reader().telemetry_reader();
  EXPECT_EQ(lr.get(-1), 0.1);
  EXPECT_FALSE(reader.damage());

  const std::uint64_t expected = reader.info().total_bytes;
  truncate_object(name, bytes);
  for (int i = 0; i < 3; ++i) {
    try {
      w.set("training/optimizer/learning_rate", Value::f64(0.2));  // the config agent
    } catch (const ShmError& e) {
      EXPECT_CONTAINS(e.what(), "was truncated to " + std::to_string(bytes) + " bytes");
    }
    w.heartbeat();
    push.push({});  // the trainer
    TelemetryRecord out[8];
    poll.poll(out);  // the supervisor
    lr.get(-1);
    snap.read();
    reader.entries();  // inspect
    reader.info();
    reader.ring_state();
    reader.lease();
  }
  EXPECT_TRUE(reader.faulted());
  const std::string why = "shared-memory block '" + name.str() + "' was truncated to " +
                          std::to_string(bytes) + " bytes (expected " + std::to_string(expected) +
                          ")";
  ASSERT_TRUE(reader.damage());
  EXPECT_EQ(*reader.damage(), why);
  ASSERT_TRUE(w.damage());
  EXPECT_EQ(*w.damage(), why);
  tv_shm_block* c = tv_shm_attach(name.str().c_str(), TV_SHM_READ_ONLY);
  EXPECT_EQ(c, nullptr);  // a new attach refuses it
  EXPECT_CONTAINS(tv_shm_last_error(), name.str());
}

TEST(BlockSize, AccessAfterTruncationToZeroDoesNotKillTheProcess) {
  every_access_survives(0);
}

TEST(BlockSize, AccessAfterTruncationToAFewBytesDoesNotKillTheProcess) {
  every_access_survives(10);
}

TEST(BlockSize, CApiCheckNamesTheTruncation) {
  ScopedBlockName name("c-check");
  auto w = ConfigBlockWriter::open_or_create(name, with_lease(lease(4, 'd')), knobs());
  tv_shm_block* b = tv_shm_attach(name.str().c_str(), TV_SHM_READ_WRITE);
  ASSERT_NE(b, nullptr);
  std::uint64_t attempt = 0;
  char digest[65];
  EXPECT_EQ(tv_shm_block_lease(b, &attempt, digest, sizeof digest), 1);
  EXPECT_EQ(attempt, 4u);
  EXPECT_EQ(std::string(digest), std::string(64, 'd'));
  EXPECT_EQ(tv_shm_block_lease(b, &attempt, digest, 10), -1);
  EXPECT_EQ(tv_shm_block_check(b), 0);
  truncate_object(name, 0);
  tv_shm_telemetry rec{};
  EXPECT_EQ(tv_shm_telemetry_push(b, &rec), 0);  // lands in zeros, does not fault
  EXPECT_EQ(tv_shm_block_check(b), -1);
  EXPECT_CONTAINS(tv_shm_last_error(), "was truncated to 0 bytes (expected");
  tv_shm_detach(b);
}

TEST(BlockSize, AFaultOutsideEveryBlockStillKillsTheProcess) {
  // The handler contains faults on blocks only: any other SIGBUS keeps its default action.
  EXPECT_EXIT(
      {
        ScopedBlockName name("outside");
        auto w = ConfigBlockWriter::open_or_create(name, {}, knobs());  // installs the handler
        char path[] = "/tmp/tv-sigbus-XXXXXX";
        const int fd = ::mkstemp(path);
        ::unlink(path);
        if (::ftruncate(fd, 4096) != 0) std::_Exit(3);
        auto* p = static_cast<volatile char*>(
            ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
        p[4096] = 1;  // past the end of the file
        std::_Exit(0);
      },
      // SIGBUS's default action; under a sanitizer, its report and exit.
      [](int status) {
        return (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
               (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3);
      },
      "");
}

}  // namespace
}  // namespace tv::shm
