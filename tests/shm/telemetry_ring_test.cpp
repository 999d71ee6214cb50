#include "trainvisor/shm/telemetry_ring.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "test_support.hpp"
#include "trainvisor/shm/config_block.hpp"

namespace tv::shm {
namespace {

using test::ScopedBlockName;

TelemetryRecord record(std::uint64_t step) {
  TelemetryRecord r;
  r.step = step;
  r.epoch = static_cast<std::uint32_t>(step / 100);
  r.flags = step % 7 == 0 ? std::uint32_t{kTelemetryEval} : 0u;
  r.wall_time_ns = 1'700'000'000'000'000'000 + static_cast<std::int64_t>(step);
  r.loss = 2.0 / static_cast<double>(step + 1);
  r.grad_norm = 0.5 * static_cast<double>(step);
  r.learning_rate = 0.1;
  r.config_revision = step / 3;
  if (r.flags & kTelemetryEval) {
    r.val_loss = 1.5;
    r.val_accuracy = 0.75;
  }
  r.samples_per_sec = 1000.0 + static_cast<double>(step);
  return r;
}

struct Ring {
  explicit Ring(std::uint32_t capacity, const char* tag) : name(tag) {
    WriterOptions o;
    o.ring_capacity = capacity;
    writer.emplace(ConfigBlockWriter::open_or_create(name, o, {}));
    reader.emplace(ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite));
  }
  ScopedBlockName name;
  std::optional<ConfigBlockWriter> writer;
  std::optional<ConfigBlockReader> reader;
};

TEST(TelemetryRing, RecordsArriveWholeAndInOrder) {
  Ring ring(64, "ring-order");
  TelemetryWriter w = ring.reader->telemetry_writer();
  TelemetryReader r = ring.reader->telemetry_reader();
  for (std::uint64_t i = 0; i < 50; ++i)
    w.push(record(i));
  std::vector<TelemetryRecord> out(100);
  const PollResult p = r.poll(out);
  ASSERT_EQ(p.count, 50u);
  EXPECT_EQ(p.missed, 0u);
  for (std::uint64_t i = 0; i < 50; ++i) {
    const TelemetryRecord want = record(i);
    EXPECT_EQ(out[i].step, want.step);
    EXPECT_EQ(out[i].epoch, want.epoch);
    EXPECT_EQ(out[i].flags, want.flags);
    EXPECT_EQ(out[i].wall_time_ns, want.wall_time_ns);
    EXPECT_EQ(out[i].loss, want.loss);
    EXPECT_EQ(out[i].grad_norm, want.grad_norm);
    EXPECT_EQ(out[i].config_revision, want.config_revision);
    EXPECT_EQ(out[i].samples_per_sec, want.samples_per_sec);
    EXPECT_EQ(std::isnan(out[i].val_loss), std::isnan(want.val_loss));
  }
  EXPECT_EQ(r.poll(out).count, 0u);
}

TEST(TelemetryRing, LaggingReaderLearnsHowManyItMissed) {
  Ring ring(8, "ring-lap");
  TelemetryWriter w = ring.reader->telemetry_writer();
  TelemetryReader r = ring.reader->telemetry_reader();
  for (std::uint64_t i = 0; i < 20; ++i)
    w.push(record(i));  // never blocks
  std::vector<TelemetryRecord> out(3);
  PollResult p = r.poll(out);
  EXPECT_EQ(p.missed, 12u);
  ASSERT_EQ(p.count, 3u);
  EXPECT_EQ(out[0].step, 12u);
  p = r.poll(out);
  EXPECT_EQ(p.missed, 0u);
  EXPECT_EQ(out[0].step, 15u);
  const RingState s = ring.reader->ring_state();
  EXPECT_EQ(s.head, 20u);
  EXPECT_EQ(s.reader_next, 18u);
  EXPECT_EQ(s.reader_dropped, 12u);
  EXPECT_EQ(s.capacity, 8u);
}

TEST(TelemetryRing, CapacityRoundsUpToPowerOfTwo) {
  Ring ring(100, "ring-pow2");
  EXPECT_EQ(ring.reader->ring_state().capacity, 128u);
}

TEST(TelemetryRing, RestartedReaderAndWriterContinue) {
  Ring ring(16, "ring-restart");
  {
    TelemetryWriter w = ring.reader->telemetry_writer();
    for (std::uint64_t i = 0; i < 5; ++i)
      w.push(record(i));
  }
  std::vector<TelemetryRecord> out(16);
  {
    TelemetryReader r = ring.reader->telemetry_reader();
    EXPECT_EQ(r.poll(std::span(out).first(2)).count, 2u);
  }
  TelemetryWriter w2 = ring.reader->telemetry_writer();
  w2.push(record(5));
  TelemetryReader r2 = ring.reader->telemetry_reader();
  const PollResult p = r2.poll(out);
  ASSERT_EQ(p.count, 4u);
  EXPECT_EQ(out[0].step, 2u);
  EXPECT_EQ(out[3].step, 5u);
}

TEST(TelemetryRing, ReadOnlyAttachCannotUseTheRing) {
  Ring ring(8, "ring-ro");
  auto ro = ConfigBlockReader::attach(ring.name);
  try {
    ro.telemetry_writer();
    FAIL() << "expected an error";
  } catch (const ShmError& e) {
    EXPECT_NE(std::string(e.what()).find(ring.name.str()), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos);
  }
  EXPECT_THROW(ro.telemetry_reader(), ShmError);
}

}  // namespace
}  // namespace tv::shm
