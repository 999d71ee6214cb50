#include "table_number.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace tv::cli {

std::string table_number(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  if (v == 0) return "0";
  char b[32];
  const double magnitude = std::fabs(v);
  if (magnitude < 1e-3 || magnitude >= 1e6) {
    // A three-digit exponent (beyond 1e+99) costs a significant digit, to keep the width.
    if (std::snprintf(b, sizeof b, "%.3e", v) > kTableNumberWidth)
      std::snprintf(b, sizeof b, "%.2e", v);
    return b;
  }
  // Decimals for four significant digits; rounding can carry into a fifth (9999.5 -> "10000"),
  // still within the width.
  const int decimals = std::max(0, 3 - static_cast<int>(std::floor(std::log10(magnitude))));
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

}  // namespace tv::cli
