// Text from elsewhere (the coordinator's replies: worker names, reasons, actors, paths; a
// trainer's messages) made safe to print on a terminal: every control character (C0, DEL, and
// the C1 range U+0080..U+009F, which some terminals read as escape sequences) and every byte
// that is not valid UTF-8 is shown as \xNN, so stored data can neither move the cursor, clear the
// screen nor start a new line of a table. Used by every table and line the CLI prints. Pure
// function; any thread.
#pragma once

#include <string>
#include <string_view>

namespace tv::cli {

// `s` with control characters and invalid UTF-8 bytes as \xNN; printable text, UTF-8 included,
// unchanged.
std::string terminal_text(std::string_view s);

}  // namespace tv::cli
