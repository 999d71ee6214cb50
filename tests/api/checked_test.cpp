// The protocol's checked inputs: every number in range or refused naming the field, no wrap and
// no truncation; names and free text bounded (checked.hpp).
#include "trainvisor/fleet/api/checked.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace tv::fleet::api {
namespace {

using nlohmann::json;

// The invalid_argument's text for decoding `text` as T; "" when it decodes.
template <class T>
std::string refusal(const std::string& text) {
  try {
    json::parse(text).get<T>();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

TEST(Checked, IntegersInRangeOnly) {
  EXPECT_EQ(checked_int(json(5), "f", 0, 10), 5);
  EXPECT_EQ(checked_int(json::parse("3.0"), "f", 0, 10), 3);  // a float with no fraction
  EXPECT_EQ(checked_int(json(-7), "f", -10, 10), -7);
  EXPECT_EQ(checked_int(json(std::numeric_limits<std::int64_t>::min()), "f",
                        std::numeric_limits<std::int64_t>::min(), 0),
            std::numeric_limits<std::int64_t>::min());
  EXPECT_THROW(checked_int(json(11), "f", 0, 10), std::invalid_argument);
  EXPECT_THROW(checked_int(json(-1), "f", 0, 10), std::invalid_argument);
  EXPECT_THROW(checked_int(json::parse("18446744073709551615"), "f", 0, 10), std::invalid_argument);
  EXPECT_THROW(checked_int(json::parse("9.3e18"), "f", std::numeric_limits<std::int64_t>::min(),
                           std::numeric_limits<std::int64_t>::max()),
               std::invalid_argument);
  EXPECT_THROW(checked_uint(json(-1), "f", 0, kMaxStored), std::invalid_argument);
  EXPECT_EQ(checked_uint(json::parse("9223372036854775807"), "f", 0, kMaxStored), kMaxStored);
  EXPECT_THROW(checked_uint(json::parse("9223372036854775808"), "f", 0, kMaxStored),
               std::invalid_argument);
}

TEST(Checked, RefusalsNameTheFieldAndTheReason) {
  try {
    checked_int(json::parse("1e26"), "capability.cores", 0, kMaxCores);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "capability.cores: 1e+26 is out of range (0..1048576)");
  }
  try {
    checked_int(json::parse("2.5"), "x", 0, 10);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "x: 2.5 is not an integer");
  }
  try {
    checked_int(json("7"), "x", 0, 10);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "x: must be an integer, got a string");
  }
  try {
    // The JSON parser refuses 1e999; a decoder may still be handed an infinity in memory.
    checked_double(json(std::numeric_limits<double>::infinity()), "capability.ram_gib", 0,
                   kMaxMemoryGib);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "capability.ram_gib: inf is out of range (0.0..16777216.0)");
  }
}

TEST(Checked, QueryParameters) {
  EXPECT_EQ(checked_param("42", "limit", 0, 1000), 42u);
  EXPECT_EQ(checked_param("0", "limit", 0, 1000), 0u);
  const auto why = [](std::string_view text) {
    try {
      checked_param(text, "limit", 0, 1000);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(why("1001"), "query parameter 'limit': 1001 is out of range (0..1000)");
  EXPECT_EQ(why("99999999999999999999999"),
            "query parameter 'limit': 99999999999999999999999 is out of range (0..1000)");
  EXPECT_EQ(why("-1"), "query parameter 'limit': '-1' is not a whole number (0..1000)");
  EXPECT_EQ(why(""), "query parameter 'limit': '' is not a whole number (0..1000)");
  EXPECT_EQ(why("1e3"), "query parameter 'limit': '1e3' is not a whole number (0..1000)");
}

TEST(Checked, CapabilityBounds) {
  const auto cap = [](const std::string& fields) {
    return refusal<ClaimRequest>(R"({"worker":"h1","capability":{)" + fields + "}}");
  };
  EXPECT_EQ(cap(R"("cores":8,"ram_gib":31.5,"cuda":true,"cuda_devices":2,"vram_gib":24)"), "");
  EXPECT_EQ(cap(R"("cores":1e26)"), "capability.cores: 1e+26 is out of range (0..1048576)");
  EXPECT_EQ(cap(R"("cores":-1)"), "capability.cores: -1 is out of range (0..1048576)");
  EXPECT_EQ(cap(R"("cores":2.5)"), "capability.cores: 2.5 is not an integer");
  EXPECT_EQ(cap(R"("cuda_devices":99999999999999999999)"),
            "capability.cuda_devices: 1e+20 is out of range (0..1024)");
  EXPECT_EQ(cap(R"("ram_gib":-0.5)"), "capability.ram_gib: -0.5 is out of range (0.0..16777216.0)");
  EXPECT_EQ(cap(R"("vram_gib":1e300)"),
            "capability.vram_gib: 1e+300 is out of range (0.0..16777216.0)");
  EXPECT_EQ(cap(R"("ram_gib":"NaN")"), "capability.ram_gib: must be a number, got a string");
  EXPECT_EQ(cap(R"("cuda":1)"), "capability.cuda: must be a bool, got an integer");
  EXPECT_EQ(cap(R"("torch_version":")" + std::string(300, 'v') + "\""),
            "capability.torch_version: 300 bytes is over the limit of 256 bytes");
}

TEST(Checked, WorkerNames) {
  const auto claim = [](const json& worker) {
    return refusal<ClaimRequest>(json({{"worker", worker}, {"capability", json::object()}}).dump());
  };
  EXPECT_EQ(claim("gpu-box.lab_1"), "");
  const std::string rule =
      "worker: is not a valid host name (1..64 of letters, digits, '.', '_', '-'; not starting "
      "with '.' or '-')";
  EXPECT_EQ(claim("evil\n\x1b[2J"), rule);
  EXPECT_EQ(claim("-rf"), rule);
  EXPECT_EQ(claim(std::string(65, 'a')), "worker: 65 bytes is over the limit of 64 bytes");
  EXPECT_EQ(claim(std::string(500000, 'a')), "worker: 500000 bytes is over the limit of 64 bytes");
  EXPECT_EQ(claim(3), "worker: must be a string, got an integer");
}

TEST(Checked, TelemetryBounds) {
  const auto batch = [](const std::string& point) {
    return refusal<TelemetryBatch>(R"({"host":"h1","points":[)" + point + "]}");
  };
  EXPECT_EQ(batch(R"({"step":5,"epoch":1,"loss":0.5,"val_loss":null})"), "");
  EXPECT_EQ(batch(R"({"step":-1})"), "point.step: -1 is out of range (0..9223372036854775807)");
  EXPECT_EQ(batch(R"({"step":18446744073709551615})"),
            "point.step: 18446744073709551615 is out of range (0..9223372036854775807)");
  EXPECT_EQ(batch(R"({"step":1,"epoch":4294967296})"),
            "point.epoch: 4294967296 is out of range (0..4294967295)");
  EXPECT_EQ(batch(R"({"step":1,"config_revision":-3})"),
            "point.config_revision: -3 is out of range (0..9223372036854775807)");
  EXPECT_EQ(batch(R"({"step":1.5})"), "point.step: 1.5 is not an integer");
  EXPECT_EQ(batch(R"({"epoch":1})"), "point.step: missing");
  EXPECT_EQ(batch(R"({"step":1,"loss":"nan"})"), "point.loss: must be a number, got a string");
  EXPECT_EQ(refusal<TelemetryBatch>(R"({"host":"h1","missed":-2})"),
            "missed: -2 is out of range (0..9223372036854775807)");
  EXPECT_EQ(refusal<TelemetryBatch>(R"({"host":"h1","refusals":[{"revision":1,"reason":")" +
                                    std::string(5000, 'r') + R"("}]})"),
            "refusals.reason: 5000 bytes is over the limit of 4096 bytes");
}

TEST(Checked, FreeTextIsBounded) {
  EXPECT_EQ(refusal<FailRequest>(R"({"lease_token":"t","class":"trainer_failure","reason":")" +
                                 std::string(900 * 1024, 'x') + R"("})"),
            "reason: 921600 bytes is over the limit of 4096 bytes");
  EXPECT_EQ(refusal<ConfigWriteRequest>(R"({"writes":{"a/b":1},"reason":")" +
                                        std::string(5000, 'x') + R"("})"),
            "reason: 5000 bytes is over the limit of 4096 bytes");
  EXPECT_EQ(refusal<ConfigWriteRequest>(R"({"writes":{"a/b":1},"decided_from":-1})"),
            "decided_from: -1 is out of range (0..9223372036854775807)");
  EXPECT_EQ(
      refusal<ConfigWriteRequest>(R"({"writes":{"a/b":")" + std::string(5000, 'x') + R"("}})"),
      "writes.a/b: a string of 5000 bytes is over the limit of 4096 bytes");
  EXPECT_EQ(refusal<LeaseRequest>(R"({"lease_token":")" + std::string(300, 't') + R"("})"),
            "lease_token: 300 bytes is over the limit of 256 bytes");
}

}  // namespace
}  // namespace tv::fleet::api
