// The ring's record and the plugin header's point are one concept: same flag bits, fields and
// missing-metric NaN (static_asserts in core/src/telemetry_point.cpp fail the build of tv_core,
// and so of this test, when they drift), and one conversion that carries every field.
#include "trainvisor/core/telemetry_point.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace tv {
namespace {

TEST(TelemetryPoint, AMissingMetricIsNaNInEveryShape) {
  const shm::TelemetryRecord record;
  const plugin::TelemetryPoint point;
  for (const double v :
       {record.loss, record.grad_norm, record.learning_rate, record.val_loss, record.val_accuracy,
        record.samples_per_sec, point.loss, point.grad_norm, point.learning_rate, point.val_loss,
        point.val_accuracy, point.samples_per_sec}) {
    EXPECT_TRUE(std::isnan(v));
  }
  EXPECT_TRUE(std::isnan(to_telemetry_point(record).val_loss));
}

TEST(TelemetryPoint, TheConversionCarriesEveryField) {
  shm::TelemetryRecord r;
  r.step = 7;
  r.epoch = 2;
  r.flags = shm::kTelemetryEval | shm::kTelemetryCheckpoint;
  r.wall_time_ns = 123456789;
  r.loss = 0.5;
  r.grad_norm = 1.5;
  r.learning_rate = 0.01;
  r.config_revision = 9;
  r.val_loss = 0.75;
  r.val_accuracy = 0.875;
  r.samples_per_sec = 1000;
  const plugin::TelemetryPoint p = to_telemetry_point(r);
  EXPECT_EQ(p.step, 7u);
  EXPECT_EQ(p.epoch, 2u);
  EXPECT_EQ(p.flags, plugin::kTelemetryEval | plugin::kTelemetryCheckpoint);
  EXPECT_EQ(p.wall_time_ns, 123456789);
  EXPECT_EQ(p.loss, 0.5);
  EXPECT_EQ(p.grad_norm, 1.5);
  EXPECT_EQ(p.learning_rate, 0.01);
  EXPECT_EQ(p.config_revision, 9u);
  EXPECT_EQ(p.val_loss, 0.75);
  EXPECT_EQ(p.val_accuracy, 0.875);
  EXPECT_EQ(p.samples_per_sec, 1000);
}

}  // namespace
}  // namespace tv
