// The data_count trigger, loaded from its library: fires at the sample that completes each
// group of `every`, wherever batches are cut.
#include <gtest/gtest.h>

#include <limits>

#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

using Positions = std::vector<std::size_t>;

TEST(DataCountTrigger, FiresAtTheRowThatCompletesEachGroupWhateverTheBatchSizes) {
  const Positions expected = {4, 9, 14, 19, 24};
  for (const std::vector<std::size_t>& sizes :
       std::vector<std::vector<std::size_t>>{{1}, {3}, {5}, {7}, {25}, {2, 9, 1}, {4, 6}}) {
    auto trigger = make_trigger("data_count", {{"every", "5"}});
    EXPECT_EQ(stream_firings(*trigger, 27, sizes, kSecond), expected) << "batch sizes " << sizes[0];
  }
}

TEST(DataCountTrigger, OneBatchMayFireManyTimesAndEveryOneFiresAtEachRow) {
  auto trigger = make_trigger("data_count", {{"every", "3"}});
  EXPECT_EQ(fired_rows(observe(*trigger, evenly_spaced(10, kStreamStart, kSecond))),
            (Positions{2, 5, 8}));
  // One row pending: the next group completes at this batch's second row.
  EXPECT_EQ(fired_rows(observe(*trigger, evenly_spaced(2, kStreamStart + 10 * kSecond, kSecond))),
            (Positions{1}));
  auto each = make_trigger("data_count", {{"every", "1"}});
  EXPECT_EQ(fired_rows(observe(*each, evenly_spaced(3, kStreamStart, kSecond))),
            (Positions{0, 1, 2}));
}

TEST(DataCountTrigger, ReasonAndStatsNameTheCounts) {
  auto trigger = make_trigger("data_count", {{"every", "500"}});
  const auto first = observe(*trigger, evenly_spaced(700, kStreamStart, kSecond));
  ASSERT_EQ(first.evaluations.size(), 1u);
  const plugin::TriggerEvaluation& e = first.evaluations[0];
  EXPECT_TRUE(e.fired);
  EXPECT_EQ(e.row, 499u);
  EXPECT_EQ(e.time_ns, kStreamStart + 499 * kSecond);
  EXPECT_EQ(e.reason, "500 samples since the stream began (500 in all)");
  EXPECT_EQ(stat(e, "every"), 500);
  EXPECT_EQ(stat(e, "total_samples"), 500);
  const auto second = observe(*trigger, evenly_spaced(300, kStreamStart + 700 * kSecond, kSecond));
  ASSERT_EQ(second.evaluations.size(), 1u);
  EXPECT_EQ(second.evaluations[0].row, 299u);
  EXPECT_EQ(second.evaluations[0].reason, "500 samples since the last firing (1000 in all)");
}

TEST(DataCountTrigger, AnEmptyBatchChangesNothing) {
  auto trigger = make_trigger("data_count", {{"every", "2"}});
  EXPECT_TRUE(observe(*trigger, batch_at({})).evaluations.empty());
  EXPECT_EQ(fired_rows(observe(*trigger, evenly_spaced(2, kStreamStart, kSecond))), (Positions{1}));
}

TEST(DataCountTrigger, FeaturesAreNoneOfItsBusiness) {
  // Labels or none, dims changing, a NaN: each sample counts.
  auto trigger = make_trigger("data_count", {{"every", "3"}});
  Batch nan = batch_at({kStreamStart, kStreamStart + 1}, 4, true);
  nan.features[1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(observe(*trigger, nan).evaluations.empty());
  EXPECT_EQ(fired_rows(observe(*trigger, batch_at({kStreamStart + 2}, 1))), (Positions{0}));
}

TEST(DataCountTrigger, EveryBelowOneIsRefusedByTheSchema) {
  EXPECT_EQ(creation_error("data_count", {{"every", "0"}}),
            "trigger 'data_count' parameter 'every': 0 is below the minimum 1");
  EXPECT_EQ(creation_error("data_count", {{"every", "ten"}}),
            "trigger 'data_count' parameter 'every': \"ten\" is not an int64");
  EXPECT_EQ(creation_error("data_count", {{"every", "2.5"}}),
            "trigger 'data_count' parameter 'every': \"2.5\" is not an int64");
  EXPECT_EQ(creation_error("data_count", {{"evry", "3"}}),
            "trigger 'data_count' has no parameter 'evry' (did you mean 'every'?)");
}

}  // namespace
}  // namespace tv::triggers::test
