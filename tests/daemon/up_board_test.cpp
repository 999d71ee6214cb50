// `up`'s live view rendered onto a fake terminal (a screen of lines that interprets the cursor-up,
// carriage-return and clear-to-end codes the board writes), and the fixed-width numbers of the
// CLI's tables.
#include "up_board.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "table_number.hpp"

namespace tv::cli {
namespace {

using Clock = std::chrono::steady_clock;
using Kind = fleet::HostEvent::Kind;

// A terminal with unbounded scrollback: what a person would see after the writes.
class FakeTerminal {
 public:
  void write(const std::string& s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '\x1b') {
        ASSERT_LT(i + 1, s.size());
        ASSERT_EQ(s[i + 1], '[') << "unknown escape in " << s;
        std::size_t j = i + 2;
        int n = 0;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j])))
          n = n * 10 + (s[j++] - '0');
        ASSERT_LT(j, s.size());
        if (s[j] == 'A') {
          row_ = std::max(0, row_ - std::max(n, 1));
        } else if (s[j] == 'J') {  // clear from the cursor to the end of the screen
          line().resize(col_);
          lines_.resize(row_ + 1);
        } else {
          FAIL() << "unexpected escape code '" << s[j] << "'";
        }
        i = j;
      } else if (s[i] == '\r') {
        col_ = 0;
      } else if (s[i] == '\n') {
        ++row_;
        col_ = 0;
        line();
      } else {
        std::string& l = line();
        if (l.size() <= col_) l.resize(col_ + 1, ' ');
        l[col_++] = s[i];
      }
    }
  }
  // The non-empty lines, trailing spaces kept.
  std::vector<std::string> screen() const {
    std::vector<std::string> out;
    for (const auto& l : lines_)
      if (!l.empty()) out.push_back(l);
    return out;
  }

 private:
  std::string& line() {
    if (lines_.size() <= static_cast<std::size_t>(row_)) lines_.resize(row_ + 1);
    return lines_[row_];
  }
  std::vector<std::string> lines_;
  int row_ = 0;
  std::size_t col_ = 0;
};

fleet::HostEvent event(Kind kind, const std::string& id, const std::string& message = {}) {
  fleet::HostEvent e;
  e.kind = kind;
  e.job_id = id;
  e.job_name = "job-" + id;
  e.message = message;
  return e;
}

fleet::HostEvent progress(const std::string& id, std::uint64_t step, double loss) {
  fleet::HostEvent e = event(Kind::kProgress, id);
  e.step = step;
  e.epoch = 1;
  e.loss = loss;
  e.val_accuracy = 0.5;
  e.learning_rate = 0.05;
  return e;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

TEST(UpBoard, EventLinesScrollAboveTheLiveTableAndNoStaleRowIsLeft) {
  UpBoard board;
  FakeTerminal term;
  const auto now = Clock::now();
  board.on_event(event(Kind::kStarted, "a"));
  board.on_event(event(Kind::kStarted, "b"));
  board.on_event(progress("a", 10, 1.5));
  term.write(board.frame(true, false, now));
  board.on_event(event(Kind::kPolicy, "a", "plateau: lr 0.05 -> 0.025"));
  board.on_event(progress("a", 20, 1.2));
  term.write(board.frame(true, false, now));
  board.on_event(event(Kind::kConfig, "b", "revision 3 refused"));
  board.on_event(event(Kind::kFinished, "b", "done"));
  term.write(board.frame(true, false, now));
  term.write(board.frame(true, false, now));  // nothing new: the table is redrawn in place

  const std::vector<std::string> s = term.screen();
  ASSERT_EQ(s.size(), 5u) << ::testing::PrintToString(s);
  EXPECT_EQ(s[0], "job-a: plateau: lr 0.05 -> 0.025");
  EXPECT_EQ(s[1], "job-b: revision 3 refused");
  EXPECT_TRUE(starts_with(s[2], "JOB ")) << s[2];
  EXPECT_TRUE(starts_with(s[3], "job-a                  running ")) << s[3];
  EXPECT_NE(s[3].find(" 20      1.200 "), std::string::npos) << s[3];  // the latest progress
  EXPECT_TRUE(starts_with(s[4], "job-b                  completed")) << s[4];
}

TEST(UpBoard, AHugeLossKeepsTheColumnsAligned) {
  UpBoard board;
  board.on_event(progress("a", 7, 1.2345));
  board.on_event(progress("b", 7, 1.2345e38));
  board.on_event(progress("c", 7, -3.5e-7));
  FakeTerminal term;
  term.write(board.frame(false, true, Clock::now()));
  const std::vector<std::string> s = term.screen();
  ASSERT_EQ(s.size(), 4u);
  for (const std::string& row : s)
    EXPECT_EQ(row.size(), s[0].size()) << ::testing::PrintToString(s);
  EXPECT_NE(s[2].find("1.234e+38"), std::string::npos) << s[2];
}

TEST(UpBoard, IntoALogTheTableIsWrittenOnAStatusChangeOrEvery30Seconds) {
  UpBoard board;
  const auto t0 = Clock::now();
  board.on_event(event(Kind::kStarted, "a"));
  EXPECT_NE(board.frame(false, false, t0).find("JOB"), std::string::npos);
  board.on_event(progress("a", 5, 1.0));
  board.on_event(event(Kind::kPolicy, "a", "early stop"));
  const std::string quiet = board.frame(false, false, t0 + std::chrono::seconds(1));
  EXPECT_EQ(quiet, "job-a: early stop\n");  // the event alone, no escape codes
  EXPECT_NE(board.frame(false, false, t0 + std::chrono::seconds(31)).find("JOB"),
            std::string::npos);
  board.on_event(event(Kind::kFinished, "a"));
  EXPECT_NE(board.frame(false, false, t0 + std::chrono::seconds(32)).find("completed"),
            std::string::npos);
}

TEST(TableNumber, FourSignificantDigitsInAFixedWidth) {
  EXPECT_EQ(table_number(1.23456), "1.235");
  EXPECT_EQ(table_number(0.05), "0.05000");
  EXPECT_EQ(table_number(123456.7), "123457");
  EXPECT_EQ(table_number(0.0012345), "0.001234");  // "%.6f" rounds half to even here
  EXPECT_EQ(table_number(1.2345678e38), "1.235e+38");
  EXPECT_EQ(table_number(-1.2345678e38), "-1.235e+38");
  EXPECT_EQ(table_number(1e-5), "1.000e-05");
  EXPECT_EQ(table_number(0), "0");
  EXPECT_EQ(table_number(std::numeric_limits<double>::quiet_NaN()), "-");
  EXPECT_EQ(table_number(-std::numeric_limits<double>::infinity()), "-inf");
  EXPECT_EQ(table_number(-1.5e-310), "-1.50e-310");
  for (double v : {1e-300, -9.99949e5, 999999.5, -0.00099999, 1e300, -1.5e-310}) {
    EXPECT_LE(table_number(v).size(), static_cast<std::size_t>(kTableNumberWidth)) << v;
  }
}

}  // namespace
}  // namespace tv::cli
