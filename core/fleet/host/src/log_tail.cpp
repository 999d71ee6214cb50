#include "log_tail.hpp"

#include <fstream>

namespace tv::fleet {
namespace {

// `text` without its oldest lines beyond `max_lines` (a last line without its newline counts).
std::string newest_lines(std::string text, std::size_t max_lines, bool& truncated) {
  std::size_t lines = 0;
  std::size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;  // the final newline ends a line, it opens none
  for (std::size_t i = end; i > 0; --i) {
    if (text[i - 1] != '\n') continue;
    if (++lines == max_lines) {
      truncated = true;
      return text.substr(i);
    }
  }
  return text;
}

}  // namespace

std::optional<LogTail> read_log_tail(const std::filesystem::path& path, std::size_t max_bytes,
                                     std::size_t max_lines) {
  try {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    in.seekg(0, std::ios::end);
    const std::streamoff end = in.tellg();
    if (end < 0) return std::nullopt;
    LogTail tail;
    tail.size = static_cast<std::uintmax_t>(end);
    // One byte before the window as well: whether the window starts a line.
    const auto window = static_cast<std::streamoff>(max_bytes);
    const bool cut = end > window;
    const std::streamoff start = cut ? end - window - 1 : 0;
    std::string bytes(static_cast<std::size_t>(end - start), '\0');
    in.seekg(start);
    if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) return std::nullopt;
    if (cut) {
      // Everything up to the first newline is older than the window or a cut line.
      const std::size_t nl = bytes.find('\n');
      bytes.erase(0, nl == std::string::npos ? bytes.size() : nl + 1);
      tail.truncated = true;
    }
    tail.text = newest_lines(std::move(bytes), max_lines, tail.truncated);
    return tail;
  } catch (const std::exception&) {
    return std::nullopt;  // out of memory, a stream that threw: no tail this time
  }
}

}  // namespace tv::fleet
