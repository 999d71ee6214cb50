// The ensemble trigger, loaded from its library with its members created through the host's
// TriggerServices: votes by any / all / at_least on known sequences, across batch boundaries,
// its reasons and stats, and its refusals of bad `members` strings.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "trigger_harness.hpp"

namespace tv::triggers::test {
namespace {

using Positions = std::vector<std::size_t>;
using testing::HasSubstr;

// The count members used below: data_count every 3, 5 and 7 samples.
const char* const kTwoCounts = "data_count(every=3); data_count(every=5)";
const char* const kThreeCounts = "data_count(every=3); data_count(every=5); data_count(every=7)";

// The ensemble's documented vote rule, written out directly for count members: every member's
// firing raises its vote, the ensemble fires where `needed` votes are raised and drops them all.
Positions expected_votes(const std::vector<std::size_t>& everies, std::size_t needed,
                         std::size_t total) {
  Positions fires;
  std::vector<bool> votes(everies.size(), false);
  for (std::size_t p = 0; p < total; ++p) {
    for (std::size_t i = 0; i < everies.size(); ++i) {
      if ((p + 1) % everies[i] == 0) votes[i] = true;
    }
    if (static_cast<std::size_t>(std::count(votes.begin(), votes.end(), true)) >= needed) {
      fires.push_back(p);
      votes.assign(votes.size(), false);
    }
  }
  return fires;
}

TEST(EnsembleTrigger, AnyAllAndAtLeastOnKnownSequences) {
  // Members fire at 2 5 8 11 14 (every 3) and 4 9 14 (every 5).
  auto any = make_trigger("ensemble", {{"members", kTwoCounts}, {"mode", "any"}});
  EXPECT_EQ(stream_firings(*any, 15, {15}, kSecond), (Positions{2, 4, 5, 8, 9, 11, 14}));
  auto all = make_trigger("ensemble", {{"members", kTwoCounts}, {"mode", "all"}});
  EXPECT_EQ(stream_firings(*all, 15, {15}, kSecond), (Positions{4, 9, 14}));
  // And 6 13 20 (every 7).
  auto two =
      make_trigger("ensemble", {{"members", kThreeCounts}, {"mode", "at_least"}, {"n", "2"}});
  EXPECT_EQ(stream_firings(*two, 21, {21}, kSecond), (Positions{4, 6, 9, 13, 14, 19, 20}));
  auto three = make_trigger("ensemble", {{"members", kThreeCounts}, {"mode", "all"}});
  EXPECT_EQ(stream_firings(*three, 21, {21}, kSecond), (Positions{6, 13, 20}));
}

TEST(EnsembleTrigger, VotesStayRaisedAcrossBatchesWhateverTheCuts) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<std::size_t> sizes;
    for (int i = 0; i < 8; ++i)
      sizes.push_back(std::uniform_int_distribution<std::size_t>(1, 12)(rng));
    for (const std::size_t needed : {1u, 2u, 3u}) {
      auto trigger = make_trigger(
          "ensemble",
          {{"members", kThreeCounts}, {"mode", "at_least"}, {"n", std::to_string(needed)}});
      EXPECT_EQ(stream_firings(*trigger, 120, sizes, kSecond),
                expected_votes({3, 5, 7}, needed, 120))
          << "n=" << needed << ", trial " << trial;
    }
  }
}

TEST(EnsembleTrigger, EvaluationsCarryTheMembersReasonsAndStatsByName) {
  auto trigger = make_trigger(
      "ensemble", {{"members", "data_count(every=2); time(every_s=10)"}, {"mode", "all"}});
  const auto d = observe(*trigger, evenly_spaced(5, kStreamStart, 3 * kSecond));
  ASSERT_EQ(d.evaluations.size(), 3u);  // data_count at rows 1 and 3, time at row 4
  const plugin::TriggerEvaluation& waits = d.evaluations[0];
  EXPECT_FALSE(waits.fired);
  EXPECT_EQ(waits.row, 1u);
  EXPECT_EQ(waits.time_ns, kStreamStart + 3 * kSecond);
  EXPECT_EQ(waits.reason,
            "waits: 1 of 2 members voted (data_count), 2 needed (all) | data_count: 2 samples "
            "since the stream began (2 in all)");
  EXPECT_EQ(stat(waits, "votes"), 1);
  EXPECT_EQ(stat(waits, "votes_needed"), 2);
  EXPECT_EQ(stat(waits, "data_count.fired"), 1);
  EXPECT_EQ(stat(waits, "data_count.total_samples"), 2);
  EXPECT_FALSE(d.evaluations[1].fired);
  const plugin::TriggerEvaluation& fires = d.evaluations[2];
  EXPECT_TRUE(fires.fired);
  EXPECT_EQ(fires.row, 4u);
  EXPECT_EQ(fires.reason,
            "fires: 2 of 2 members voted (data_count, time), 2 needed (all) | time: 10 s of "
            "stream time since 2026-01-01T00:00:00Z; sample at 2026-01-01T00:00:12Z");
  EXPECT_EQ(stat(fires, "time.every_s"), 10);
  EXPECT_EQ(stat(fires, "time.intervals"), 1);
  // The votes dropped: the next data_count firing alone does not fire the ensemble.
  const auto next = observe(*trigger, evenly_spaced(1, kStreamStart + 15 * kSecond, kSecond));
  ASSERT_EQ(next.evaluations.size(), 1u);
  EXPECT_FALSE(next.evaluations[0].fired);
  EXPECT_THAT(next.evaluations[0].reason, HasSubstr("waits: 1 of 2 members voted (data_count)"));
}

TEST(EnsembleTrigger, APluginNamedTwiceIsLabelledByPosition) {
  auto trigger = make_trigger("ensemble", {{"members", kTwoCounts}, {"mode", "any"}});
  const auto d = observe(*trigger, evenly_spaced(5, kStreamStart, kSecond));
  ASSERT_EQ(d.evaluations.size(), 2u);
  EXPECT_THAT(d.evaluations[0].reason, HasSubstr("(data_count#1)"));
  EXPECT_EQ(stat(d.evaluations[1], "data_count#2.total_samples"), 5);
}

TEST(EnsembleTrigger, AnEnsembleCanBeAMember) {
  auto trigger = make_trigger(
      "ensemble", {{"members",
                    "ensemble(members=\"data_count(every=2); data_count(every=3)\", mode=all); "
                    "time(every_s=1000)"},
                   {"mode", "any"}});
  EXPECT_EQ(stream_firings(*trigger, 13, {4}, kSecond), (Positions{2, 5, 8, 11}));
}

// test_trigger (tests/plugins) refuses a batch of more than max_rows rows and counts like
// data_count otherwise.
TEST(EnsembleTrigger, AFirstMemberRefusingLeavesTheEnsembleAsItWas) {
  auto trigger = make_trigger(
      "ensemble",
      {{"members", "test_trigger(samples=2, max_rows=3); data_count(every=3)"}, {"mode", "all"}});
  EXPECT_EQ(refusal(*trigger, evenly_spaced(4, kStreamStart, kSecond)),
            "member 'test_trigger': rows: 4 in a batch, at most 3");
  // As if the refused batch had never come: both vote by the third sample.
  EXPECT_EQ(stream_firings(*trigger, 6, {3}, kSecond), (Positions{2, 5}));
}

TEST(EnsembleTrigger, ALaterMemberRefusingStopsTheEnsemble) {
  auto trigger = make_trigger(
      "ensemble", {{"members", "data_count(every=3); test_trigger(samples=2, max_rows=3)"}});
  const std::string expected =
      "member 'test_trigger': rows: 4 in a batch, at most 3 (the members no longer see the same "
      "stream, so this ensemble refuses every further batch)";
  EXPECT_EQ(refusal(*trigger, evenly_spaced(4, kStreamStart, kSecond)), expected);
  EXPECT_EQ(refusal(*trigger, evenly_spaced(1, kStreamStart + 5 * kSecond, kSecond)), expected);
}

TEST(EnsembleTrigger, MalformedMembersAreRefusedWithThePositionAndTheProblem) {
  const auto refused = [](const std::string& members) {
    return creation_error("ensemble", {{"members", members}});
  };
  const std::string prefix = "trigger 'ensemble': parameter 'members': ";
  EXPECT_EQ(refused(""), prefix + "character 1: a member (a trigger plugin name) is missing");
  EXPECT_EQ(refused("data_count(every=5);"),
            prefix + "character 21: a member (a trigger plugin name) is missing");
  EXPECT_EQ(refused("data_count(every=5);; time"),
            prefix + "character 21: a member (a trigger plugin name) is missing");
  EXPECT_EQ(refused("data_count(every=5"),
            prefix +
                "character 19: expected ',' or ')' after a parameter of 'data_count', "
                "found the end");
  EXPECT_EQ(refused("data_count(every 5)"),
            prefix + "character 18: expected '=' after 'every', found '5'");
  EXPECT_EQ(refused("data_count(every=5, every=6)"),
            prefix + "character 21: parameter 'every' of 'data_count' is given twice");
  EXPECT_EQ(refused("data_count(every=)"),
            prefix + "character 18: expected a value for 'every', found ')'");
  EXPECT_EQ(refused("Time"), prefix + "character 1: expected a trigger plugin name, found 'T'");
  EXPECT_EQ(refused("data_count time"),
            prefix + "character 12: expected ';' between members, found 't'");
  EXPECT_EQ(refused("ensemble(members=\"time(every_s=5)"),
            prefix + "character 18: the quoted value of 'members' opened here is not closed");
  EXPECT_EQ(refused("data_count(=5)"),
            prefix + "character 12: expected a parameter name of 'data_count', found '='");
}

TEST(EnsembleTrigger, MembersAreCheckedAgainstTheirOwnSchemas) {
  const std::string prefix = "trigger 'ensemble': parameter 'members': ";
  const std::string unknown =
      creation_error("ensemble", {{"members", "data_count(every=5); tmie(every_s=3)"}});
  EXPECT_THAT(unknown, HasSubstr(prefix + "member 2 ('tmie'): no trigger plugin named 'tmie' "
                                          "(did you mean 'time'?); loaded: "));
  for (const char* name : {"time", "data_count", "ensemble"})
    EXPECT_THAT(unknown.substr(unknown.find("loaded: ")), HasSubstr(name));
  EXPECT_EQ(creation_error("ensemble", {{"members", "data_count(every=0)"}}),
            prefix +
                "member 1 ('data_count'): trigger 'data_count' parameter 'every': 0 is "
                "below the minimum 1");
  EXPECT_EQ(creation_error("ensemble", {{"members", "time(every=60)"}}),
            prefix +
                "member 1 ('time'): trigger 'time' has no parameter 'every' (did you mean "
                "'every_s'?)");
}

TEST(EnsembleTrigger, BadModeAndVoteCountsAreRefused) {
  EXPECT_EQ(creation_error("ensemble", {{"members", kTwoCounts}, {"mode", "at_least"}, {"n", "3"}}),
            "trigger 'ensemble': parameter 'n': 3 votes needed but 'members' names 2");
  EXPECT_EQ(creation_error("ensemble", {{"mode", "most"}}),
            "trigger 'ensemble' parameter 'mode': \"most\" is not one of: any, all, at_least");
  EXPECT_EQ(creation_error("ensemble", {{"n", "0"}}),
            "trigger 'ensemble' parameter 'n': 0 is below the minimum 1");
}

}  // namespace
}  // namespace tv::triggers::test
