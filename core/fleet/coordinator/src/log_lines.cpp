#include "log_lines.hpp"

#include "trainvisor/fleet/utf8.hpp"

namespace tv::fleet::coordinator {
namespace {

constexpr unsigned char kEsc = 0x1b;
constexpr unsigned char kBel = 0x07;
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

bool in(unsigned char c, unsigned char lo, unsigned char hi) {
  return c >= lo && c <= hi;
}

// The end of the escape sequence that starts with ESC at `s[i]`.
std::size_t escape_end(std::string_view s, std::size_t i) {
  const auto at = [&](std::size_t k) -> unsigned char {
    return k < s.size() ? static_cast<unsigned char>(s[k]) : 0;
  };
  std::size_t k = i + 1;
  if (at(k) == '[') {  // CSI: parameters, intermediates, one final byte
    ++k;
    while (in(at(k), 0x20, 0x3f))
      ++k;
    return in(at(k), 0x40, 0x7e) ? k + 1 : k;
  }
  if (at(k) == ']') {  // OSC: a window title, a hyperlink; ends with BEL or ESC '\'
    for (++k; k < s.size(); ++k) {
      if (at(k) == kBel) return k + 1;
      if (at(k) == kEsc && at(k + 1) == '\\') return k + 2;
    }
    return k;
  }
  while (in(at(k), 0x20, 0x2f))
    ++k;
  return in(at(k), 0x30, 0x7e) ? k + 1 : k;
}

bool is_control(std::string_view sequence) {
  const auto b0 = static_cast<unsigned char>(sequence[0]);
  if (sequence.size() == 1) return (b0 < 0x20 && b0 != '\t') || b0 == 0x7f;
  // C1 controls, U+0080..U+009F, are C2 80..C2 9F.
  return sequence.size() == 2 && b0 == 0xc2 && static_cast<unsigned char>(sequence[1]) <= 0x9f;
}

// What a terminal would show of `line` after its carriage returns.
std::string_view after_carriage_return(std::string_view line) {
  while (!line.empty() && line.back() == '\r')
    line.remove_suffix(1);
  const std::size_t cr = line.rfind('\r');
  return cr == std::string_view::npos ? line : line.substr(cr + 1);
}

}  // namespace

std::string clean_log_line(std::string_view raw) {
  const std::string_view line = after_carriage_return(raw);
  std::string out;
  out.reserve(line.size());
  for (std::size_t i = 0; i < line.size();) {
    if (static_cast<unsigned char>(line[i]) == kEsc) {
      i = escape_end(line, i);
      continue;
    }
    const std::size_t n = http::utf8_sequence(line.substr(i));
    if (n == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    const std::string_view sequence = line.substr(i, n);
    if (!is_control(sequence)) out += sequence;
    i += n;
  }
  return out;
}

std::vector<std::string> log_lines(std::string_view bytes) {
  std::vector<std::string> lines;
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    lines.push_back(clean_log_line(bytes.substr(0, nl)));
    if (nl == std::string_view::npos) break;
    bytes.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace tv::fleet::coordinator
