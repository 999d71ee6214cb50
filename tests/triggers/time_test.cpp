// The time trigger, loaded from its library: intervals of stream time from the first sample,
// a firing at the first row at or past each boundary, wherever batches are cut.
#include <gtest/gtest.h>

#include <limits>

#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

using Positions = std::vector<std::size_t>;

TEST(TimeTrigger, FiresAtTheFirstRowAtOrPastEachBoundaryWhateverTheBatchSizes) {
  // Samples every 3 s, boundaries every 10 s: the first sample at or past 10k s is ceil(10k / 3).
  const Positions expected = {4, 7, 10, 14, 17, 20, 24, 27, 30};
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {2}, {4}, {32}, {3, 1, 8}, {5, 11}}) {
    auto trigger = make_trigger("time", {{"every_s", "10"}});
    EXPECT_EQ(stream_firings(*trigger, 32, sizes, 3 * kSecond), expected)
        << "batch sizes " << sizes[0];
  }
}

TEST(TimeTrigger, ASampleExactlyOnTheBoundaryFires) {
  auto trigger = make_trigger("time", {{"every_s", "10"}});
  const auto d =
      observe(*trigger, batch_at({kStreamStart, kStreamStart + 9'999'999'999,
                                  kStreamStart + 10 * kSecond, kStreamStart + 20 * kSecond}));
  EXPECT_EQ(fired_rows(d), (Positions{2, 3}));
}

TEST(TimeTrigger, ReasonNamesTheIntervalAndItsStart) {
  auto trigger = make_trigger("time", {{"every_s", "3600"}});
  const auto d = observe(*trigger, batch_at({kStreamStart, kStreamStart + 1800 * kSecond,
                                             kStreamStart + 3602 * kSecond}));
  ASSERT_EQ(d.evaluations.size(), 1u);
  const plugin::TriggerEvaluation& e = d.evaluations[0];
  EXPECT_TRUE(e.fired);
  EXPECT_EQ(e.row, 2u);
  EXPECT_EQ(e.time_ns, kStreamStart + 3602 * kSecond);
  EXPECT_EQ(e.reason,
            "3600 s of stream time since 2026-01-01T00:00:00Z; sample at 2026-01-01T01:00:02Z");
  EXPECT_EQ(stat(e, "every_s"), 3600);
  EXPECT_EQ(stat(e, "intervals"), 1);
  EXPECT_EQ(stat(e, "interval_start_s"), kStreamStart / kSecond);
  // The next interval starts at the boundary, not at the sample that crossed it.
  const auto next = observe(*trigger, batch_at({kStreamStart + 7200 * kSecond}));
  ASSERT_EQ(next.evaluations.size(), 1u);
  EXPECT_EQ(next.evaluations[0].reason,
            "3600 s of stream time since 2026-01-01T01:00:00Z; sample at 2026-01-01T02:00:00Z");
}

TEST(TimeTrigger, AGapFiresOnceForTheIntervalsItSkips) {
  auto trigger = make_trigger("time", {{"every_s", "10"}});
  const auto d = observe(
      *trigger, batch_at({kStreamStart, kStreamStart + 5 * kSecond, kStreamStart + 35 * kSecond}));
  ASSERT_EQ(d.evaluations.size(), 1u);
  EXPECT_EQ(d.evaluations[0].row, 2u);
  EXPECT_EQ(d.evaluations[0].reason,
            "30 s of stream time since 2026-01-01T00:00:00Z (3 intervals of 10 s, the last 2 "
            "without samples); sample at 2026-01-01T00:00:35Z");
  EXPECT_EQ(stat(d.evaluations[0], "intervals"), 3);
  // The boundaries stay on the grid of the first sample: the next is at 40 s.
  EXPECT_TRUE(observe(*trigger, batch_at({kStreamStart + 39 * kSecond})).evaluations.empty());
  EXPECT_EQ(fired_rows(observe(*trigger, batch_at({kStreamStart + 40 * kSecond}))), (Positions{0}));
}

TEST(TimeTrigger, FractionalIntervalsAndMilliseconds) {
  auto trigger = make_trigger("time", {{"every_s", "0.5"}});
  const std::int64_t ms = kSecond / 1000;
  const auto d = observe(*trigger, batch_at({kStreamStart, kStreamStart + 499 * ms,
                                             kStreamStart + 500 * ms, kStreamStart + 1250 * ms}));
  EXPECT_EQ(fired_rows(d), (Positions{2, 3}));
  ASSERT_EQ(d.evaluations.size(), 2u);
  EXPECT_EQ(d.evaluations[1].reason,
            "0.5 s of stream time since 2026-01-01T00:00:00.500Z; sample at "
            "2026-01-01T00:00:01.250Z");
}

TEST(TimeTrigger, TheFirstIntervalStartsAtTheFirstSampleNotAtTheFirstBatch) {
  auto trigger = make_trigger("time", {{"every_s", "10"}});
  EXPECT_TRUE(observe(*trigger, batch_at({})).evaluations.empty());
  EXPECT_TRUE(observe(*trigger, batch_at({kStreamStart + 100 * kSecond})).evaluations.empty());
  EXPECT_EQ(fired_rows(observe(
                *trigger, batch_at({kStreamStart + 109 * kSecond, kStreamStart + 110 * kSecond}))),
            (Positions{1}));
}

TEST(TimeTrigger, FeaturesAreNoneOfItsBusiness) {
  auto trigger = make_trigger("time", {{"every_s", "10"}});
  Batch nan = batch_at({kStreamStart, kStreamStart + 5 * kSecond}, 4, true);
  nan.features[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(observe(*trigger, nan).evaluations.empty());
  EXPECT_EQ(fired_rows(observe(*trigger, batch_at({kStreamStart + 10 * kSecond}, 1))),
            (Positions{0}));
}

TEST(TimeTrigger, BadIntervalsAreRefusedByTheSchema) {
  EXPECT_EQ(creation_error("time", {{"every_s", "0"}}),
            "trigger 'time' parameter 'every_s': 0 is below the minimum 0.001");
  EXPECT_EQ(creation_error("time", {{"every_s", "1h"}}),
            "trigger 'time' parameter 'every_s': \"1h\" is not a float64");
  EXPECT_EQ(creation_error("time", {{"every_s", "nan"}}),
            "trigger 'time' parameter 'every_s': must be a finite number, got nan");
}

}  // namespace
}  // namespace tv::triggers::test
