#include "tv_shm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>

#include "test_support.hpp"
#include "trainvisor/shm/config_block.hpp"

namespace tv::shm {
namespace {

using test::ScopedBlockName;

TEST(ShmCApi, AttachErrorsNameTheBlock) {
  ScopedBlockName name("c-missing");
  EXPECT_EQ(tv_shm_attach(name.str().c_str(), TV_SHM_READ_ONLY), nullptr);
  EXPECT_NE(std::string(tv_shm_last_error()).find(name.str()), std::string::npos);
  EXPECT_EQ(tv_shm_attach("no-prefix", TV_SHM_READ_ONLY), nullptr);
  EXPECT_NE(std::string(tv_shm_last_error()).find("'no-prefix'"), std::string::npos);
  EXPECT_EQ(tv_shm_attach(nullptr, TV_SHM_READ_ONLY), nullptr);
}

TEST(ShmCApi, ReadsKeysSnapshotsAndTelemetry) {
  ScopedBlockName name("c-api");
  auto writer = ConfigBlockWriter::open_or_create(
      name, {},
      std::vector<Entry>{{"training/optimizer/learning_rate", Value::f64(0.1)},
                         {"training/control/max_epochs", Value::i64(4)},
                         {"training/control/early_stop", Value::boolean(true)},
                         {"training/optimizer/name", Value::string("sgd")}});
  tv_shm_block* b = tv_shm_attach(name.str().c_str(), TV_SHM_READ_WRITE);
  ASSERT_NE(b, nullptr) << tv_shm_last_error();
  tv_shm_handle* lr = tv_shm_resolve(b, "training/optimizer/learning_rate", TV_SHM_FLOAT64);
  tv_shm_handle* ep = tv_shm_resolve(b, "training/control/max_epochs", TV_SHM_INT64);
  tv_shm_handle* es = tv_shm_resolve(b, "training/control/early_stop", TV_SHM_BOOL);
  tv_shm_handle* nm = tv_shm_resolve(b, "training/optimizer/name", TV_SHM_STRING);
  tv_shm_handle* late = tv_shm_resolve(b, "training/late", TV_SHM_FLOAT64);
  ASSERT_TRUE(lr && ep && es && nm && late) << tv_shm_last_error();
  EXPECT_EQ(tv_shm_get_f64(lr, -1), 0.1);
  EXPECT_EQ(tv_shm_get_i64(ep, -1), 4);
  EXPECT_EQ(tv_shm_get_bool(es, 0), 1);
  char buf[64];
  EXPECT_EQ(tv_shm_get_string(nm, "x", buf, sizeof buf), 3);
  EXPECT_STREQ(buf, "sgd");
  EXPECT_EQ(tv_shm_get_f64(late, 2.5), 2.5);
  EXPECT_EQ(tv_shm_handle_bound(late), 0);
  writer.set("training/late", Value::f64(3.5));
  EXPECT_EQ(tv_shm_get_f64(late, 2.5), 3.5);
  EXPECT_EQ(tv_shm_handle_bound(late), 1);

  // Wrong types are errors with the key's name.
  EXPECT_EQ(tv_shm_resolve(b, "training/control/max_epochs", TV_SHM_FLOAT64), nullptr);
  EXPECT_NE(std::string(tv_shm_last_error()).find("'training/control/max_epochs'"),
            std::string::npos);
  EXPECT_EQ(tv_shm_get_string(lr, "", buf, sizeof buf), -1);
  EXPECT_NE(std::string(tv_shm_last_error()).find("another type"), std::string::npos);
  EXPECT_EQ(tv_shm_resolve(b, "bad key", TV_SHM_FLOAT64), nullptr);
  EXPECT_EQ(tv_shm_resolve(b, "training/x", 77), nullptr);
  EXPECT_NE(std::string(tv_shm_last_error()).find("77"), std::string::npos);

  const char* paths[] = {"training/optimizer/learning_rate", "training/optimizer/name"};
  tv_shm_value fallbacks[2] = {};
  fallbacks[0].type = TV_SHM_FLOAT64;
  fallbacks[1].type = TV_SHM_STRING;
  tv_shm_snapshot* s = tv_shm_snapshot_new(b, paths, fallbacks, 2);
  ASSERT_NE(s, nullptr) << tv_shm_last_error();
  writer.apply(std::vector<Entry>{{"training/optimizer/learning_rate", Value::f64(0.2)},
                                  {"training/optimizer/name", Value::string("adamw")}});
  tv_shm_value out[2];
  std::uint64_t gen = 0;
  EXPECT_EQ(tv_shm_snapshot_read(s, out, 2, &gen), 1);
  EXPECT_EQ(gen, writer.generation());
  EXPECT_EQ(out[0].f64, 0.2);
  EXPECT_STREQ(out[1].str, "adamw");
  EXPECT_EQ(tv_shm_snapshot_read(s, out, 1, &gen), -1);

  tv_shm_telemetry rec{};
  rec.step = 17;
  rec.loss = 0.25;
  rec.val_loss = NAN;
  ASSERT_EQ(tv_shm_telemetry_push(b, &rec), 0) << tv_shm_last_error();
  tv_shm_telemetry got[4];
  std::uint64_t missed = 0;
  ASSERT_EQ(tv_shm_telemetry_poll(b, got, 4, &missed), 1) << tv_shm_last_error();
  EXPECT_EQ(got[0].step, 17u);
  EXPECT_EQ(got[0].loss, 0.25);
  EXPECT_TRUE(std::isnan(got[0].val_loss));
  EXPECT_EQ(missed, 0u);

  char block_name[128];
  EXPECT_GT(tv_shm_block_name_for_job("job-1", block_name, sizeof block_name), 0);
  EXPECT_STREQ(block_name, "trainvisor.job-1");
  EXPECT_EQ(tv_shm_block_name_for_job("job/1", block_name, sizeof block_name), -1);
  EXPECT_EQ(tv_shm_abi_version(), TV_SHM_ABI_VERSION);

  tv_shm_snapshot_free(s);
  tv_shm_detach(b);  // handles outlive the block object
  EXPECT_EQ(tv_shm_get_f64(lr, -1), 0.2);
  for (tv_shm_handle* h : {lr, ep, es, nm, late})
    tv_shm_handle_free(h);
}

TEST(ShmCApi, ReadOnlyBlockRefusesTelemetry) {
  ScopedBlockName name("c-ro");
  auto writer = ConfigBlockWriter::open_or_create(name, {}, {});
  tv_shm_block* b = tv_shm_attach(name.str().c_str(), TV_SHM_READ_ONLY);
  ASSERT_NE(b, nullptr);
  tv_shm_telemetry rec{};
  EXPECT_EQ(tv_shm_telemetry_push(b, &rec), -1);
  EXPECT_NE(std::string(tv_shm_last_error()).find("read-only"), std::string::npos);
  tv_shm_detach(b);
}

}  // namespace
}  // namespace tv::shm
