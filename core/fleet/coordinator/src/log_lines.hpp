// A trainer log's tail made safe to show: valid UTF-8 text, one string a line, nothing a
// terminal or a page would act on. Private to the coordinator (its log routes). Pure functions,
// safe from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tv::fleet::coordinator {

// `bytes` split at '\n' (a final newline ends the last line; it does not start an empty one),
// each line cleaned by clean_log_line.
std::vector<std::string> log_lines(std::string_view bytes);

// `line` as valid UTF-8 without control characters but tab:
// - a byte that is not part of a well-formed UTF-8 sequence becomes U+FFFD;
// - ANSI escape sequences go whole (CSI "ESC [ ... final", OSC "ESC ] ... BEL or ESC \", and
//   "ESC intermediates final"): the colour codes a trainer prints are not text;
// - a carriage return keeps only what follows it, as a terminal shows a progress bar redrawn in
//   place (a trailing one, of CRLF, is dropped);
// - every other C0 or C1 control and DEL is dropped.
// Markup ("<script>") is text like any other: it is the reader's to escape.
std::string clean_log_line(std::string_view line);

}  // namespace tv::fleet::coordinator
