// The host's TriggerServices: text parameters converted to each plugin's schema types, typed
// parameters checked and completed, unknown plugins named with what is loaded.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "refusing_drift_statistics.hpp"
#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

using testing::HasSubstr;

plugin::ParamSpec spec_of(plugin::ParamType type) {
  plugin::ParamSpec spec;
  spec.key = "x";
  spec.type = type;
  return spec;
}

TEST(TriggerServices, TextBecomesTheDeclaredTypeOrNothing) {
  const auto int64 = spec_of(plugin::ParamType::kInt64);
  EXPECT_EQ(param_value_from_text(int64, "42"), plugin::ParamValue(std::int64_t{42}));
  EXPECT_EQ(param_value_from_text(int64, "-7"), plugin::ParamValue(std::int64_t{-7}));
  for (const char* bad : {"4.0", "", " 1", "1 ", "0x10", "99999999999999999999", "ten"})
    EXPECT_EQ(param_value_from_text(int64, bad), std::nullopt) << bad;
  const auto float64 = spec_of(plugin::ParamType::kFloat64);
  EXPECT_EQ(param_value_from_text(float64, "0.05"), plugin::ParamValue(0.05));
  EXPECT_EQ(param_value_from_text(float64, "1e-3"), plugin::ParamValue(1e-3));
  EXPECT_EQ(param_value_from_text(float64, "3"), plugin::ParamValue(3.0));
  for (const char* bad : {"", "1h", "0.5s", ".5.", "+"})
    EXPECT_EQ(param_value_from_text(float64, bad), std::nullopt) << bad;
  const auto flag = spec_of(plugin::ParamType::kBool);
  EXPECT_EQ(param_value_from_text(flag, "true"), plugin::ParamValue(true));
  EXPECT_EQ(param_value_from_text(flag, "false"), plugin::ParamValue(false));
  for (const char* bad : {"True", "1", "yes", ""})
    EXPECT_EQ(param_value_from_text(flag, bad), std::nullopt) << bad;
  const auto text = spec_of(plugin::ParamType::kString);
  EXPECT_EQ(param_value_from_text(text, "mmd"), plugin::ParamValue(std::string("mmd")));
  EXPECT_EQ(param_value_from_text(text, ""), plugin::ParamValue(std::string()));
}

TEST(TriggerServices, AnUnknownPluginIsNamedWithTheLoadedTriggerPlugins) {
  std::string error;
  EXPECT_EQ(trigger_services().create_trigger("tmie", {}, error), nullptr);
  EXPECT_THAT(error, HasSubstr("no trigger plugin named 'tmie' (did you mean 'time'?); loaded: "));
  for (const char* name : {"time", "data_count", "ensemble"})
    EXPECT_THAT(error, HasSubstr(name));
  EXPECT_EQ(trigger_services().create_typed("nothing_like_it", {}, error), nullptr);
  EXPECT_THAT(error, HasSubstr("no trigger plugin named 'nothing_like_it'; loaded: "));
}

TEST(TriggerServices, TypedParamsAreCheckedAndCompletedLikeText) {
  std::string error;
  // An int64 for a float64 parameter is accepted; a missing one takes its default.
  auto time = trigger_services().create_typed("time", {{"every_s", std::int64_t{10}}}, error);
  ASSERT_NE(time, nullptr) << error;
  EXPECT_EQ(fired_rows(observe(*time, batch_at({kStreamStart, kStreamStart + 10 * kSecond}))),
            (std::vector<std::size_t>{1}));
  auto count = trigger_services().create_typed("data_count", {}, error);
  ASSERT_NE(count, nullptr) << error;
  EXPECT_EQ(fired_rows(observe(*count, evenly_spaced(1000, kStreamStart, kSecond))),
            (std::vector<std::size_t>{999}));
  EXPECT_EQ(trigger_services().create_typed("data_count", {{"every", 2.5}}, error), nullptr);
  EXPECT_EQ(error, "trigger 'data_count' parameter 'every': expects int64, got 2.5");
  EXPECT_EQ(trigger_services().create_typed("data_count", {{"every", std::int64_t{0}}}, error),
            nullptr);
  EXPECT_EQ(error, "trigger 'data_count' parameter 'every': 0 is below the minimum 1");
}

TEST(TriggerServices, TheTriggersGetTheHostsDriftStatistics) {
  const tv::test::RefusingDriftStatistics drift;
  const HostTriggerServices services(trigger_registry(), drift);
  EXPECT_EQ(&services.drift(), &drift);
}

}  // namespace
}  // namespace tv::triggers::test
