// Private to tv_replay_report: an SVG document written element by element. Every attribute value
// and text is escaped for XML and made valid UTF-8, so any run name or reason gives a
// well-formed file; numbers are written with two decimals, whatever the locale.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tv::fleet::replay {

using SvgAttributes = std::vector<std::pair<std::string, std::string>>;

// `text` as XML character data: markup characters escaped, bytes that are not valid UTF-8 and
// control characters XML 1.0 forbids replaced by U+FFFD.
std::string xml_escape(std::string_view text);

// A coordinate or length: fixed, two decimals.
std::string svg_number(double v);

class SvgDocument {
 public:
  SvgDocument(double width, double height);

  // <name attributes/>, or with a tooltip: <name attributes><title>tooltip</title></name>.
  void element(const std::string& name, const SvgAttributes& attributes,
               std::string_view tooltip = {});
  // <text attributes>content</text>
  void text(const SvgAttributes& attributes, std::string_view content);

  // The whole document, with its XML declaration; the document is left as it was.
  std::string str() const;

 private:
  void open_tag(const std::string& name, const SvgAttributes& attributes);
  std::string body_;
  double width_;
  double height_;
};

}  // namespace tv::fleet::replay
