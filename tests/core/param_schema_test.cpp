// The one check of a value against a ParamSpec, which plugin parameters, the trainer's knobs
// (host, hub and trainer) and the manifest all use.
#include "trainvisor/core/param_schema.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace tv {
namespace {

using namespace tv::plugin;

const ParamSpec kRate{"rate", ParamType::kFloat64, 0.1, 0.0, 10.0, {}, ""};
const ParamSpec kCount{"count", ParamType::kInt64, std::int64_t{1}, 1.0, 100.0, {}, ""};
const ParamSpec kMode{"mode", ParamType::kString, std::string("min"), {}, {}, {"min", "max"}, ""};
const ParamSpec kFlag{"flag", ParamType::kBool, false, {}, {}, {}, ""};

TEST(CheckParamValue, AcceptsAValueInsideItsRangeAndAtBothEnds) {
  EXPECT_EQ(check_param_value(kRate, 0.5), std::nullopt);
  EXPECT_EQ(check_param_value(kRate, 0.0), std::nullopt);
  EXPECT_EQ(check_param_value(kRate, 10.0), std::nullopt);
  EXPECT_EQ(check_param_value(kCount, std::int64_t{100}), std::nullopt);
  EXPECT_EQ(check_param_value(kMode, std::string("max")), std::nullopt);
  EXPECT_EQ(check_param_value(kFlag, true), std::nullopt);
}

TEST(CheckParamValue, SaysWhyAValueDoesNotFit) {
  EXPECT_EQ(check_param_value(kRate, -1.0), "-1 is below the minimum 0");
  EXPECT_EQ(check_param_value(kRate, 11.0), "11 is above the maximum 10");
  EXPECT_EQ(check_param_value(kCount, std::int64_t{0}), "0 is below the minimum 1");
  EXPECT_EQ(check_param_value(kRate, std::numeric_limits<double>::infinity()),
            "must be a finite number, got inf");
  EXPECT_EQ(check_param_value(kRate, std::numeric_limits<double>::quiet_NaN()),
            "must be a finite number, got nan");
  EXPECT_EQ(check_param_value(kMode, std::string("median")), "\"median\" is not one of: min, max");
  EXPECT_EQ(check_param_value(kFlag, std::string("yes")), "expects bool, got \"yes\"");
  // An int64 for a float64 is a wrong type until as_declared_type converts it.
  EXPECT_EQ(check_param_value(kRate, std::int64_t{1}), "expects float64, got 1");
  EXPECT_EQ(check_param_value(kRate, as_declared_type(kRate, std::int64_t{1})), std::nullopt);
  EXPECT_EQ(check_param_value(kRate, as_declared_type(kRate, std::int64_t{11})),
            "11 is above the maximum 10");
}

TEST(AsDeclaredType, ConvertsOnlyAnInt64ForAFloat64) {
  EXPECT_EQ(as_declared_type(kRate, std::int64_t{3}), ParamValue(3.0));
  EXPECT_EQ(as_declared_type(kCount, std::int64_t{3}), ParamValue(std::int64_t{3}));
  EXPECT_EQ(as_declared_type(kCount, 3.0), ParamValue(3.0));  // not narrowed: refused later
  EXPECT_EQ(as_declared_type(kFlag, true), ParamValue(true));
}

TEST(ResolveParams, UsesTheSameWordsAsTheOneCheck) {
  try {
    resolve_params({kRate}, {{"rate", 11.0}}, "policy 'x'");
    FAIL() << "an out-of-range value was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "policy 'x' parameter 'rate': " + *check_param_value(kRate, 11.0));
  }
}

}  // namespace
}  // namespace tv
