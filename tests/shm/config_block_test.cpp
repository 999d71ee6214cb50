#include "trainvisor/shm/config_block.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace bip = boost::interprocess;

namespace tv::shm {
namespace {

using test::ScopedBlockName;

using test::error_of;

std::vector<Entry> knobs() {
  return {{"training/optimizer/learning_rate", Value::f64(0.1)},
          {"training/optimizer/momentum", Value::f64(0.9)},
          {"training/control/max_epochs", Value::i64(10)},
          {"training/control/early_stop", Value::boolean(false)},
          {"training/optimizer/name", Value::string("sgd")}};
}

// Maps a block raw, as a hostile or broken writer would see it.
struct RawBlock {
  explicit RawBlock(const std::string& name)
      : object(bip::open_only, name.c_str(), bip::read_write), region(object, bip::read_write) {}
  BlockHeader& header() { return *static_cast<BlockHeader*>(region.get_address()); }
  ConfigSlot& slot(std::size_t i) {
    return reinterpret_cast<ConfigSlot*>(static_cast<char*>(region.get_address()) +
                                         header().slots_offset)[i];
  }
  bip::shared_memory_object object;
  bip::mapped_region region;
};

TEST(ConfigBlock, WriterCreatesReaderReads) {
  ScopedBlockName name("basic");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  EXPECT_FALSE(writer.repair_report().took_over);
  auto reader = ConfigBlockReader::attach(name);
  auto lr = reader.resolve<double>("training/optimizer/learning_rate");
  auto epochs = reader.resolve<std::int64_t>("training/control/max_epochs");
  auto stop = reader.resolve<bool>("training/control/early_stop");
  auto opt = reader.resolve<ShortString>("training/optimizer/name");
  EXPECT_TRUE(lr.bound());
  EXPECT_EQ(lr.get(-1), 0.1);
  EXPECT_EQ(epochs.get(-1), 10);
  EXPECT_FALSE(stop.get(true));
  EXPECT_EQ(opt.get({}).view(), "sgd");

  writer.set("training/optimizer/learning_rate", Value::f64(0.05));
  writer.set("training/optimizer/name", Value::string("adamw"));
  writer.set("training/control/early_stop", Value::boolean(true));
  EXPECT_EQ(lr.get(-1), 0.05);
  EXPECT_EQ(opt.get({}).view(), "adamw");
  EXPECT_TRUE(stop.get(false));
  EXPECT_EQ(lr.stats().fallbacks, 0u);
  // No writer overlapped a read: each took one attempt.
  EXPECT_EQ(lr.stats().max_attempts, 1u);
  EXPECT_EQ(lr.stats().retries, 0u);
  EXPECT_GE(lr.stats().reads, 2u);
}

TEST(ConfigBlock, BlockIsOwnerOnly) {
  ScopedBlockName name("mode");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  struct stat st {};
  ASSERT_EQ(::stat(("/dev/shm/" + name.str()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(ConfigBlock, MissingKeyServesDefaultUntilItAppears) {
  ScopedBlockName name("late");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  auto reader = ConfigBlockReader::attach(name);
  auto clip = reader.resolve<double>("training/regularization/grad_clip_max");
  EXPECT_FALSE(clip.bound());
  EXPECT_EQ(clip.get(5.0), 5.0);
  writer.set("training/other", Value::i64(1));  // a different key appears: still unbound
  EXPECT_EQ(clip.get(5.0), 5.0);
  writer.set("training/regularization/grad_clip_max", Value::f64(1.5));
  EXPECT_EQ(clip.get(5.0), 1.5);
  EXPECT_TRUE(clip.bound());
}

TEST(ConfigBlock, LateKeyOfAnotherTypeNeverBinds) {
  ScopedBlockName name("late-type");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, {});
  auto reader = ConfigBlockReader::attach(name);
  auto h = reader.resolve<double>("training/k");
  writer.set("training/k", Value::i64(3));
  EXPECT_EQ(h.get(2.5), 2.5);
  EXPECT_TRUE(h.type_conflict());
}

TEST(ConfigBlock, ResolveOfWrongTypeNamesKeyAndTypes) {
  ScopedBlockName name("wrong-type-read");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  auto reader = ConfigBlockReader::attach(name);
  const std::string e =
      error_of([&] { reader.resolve<std::int64_t>("training/optimizer/learning_rate"); });
  EXPECT_CONTAINS(e, "'training/optimizer/learning_rate'");
  EXPECT_CONTAINS(e, "holds float64, not int64");
  EXPECT_CONTAINS(e, name.str());
}

TEST(ConfigBlock, WriteOfWrongTypeIsRefusedAndChangesNothing) {
  ScopedBlockName name("wrong-type-write");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  const auto gen = writer.generation();
  const std::string e =
      error_of([&] { writer.set("training/optimizer/learning_rate", Value::string("fast")); });
  EXPECT_CONTAINS(e, "'training/optimizer/learning_rate'");
  EXPECT_CONTAINS(e, "holds float64; refusing a string value (\"fast\")");
  EXPECT_EQ(writer.generation(), gen);
  auto reader = ConfigBlockReader::attach(name);
  EXPECT_EQ(reader.resolve<double>("training/optimizer/learning_rate").get(-1), 0.1);
}

TEST(ConfigBlock, KeyAtTheLimitReadsBackAndOneByteMoreIsRefused) {
  ScopedBlockName name("long-key");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, {});
  auto reader = ConfigBlockReader::attach(name);
  // Exactly kMaxKeyBytes fills the slot's key field, with no terminator. Two such keys that
  // differ only in their last byte: that byte is stored and compared too.
  const std::string stem = "training/" + std::string(kMaxKeyBytes - 10, 'k');
  const std::string at_limit = stem + "1", twin = stem + "2";
  ASSERT_EQ(at_limit.size(), kMaxKeyBytes);
  writer.set(at_limit, Value::f64(1.25));
  writer.set(twin, Value::f64(2.5));
  auto h = reader.resolve<double>(at_limit);
  EXPECT_TRUE(h.bound());
  EXPECT_EQ(h.path(), at_limit);
  EXPECT_EQ(h.get(-1), 1.25);
  EXPECT_EQ(reader.resolve<double>(twin).get(-1), 2.5);
  const auto entries = reader.entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].path, at_limit);
  EXPECT_EQ(entries[0].value, Value::f64(1.25));
  EXPECT_TRUE(entries[0].consistent);
  EXPECT_EQ(entries[1].path, twin);
  writer.set(at_limit, Value::f64(0.75));  // and it stays writable
  EXPECT_EQ(h.get(-1), 0.75);

  const std::string over = at_limit + "k";
  const std::string expected = "invalid key '" + over + "': " + std::to_string(kMaxKeyBytes + 1) +
                               " bytes, the limit is " + std::to_string(kMaxKeyBytes);
  EXPECT_EQ(error_of([&] { writer.set(over, Value::f64(1)); }), expected);
  EXPECT_EQ(error_of([&] { reader.resolve<double>(over); }), expected);
  EXPECT_EQ(reader.info().key_count, 2u);  // the refused key took no slot
}

TEST(ConfigBlock, MalformedKeysAreNamed) {
  ScopedBlockName name("bad-key");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, {});
  EXPECT_CONTAINS(error_of([&] { writer.set("a//b", Value::f64(1)); }), "'a//b'");
  EXPECT_CONTAINS(error_of([&] { writer.set("/a", Value::f64(1)); }), "non-empty");
  EXPECT_CONTAINS(error_of([&] { writer.set("a b", Value::f64(1)); }),
                  "character ' ' at position 1");
  EXPECT_CONTAINS(error_of([&] { writer.set("", Value::f64(1)); }), "empty");
}

TEST(ConfigBlock, StringTooLongIsRefused) {
  const std::string v(kMaxStringBytes + 1, 's');
  const std::string e = error_of([&] { Value::string(v); });
  EXPECT_CONTAINS(e, "49 bytes is too long (limit 48)");
  EXPECT_CONTAINS(e, "'ssssssssssssssssssssssss...'");
  EXPECT_EQ(Value::string(std::string(kMaxStringBytes, 's')).as_string().size(), kMaxStringBytes);
}

TEST(ConfigBlock, BadBatchChangesNothing) {
  ScopedBlockName name("batch");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  const auto gen = writer.generation();
  const std::vector<Entry> bad = {{"training/optimizer/learning_rate", Value::f64(0.2)},
                                  {"training/new_key", Value::f64(1)},
                                  {"training/control/max_epochs", Value::f64(3.0)}};
  EXPECT_CONTAINS(error_of([&] { writer.apply(bad); }), "'training/control/max_epochs'");
  const std::vector<Entry> dup = {{"training/x", Value::f64(0.2)}, {"training/x", Value::f64(1)}};
  EXPECT_CONTAINS(error_of([&] { writer.apply(dup); }), "'training/x' appears twice");
  EXPECT_EQ(writer.generation(), gen);
  auto reader = ConfigBlockReader::attach(name);
  EXPECT_EQ(reader.resolve<double>("training/optimizer/learning_rate").get(-1), 0.1);
  EXPECT_EQ(reader.info().key_count, knobs().size());
}

TEST(ConfigBlock, FullBlockIsRefused) {
  ScopedBlockName name("full");
  WriterOptions o;
  o.slot_capacity = 2;
  auto writer = ConfigBlockWriter::open_or_create(name, o, {});
  writer.set("a", Value::i64(1));
  writer.set("b", Value::i64(2));
  const std::string e = error_of([&] { writer.set("c", Value::i64(3)); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "is full: 2 of 2 slots used");
  writer.set("a", Value::i64(4));  // existing keys still writable
}

TEST(ConfigBlock, BatchIsOneGeneration) {
  ScopedBlockName name("gen");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  const auto gen = writer.generation();
  writer.apply(std::vector<Entry>{{"training/optimizer/learning_rate", Value::f64(0.3)},
                                  {"training/optimizer/momentum", Value::f64(0.5)},
                                  {"training/brand_new", Value::i64(7)}});
  EXPECT_EQ(writer.generation(), gen + 1);
  auto reader = ConfigBlockReader::attach(name);
  Snapshot s =
      reader.snapshot(std::vector<SnapshotKey>{{"training/optimizer/learning_rate", Value::f64(0)},
                                               {"training/optimizer/momentum", Value::f64(0)},
                                               {"training/brand_new", Value::i64(0)},
                                               {"training/absent", Value::string("dflt")}});
  EXPECT_TRUE(s.read());
  EXPECT_EQ(s.generation(), gen + 1);
  EXPECT_EQ(s[0].as_f64(), 0.3);
  EXPECT_EQ(s[1].as_f64(), 0.5);
  EXPECT_EQ(s[2].as_i64(), 7);
  EXPECT_EQ(s[3].as_string(), "dflt");
  EXPECT_CONTAINS(
      error_of([&] {
        reader.snapshot(std::vector<SnapshotKey>{{"training/brand_new", Value::f64(0)}});
      }),
      "holds int64, not float64");
}

TEST(ConfigBlock, AttachRefusesMissingBlock) {
  ScopedBlockName name("missing");
  const std::string e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "does not exist");
}

TEST(ConfigBlock, AttachRefusesBadName) {
  const std::string e = error_of([] { ConfigBlockReader::attach("trainvisor.../etc/passwd"); });
  EXPECT_CONTAINS(e, "'trainvisor.../etc/passwd'");
}

TEST(ConfigBlock, AttachRefusesWrongMagicAndWriterLeavesItIntact) {
  ScopedBlockName name("magic");
  { auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  RawBlock raw(name);
  raw.header().magic = 0x1122334455667788ULL;
  const std::string e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "wrong magic number 0x1122334455667788");
  const std::vector<char> before(
      static_cast<char*>(raw.region.get_address()),
      static_cast<char*>(raw.region.get_address()) + raw.region.get_size());
  EXPECT_CONTAINS(error_of([&] { ConfigBlockWriter::open_or_create(name, {}, knobs()); }),
                  "wrong magic");
  EXPECT_EQ(0, std::memcmp(before.data(), raw.region.get_address(), before.size()));
}

TEST(ConfigBlock, AttachRefusesOtherMajorVersion) {
  ScopedBlockName name("version");
  { auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  RawBlock raw(name);
  raw.header().layout_major = kLayoutMajor + 1;
  const std::string e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "layout version 3.0; this build reads major version 2 only");
  raw.header().layout_major = kLayoutMajor;
  raw.header().layout_minor = kLayoutMinor + 5;  // a newer minor is readable
  EXPECT_NO_THROW(ConfigBlockReader::attach(name));
}

TEST(ConfigBlock, AttachRefusesTruncatedBlock) {
  ScopedBlockName name("truncated");
  { auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  {
    bip::shared_memory_object o(bip::open_only, name.str().c_str(), bip::read_write);
    o.truncate(8192);
  }
  std::string e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "is truncated: it is 8192 bytes but its header says");
  {
    bip::shared_memory_object o(bip::open_only, name.str().c_str(), bip::read_write);
    o.truncate(100);
  }
  e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, "is 100 bytes, smaller than a block header");
}

TEST(ConfigBlock, AttachRefusesBlockNotReady) {
  ScopedBlockName name("not-ready");
  { auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  RawBlock raw(name);
  raw.header().ready.store(0);
  const std::string e = error_of([&] { ConfigBlockReader::attach(name); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "is not ready");
  // Its creator died before finishing: the next writer recreates it from scratch.
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  EXPECT_FALSE(writer.repair_report().took_over);
  EXPECT_NO_THROW(ConfigBlockReader::attach(name));
}

TEST(ConfigBlock, SecondWriterIsRefused) {
  ScopedBlockName name("two-writers");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  const std::string e = error_of([&] { ConfigBlockWriter::open_or_create(name, {}, knobs()); });
  EXPECT_CONTAINS(e, name.str());
  EXPECT_CONTAINS(e, "already has a live writer (pid " + std::to_string(::getpid()) + ")");
}

TEST(ConfigBlock, ReadUnderStuckWriteIsBoundedAndServesLastGood) {
  ScopedBlockName name("stuck");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  auto reader = ConfigBlockReader::attach(name);
  auto lr = reader.resolve<double>("training/optimizer/learning_rate");
  auto fresh = reader.resolve<double>("training/optimizer/momentum");
  Snapshot snap = reader.snapshot(
      std::vector<SnapshotKey>{{"training/optimizer/learning_rate", Value::f64(-1)}});
  EXPECT_EQ(lr.get(-1), 0.1);
  EXPECT_TRUE(snap.read());
  RawBlock raw(name);
  // What a writer killed between write_begin and write_end leaves behind.
  ConfigSlot& slot = raw.slot(0);
  raw.header().tree_seq.fetch_add(1);
  slot.seq.fetch_add(1);
  slot.payload[0].store(std::bit_cast<std::uint64_t>(123.0));
  EXPECT_EQ(lr.get(-1), 0.1);
  EXPECT_EQ(lr.stats().fallbacks, 1u);
  EXPECT_EQ(lr.stats().retries, kMaxReadAttempts - 1);
  EXPECT_EQ(lr.stats().max_attempts, kMaxReadAttempts);  // gave up after the bound, no later
  EXPECT_FALSE(snap.read());
  EXPECT_EQ(snap[0].as_f64(), 0.1);
  EXPECT_EQ(snap.stats().fallbacks, 1u);
  EXPECT_EQ(snap.stats().max_attempts, kMaxReadAttempts);
  // A handle that never read the key gets its fallback, not the torn value.
  auto late = reader.resolve<double>("training/optimizer/learning_rate");
  EXPECT_EQ(late.get(-1), -1);
  EXPECT_EQ(fresh.get(-1), 0.9);  // other slots are unaffected
}

TEST(ConfigBlock, RestartedWriterRepairsAndReadersContinue) {
  ScopedBlockName name("repair");
  {
    auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
    writer.set("training/orphan_str", Value::string("old"));
    writer.set("training/orphan_num", Value::i64(5));
  }
  auto reader = ConfigBlockReader::attach(name);
  auto lr = reader.resolve<double>("training/optimizer/learning_rate");
  auto orphan_str = reader.resolve<ShortString>("training/orphan_str");
  auto orphan_num = reader.resolve<std::int64_t>("training/orphan_num");
  EXPECT_EQ(orphan_str.get({}).view(), "old");
  EXPECT_EQ(lr.get(-1), 0.1);
  {
    RawBlock raw(name);
    raw.header().tree_seq.fetch_add(1);
    for (std::size_t i : {0, 5, 6})
      raw.slot(i).seq.fetch_add(1);  // lr, orphan_str, orphan_num
  }
  EXPECT_EQ(lr.get(-1), 0.1);
  EXPECT_EQ(lr.stats().fallbacks, 1u);

  std::vector<Entry> source = knobs();
  source[0].value = Value::f64(0.01);
  source.push_back({"training/added_on_restart", Value::boolean(true)});
  auto writer = ConfigBlockWriter::open_or_create(name, {}, source);
  const RepairReport& r = writer.repair_report();
  EXPECT_TRUE(r.took_over);
  EXPECT_TRUE(r.tree_was_mid_write);
  EXPECT_EQ(r.slots_mid_write, 3u);
  ASSERT_EQ(r.unrestored.size(), 1u);
  EXPECT_EQ(r.unrestored[0], "training/orphan_str");

  EXPECT_EQ(lr.get(-1), 0.01);  // same handle, no re-attach
  EXPECT_EQ(orphan_num.get(-1), 5);
  EXPECT_EQ(orphan_str.get({}).view(), "old");  // still marked mid-write: last good
  EXPECT_EQ(reader.info().repairs, 1u);
  EXPECT_EQ((reader.info().tree_seq & 1), 0u);
  Snapshot s = reader.snapshot(
      std::vector<SnapshotKey>{{"training/added_on_restart", Value::boolean(false)}});
  EXPECT_TRUE(s.read());
  EXPECT_TRUE(s[0].as_bool());
  writer.set("training/orphan_str", Value::string("new"));
  EXPECT_EQ(orphan_str.get({}).view(), "new");
}

TEST(ConfigBlock, TakeOverRefusesTypeChange) {
  ScopedBlockName name("takeover-type");
  { auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs()); }
  std::vector<Entry> source = knobs();
  source[2].value = Value::f64(10);
  const std::string e = error_of([&] { ConfigBlockWriter::open_or_create(name, {}, source); });
  EXPECT_CONTAINS(e, "'training/control/max_epochs'");
  EXPECT_CONTAINS(e, "holds int64");
  auto reader = ConfigBlockReader::attach(name);  // the block is intact
  EXPECT_EQ(reader.resolve<std::int64_t>("training/control/max_epochs").get(-1), 10);
}

TEST(ConfigBlock, WritersOwnReaderOutlivesTheWriterButNotItsLock) {
  ScopedBlockName name("own-reader"), other("own-reader-other");
  const std::string lr_key = "training/optimizer/learning_rate";
  std::optional<ConfigBlockReader> own;
  {
    auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
    own.emplace(writer.reader());
    auto lr = own->resolve<double>(lr_key);
    EXPECT_EQ(lr.get(-1), 0.1);
    writer.set(lr_key, Value::f64(0.2));
    EXPECT_EQ(lr.get(-1), 0.2);
    // The writer's mapping is writable: the ring works through it.
    TelemetryWriter tw = own->telemetry_writer();
    tw.push(TelemetryRecord{});
    EXPECT_EQ(own->ring_state().head, 1u);
  }
  // The writer is gone and its lock with it, although `own` still maps the block.
  auto next = ConfigBlockWriter::open_or_create(name, {}, knobs());
  EXPECT_TRUE(next.repair_report().took_over);
  next.set(lr_key, Value::f64(0.3));
  EXPECT_EQ(own->resolve<double>(lr_key).get(-1), 0.3);
  // Moving another writer over it gives its lock up too.
  const ConfigBlockReader kept = next.reader();
  next = ConfigBlockWriter::open_or_create(other, {}, {});
  auto third = ConfigBlockWriter::open_or_create(name, {}, knobs());
  EXPECT_TRUE(third.repair_report().took_over);
  EXPECT_EQ(kept.resolve<double>(lr_key).get(-1), 0.1);  // restored from the source
}

TEST(ConfigBlock, EntriesListEveryKey) {
  ScopedBlockName name("entries");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, knobs());
  auto reader = ConfigBlockReader::attach(name);
  const auto entries = reader.entries();
  ASSERT_EQ(entries.size(), knobs().size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].path, knobs()[i].path);
    EXPECT_EQ(entries[i].value, knobs()[i].value);
    EXPECT_TRUE(entries[i].consistent);
  }
  const BlockInfo info = reader.info();
  EXPECT_EQ(info.writer_pid, static_cast<std::uint64_t>(::getpid()));
  EXPECT_TRUE(writer_alive(info));
  EXPECT_EQ(info.layout_major, kLayoutMajor);
}

}  // namespace
}  // namespace tv::shm
