// UTF-8 as the server's text rules read it (Unicode table 3-7): shared by the reply helpers and
// whatever else turns bytes from a peer into text.
#pragma once

#include <cstddef>
#include <string_view>

namespace tv::http {

// The length of the well-formed UTF-8 sequence at the start of `s` (not empty), 0 when there is
// none: a stray continuation byte, an overlong form, a surrogate, past U+10FFFF or cut short.
std::size_t utf8_sequence(std::string_view s);

}  // namespace tv::http
