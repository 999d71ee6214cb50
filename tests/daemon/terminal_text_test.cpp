#include "terminal_text.hpp"

#include <gtest/gtest.h>

namespace tv::cli {
namespace {

TEST(TerminalText, PrintableTextIsUnchanged) {
  EXPECT_EQ(terminal_text("gpu-box.lab_1"), "gpu-box.lab_1");
  EXPECT_EQ(terminal_text("loss went up: 1.5 -> 9 (\\ ok)"), "loss went up: 1.5 -> 9 (\\ ok)");
  EXPECT_EQ(terminal_text("h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80"),
            "h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x98\x80");
}

TEST(TerminalText, ControlCharactersAreEscaped) {
  EXPECT_EQ(terminal_text("evil\n\x1b[2J"), "evil\\x0A\\x1B[2J");
  EXPECT_EQ(terminal_text(std::string("a\0b", 3)), "a\\x00b");
  EXPECT_EQ(terminal_text("\r\t\x7f"), "\\x0D\\x09\\x7F");
  // U+009B, the one-byte CSI of C1, as UTF-8.
  EXPECT_EQ(terminal_text("x\xC2\x9B"
                          "2J"),
            "x\\xC2\\x9B2J");
}

TEST(TerminalText, InvalidUtf8IsEscapedByteByByte) {
  EXPECT_EQ(terminal_text("\xff\xfe"), "\\xFF\\xFE");
  EXPECT_EQ(terminal_text("\xC3"), "\\xC3");                    // truncated
  EXPECT_EQ(terminal_text("\xC0\xAF"), "\\xC0\\xAF");           // overlong '/'
  EXPECT_EQ(terminal_text("\xED\xA0\x80"), "\\xED\\xA0\\x80");  // a surrogate
  EXPECT_EQ(terminal_text("\xE2\x9C"), "\\xE2\\x9C");
}

}  // namespace
}  // namespace tv::cli
