// How the replay sources write numbers and class lists in schedules, descriptions and change
// points, so that the three agree.
#pragma once

#include <charconv>
#include <cstdint>
#include <string>
#include <vector>

namespace tv::fleet::pipelines {

// The shortest text that reads back as `x`: 15, 0.8, 22.5.
inline std::string number_text(double x) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, x);
  return std::string(buf, end);
}

// 0-1-7, the schedules' form of a class list; also used for sample shapes, with "," between.
inline std::string list_text(const std::vector<std::int64_t>& values, const char* between = "-") {
  std::string out;
  for (const std::int64_t v : values)
    out += (out.empty() ? "" : between) + std::to_string(v);
  return out;
}

}  // namespace tv::fleet::pipelines
