#include "svg_document.hpp"

#include <array>
#include <charconv>

namespace tv::fleet::replay {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The length of the valid UTF-8 sequence starting at text[i], 0 if there is none.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b = byte(i);
  const std::size_t n = b < 0x80           ? 1
                        : (b >> 5) == 0x6  ? 2
                        : (b >> 4) == 0xE  ? 3
                        : (b >> 3) == 0x1E ? 4
                                           : 0;
  if (n == 0 || b == 0xC0 || b == 0xC1 || b > 0xF4 || i + n > text.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  if (b == 0xED && byte(i + 1) >= 0xA0) return 0;  // a UTF-16 surrogate
  if ((b == 0xE0 && byte(i + 1) < 0xA0) || (b == 0xF0 && byte(i + 1) < 0x90)) return 0;  // overlong
  return n;
}

}  // namespace

std::string xml_escape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = utf8_length(text, i);
    const char c = text[i];
    if (n == 0 ||
        (n == 1 && static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r')) {
      out += kReplacement;
      i += n == 0 ? 1 : n;
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out.append(text.substr(i, n));
    }
    i += n;
  }
  return out;
}

std::string svg_number(double v) {
  std::array<char, 64> buf;
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, 2);
  std::string out(buf.data(), end);
  return out == "-0.00" ? "0.00" : out;
}

SvgDocument::SvgDocument(double width, double height) : width_(width), height_(height) {}

void SvgDocument::open_tag(const std::string& name, const SvgAttributes& attributes) {
  body_ += "<" + name;
  for (const auto& [key, value] : attributes)
    body_ += " " + key + "=\"" + xml_escape(value) + "\"";
}

void SvgDocument::element(const std::string& name, const SvgAttributes& attributes,
                          std::string_view tooltip) {
  open_tag(name, attributes);
  if (tooltip.empty()) {
    body_ += "/>\n";
  } else {
    body_ += "><title>" + xml_escape(tooltip) + "</title></" + name + ">\n";
  }
}

void SvgDocument::text(const SvgAttributes& attributes, std::string_view content) {
  open_tag("text", attributes);
  body_ += ">" + xml_escape(content) + "</text>\n";
}

std::string SvgDocument::str() const {
  const std::string w = svg_number(width_), h = svg_number(height_);
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" +
         w + "\" height=\"" + h + "\" viewBox=\"0 0 " + w + " " + h +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n"
         "<rect x=\"0\" y=\"0\" width=\"" +
         w + "\" height=\"" + h + "\" fill=\"white\"/>\n" + body_ + "</svg>\n";
}

}  // namespace tv::fleet::replay
