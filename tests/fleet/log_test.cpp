// The daemons' log lines: JSON with the fixed keys and typed fields, or the human line; the
// format chosen by TRAINVISOR_LOG_FORMAT or by whether stderr is a terminal.
#include "trainvisor/fleet/log.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

namespace tv::fleet::log {
namespace {

using nlohmann::json;

Record claimed() {
  Record r;
  r.component = "host";
  r.message = "claimed mlp (3f2a) attempt 1";
  r.job = "3f2a";
  r.fields = {{"attempt", 1}, {"duration_s", 0.25}, {"loss", std::nan("")}, {"level", "spoof"}};
  return r;
}

TEST(Log, AJsonLineHasTheFixedKeysThenTheFieldsTyped) {
  const std::string line = render(claimed(), Format::kJson, 1796685901123);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line
  const json j = json::parse(line);
  EXPECT_EQ(j["time"], "2026-12-07T23:25:01.123Z");
  EXPECT_EQ(j["level"], "info");  // a field never overrides a fixed key
  EXPECT_EQ(j["component"], "host");
  EXPECT_EQ(j["job"], "3f2a");
  EXPECT_EQ(j["message"], "claimed mlp (3f2a) attempt 1");
  EXPECT_EQ(j["attempt"], 1);
  EXPECT_EQ(j["duration_s"], 0.25);
  EXPECT_TRUE(j["loss"].is_null());  // not a number: unknown
}

TEST(Log, NoJobNoJobKeyAndBadBytesAreReplacedNotThrown) {
  Record r;
  r.level = Level::kError;
  r.component = "coordinator";
  r.message = std::string("a peer sent \xff\xfe and \"quotes\"\nand a newline");
  const std::string line = render(r, Format::kJson, 0);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const json j = json::parse(line);
  EXPECT_FALSE(j.contains("job"));
  EXPECT_EQ(j["level"], "error");
  EXPECT_EQ(j["time"], "1970-01-01T00:00:00.000Z");
  EXPECT_NE(j["message"].get<std::string>().find("\"quotes\"\nand"), std::string::npos);
}

TEST(Log, TheTextLineIsTheHumanOne) {
  EXPECT_EQ(render(claimed(), Format::kText, 0), "host: claimed mlp (3f2a) attempt 1\n");
  Record r = claimed();
  r.level = Level::kWarn;
  EXPECT_EQ(render(r, Format::kText, 0), "host: warning: claimed mlp (3f2a) attempt 1\n");
}

TEST(Log, TheFormatIsTheEnvironmentsElseByTerminal) {
  const int file = ::open("/dev/null", O_WRONLY);
  ASSERT_GE(file, 0);
  ::unsetenv("TRAINVISOR_LOG_FORMAT");
  EXPECT_EQ(format_from_env(file), Format::kJson);  // not a terminal
  ::setenv("TRAINVISOR_LOG_FORMAT", "text", 1);
  EXPECT_EQ(format_from_env(file), Format::kText);
  ::setenv("TRAINVISOR_LOG_FORMAT", "json", 1);
  EXPECT_EQ(format_from_env(file), Format::kJson);
  ::setenv("TRAINVISOR_LOG_FORMAT", "yaml", 1);
  try {
    format_from_env(file);
    ADD_FAILURE() << "yaml accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "TRAINVISOR_LOG_FORMAT='yaml': expected json or text");
  }
  ::unsetenv("TRAINVISOR_LOG_FORMAT");
  ::close(file);
}

}  // namespace
}  // namespace tv::fleet::log
