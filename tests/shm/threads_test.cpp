// Readers and the writer in threads of one process, so ThreadSanitizer and AddressSanitizer see
// every access (they cannot follow shared memory across processes). ThreadSanitizer relates
// accesses by address: it checks a reader against the writer only when both use one mapping
// (ConfigBlockWriter::reader()).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::shm {
namespace {

using test::ScopedBlockName;

std::vector<Entry> batch(std::int64_t i) {
  return {{"training/a", Value::i64(i)},
          {"training/b", Value::i64(2 * i)},
          {"training/c", Value::i64(i + 1)},
          {"training/tag", Value::string("v" + std::to_string(i))}};
}

TEST(ShmThreads, SnapshotsNeverSeeHalfABatch) {
  ScopedBlockName name("threads-invariant");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, batch(0));
  // One reader through the writer's own mapping, where ThreadSanitizer can relate its loads to
  // the writer's stores (it tracks memory by address), and one through a mapping of its own, as
  // the trainer reads the block.
  const ConfigBlockReader readers_of[2] = {writer.reader(), ConfigBlockReader::attach(name)};
  const int kBatches = 20000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  std::atomic<int> started{0};
  std::atomic<std::int64_t> violations{0}, fresh{0}, late_seen{0}, saw_last{0};

  auto read_loop = [&](const ConfigBlockReader& reader) {
    // Fallbacks that keep the invariant: on a loaded machine a reader's first reads can all
    // overlap writes (a writer preempted mid-batch) and serve them.
    Snapshot snap =
        reader.snapshot(std::vector<SnapshotKey>{{"training/a", Value::i64(-1)},
                                                 {"training/b", Value::i64(-2)},
                                                 {"training/c", Value::i64(0)},
                                                 {"training/tag", Value::string("v-1")}});
    auto a = reader.resolve<std::int64_t>("training/a");
    auto late = reader.resolve<double>("training/late");
    std::int64_t local_fresh = 0;
    bool last = false, seen_late = false;
    started.fetch_add(1);
    // Until this reader has seen the last batch and the key added midway.
    while (!(last && seen_late) && std::chrono::steady_clock::now() < deadline) {
      const bool good = snap.read();
      local_fresh += good ? 1 : 0;
      const std::int64_t v = snap[0].as_i64();
      if (snap[1].as_i64() != 2 * v || snap[2].as_i64() != v + 1 ||
          snap[3].as_string() != "v" + std::to_string(v)) {
        violations.fetch_add(1);
      }
      if (a.get(0) < 0) violations.fetch_add(1);
      if (late.get(-1.0) == 42.0) {
        late_seen.fetch_add(1);
        seen_late = true;
      }
      last |= good && v == kBatches;
    }
    fresh.fetch_add(local_fresh);
    if (last) saw_last.fetch_add(1);
  };
  std::vector<std::thread> readers;
  for (const ConfigBlockReader& r : readers_of)
    readers.emplace_back(read_loop, std::cref(r));
  // The writer starts once both readers are about to read, so their reads overlap its batches.
  while (started.load() < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_EQ(started.load(), 2) << "the readers did not start within the deadline";
  TelemetryWriter tw = writer.reader().telemetry_writer();
  for (int i = 1; i <= kBatches; ++i) {
    writer.apply(batch(i));
    if (i == kBatches / 2) writer.set("training/late", Value::f64(42.0));  // added while reading
    TelemetryRecord r;
    r.step = static_cast<std::uint64_t>(i);
    tw.push(r);
  }
  for (auto& t : readers)
    t.join();
  EXPECT_EQ(violations.load(), 0);
  EXPECT_GT(fresh.load(), 0);
  EXPECT_GT(late_seen.load(), 0);
  EXPECT_EQ(saw_last.load(), 2) << "a reader did not see the last batch within the deadline";
}

TEST(ShmThreads, TelemetryReaderKeepsUpOrCountsMisses) {
  ScopedBlockName name("threads-telemetry");
  WriterOptions o;
  o.ring_capacity = 64;
  auto writer = ConfigBlockWriter::open_or_create(name, o, {});
  auto rw = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  const std::uint64_t kRecords = 200000;
  std::thread producer([&] {
    TelemetryWriter w = rw.telemetry_writer();
    for (std::uint64_t i = 0; i < kRecords; ++i) {
      TelemetryRecord r;
      r.step = i;
      r.loss = static_cast<double>(i) * 0.5;
      w.push(r);
    }
  });
  TelemetryReader r = rw.telemetry_reader();
  std::vector<TelemetryRecord> buf(32);
  std::uint64_t got = 0, missed = 0, bad = 0, last = 0;
  bool any = false;
  while (got + missed < kRecords) {
    const PollResult p = r.poll(buf);
    missed += p.missed;
    for (std::size_t i = 0; i < p.count; ++i) {
      if (buf[i].loss != static_cast<double>(buf[i].step) * 0.5) ++bad;
      if (any && buf[i].step <= last) ++bad;
      last = buf[i].step;
      any = true;
    }
    got += p.count;
  }
  producer.join();
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(got + missed, kRecords);
  EXPECT_GT(got, 0u);
}

}  // namespace
}  // namespace tv::shm
