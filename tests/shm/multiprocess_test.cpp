// Real processes against real blocks: a writer process, reader processes, a writer stopped and
// killed in the middle of a write, a writer that takes over and repairs.
#include <gtest/gtest.h>
#include <signal.h>

#include <string>
#include <vector>

#include "test_support.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::shm {
namespace {

using test::Child;
using test::helper;
using test::ScopedBlockName;

TEST(ShmProcesses, ReaderProcessesNeverSeeABrokenInvariant) {
  ScopedBlockName name("mp-invariant");
  // Long enough that the readers' two million snapshots overlap the writer's batches.
  Child writer({helper(), "invariant-writer", name, "3000000"});
  ASSERT_EQ(writer.read_line(), "ready") << "the writer did not create the block";
  std::vector<std::unique_ptr<Child>> readers;
  for (int i = 0; i < 2; ++i) {
    readers.push_back(std::make_unique<Child>(
        std::vector<std::string>{helper(), "invariant-reader", name, "2000000"}));
  }
  for (auto& r : readers) {
    auto facts = r->read_facts();
    EXPECT_EQ(r->wait(), 0) << r->transcript();
    EXPECT_EQ(facts["violations"], "0") << r->transcript();
    EXPECT_EQ(facts["reads"], "2000000");
    EXPECT_GT(std::stoll(facts["fresh"]), 0) << r->transcript();
    // The values moved while the reader read: it really raced the writer.
    EXPECT_GT(std::stoll(facts["distinct"]), 1) << r->transcript();
  }
  auto wf = writer.read_facts();
  EXPECT_EQ(writer.wait(), 0) << writer.transcript();
  EXPECT_EQ(wf["batches"], "3000000");
}

TEST(ShmProcesses, DeadWriterNeverHangsReadersAndANewWriterRepairs) {
  ScopedBlockName name("mp-dead-writer");
  {
    Child first(
        {helper(), "create", name, "training/a=i64:1", "training/b=i64:2", "training/lr=f64:0.1"});
    ASSERT_EQ(first.read_line(), "ready");
    first.close_stdin();
    EXPECT_EQ(first.wait(), 0);
  }
  auto reader = ConfigBlockReader::attach(name);
  auto a = reader.resolve<std::int64_t>("training/a");
  auto lr = reader.resolve<double>("training/lr");
  auto late = reader.resolve<std::int64_t>("training/late");
  Snapshot snap = reader.snapshot(
      std::vector<SnapshotKey>{{"training/a", Value::i64(-1)}, {"training/b", Value::i64(-1)}});
  EXPECT_EQ(a.get(-1), 1);
  EXPECT_TRUE(snap.read());

  // A writer takes over, starts writing training/a and training/b, and is stopped in the middle.
  Child dying({helper(), "stop-mid-write", name});
  ASSERT_EQ(dying.read_line(), "mid-write");
  ASSERT_TRUE(dying.wait_stopped());
  // Never a hang: each of 1000 reads gives up after exactly kMaxReadAttempts attempts.
  const auto check_bounded = [&] {
    const HandleStats a0 = a.stats(), snap0 = snap.stats();
    for (int i = 0; i < 1000; ++i) {
      ASSERT_EQ(a.get(-1), 1);    // last good value
      ASSERT_FALSE(snap.read());  // the tree stays mid-write
      ASSERT_EQ(snap[0].as_i64(), 1);
      ASSERT_EQ(snap[1].as_i64(), 2);
    }
    EXPECT_EQ(a.stats().fallbacks - a0.fallbacks, 1000u);
    EXPECT_EQ(a.stats().retries - a0.retries, 1000u * (kMaxReadAttempts - 1));
    EXPECT_EQ(snap.stats().fallbacks - snap0.fallbacks, 1000u);
    EXPECT_EQ(snap.stats().retries - snap0.retries, 1000u * (kMaxReadAttempts - 1));
  };
  check_bounded();
  EXPECT_EQ(lr.get(-1), 0.1);  // a slot outside the write is read normally
  EXPECT_EQ(a.stats().fallbacks, 1000u);
  ::kill(dying.pid(), SIGKILL);
  EXPECT_EQ(dying.wait(), 128 + SIGKILL);
  check_bounded();
  EXPECT_EQ(reader.info().tree_seq & 1, 1u);

  // A new writer takes over with its own source; the old handles see it without re-attaching.
  Child second({helper(), "create", name, "training/a=i64:7", "training/b=i64:14",
                "training/lr=f64:0.01", "training/late=i64:99"});
  ASSERT_EQ(second.read_line(), "ready");
  EXPECT_EQ(second.read_line(), "took_over=1");
  EXPECT_EQ(a.get(-1), 7);
  EXPECT_EQ(lr.get(-1), 0.01);
  EXPECT_EQ(late.get(-1), 99);  // a key that appeared later
  EXPECT_TRUE(snap.read());
  EXPECT_EQ(snap[0].as_i64(), 7);
  EXPECT_EQ(snap[1].as_i64(), 14);
  EXPECT_EQ(reader.info().repairs, 2u);
  EXPECT_EQ(reader.info().writer_pid, static_cast<std::uint64_t>(second.pid()));
  EXPECT_TRUE(writer_alive(reader.info()));
  second.close_stdin();
  EXPECT_EQ(second.wait(), 0);
  EXPECT_FALSE(writer_alive(reader.info()));
}

TEST(ShmProcesses, LiveWriterInAnotherProcessExcludesASecondOne) {
  ScopedBlockName name("mp-exclusive");
  Child first({helper(), "create", name, "training/a=i64:1"});
  ASSERT_EQ(first.read_line(), "ready");
  try {
    ConfigBlockWriter::open_or_create(name, {}, {});
    FAIL() << "a second writer was allowed";
  } catch (const ShmError& e) {
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(first.pid())), std::string::npos)
        << e.what();
  }
  first.close_stdin();
  EXPECT_EQ(first.wait(), 0);
  // Its lock died with it.
  auto w = ConfigBlockWriter::open_or_create(name, {}, {});
  EXPECT_TRUE(w.repair_report().took_over);
}

TEST(ShmProcesses, TelemetryFromATrainerProcess) {
  ScopedBlockName name("mp-telemetry");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, {});
  auto agent = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  TelemetryReader r = agent.telemetry_reader();
  Child trainer({helper(), "telemetry-push", name, "600"});
  auto facts = trainer.read_facts();
  ASSERT_EQ(trainer.wait(), 0) << trainer.transcript();
  std::vector<TelemetryRecord> out(2048);
  const PollResult p = r.poll(out);
  // The ring holds 1024: all 600 arrive, in order.
  ASSERT_EQ(p.count, 600u);
  EXPECT_EQ(p.missed, 0u);
  for (std::size_t i = 0; i < p.count; ++i) {
    EXPECT_EQ(out[i].step, i);
    EXPECT_EQ(out[i].loss, 1.0 / static_cast<double>(i + 1));
  }
}

}  // namespace
}  // namespace tv::shm
