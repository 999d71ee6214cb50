// A number in a fixed-width table cell: four significant digits, in scientific notation beyond
// the range where that stays short, so that a diverged loss (1.2e+38) or a tiny learning rate
// does not shift the columns after it. Used by every table the CLI prints (jobs list and show,
// the telemetry curve, `up`'s board). Pure functions; any thread.
#pragma once

#include <string>

namespace tv::cli {

// The widest text table_number returns ("-1.235e+38").
inline constexpr int kTableNumberWidth = 10;

// `v` with four significant digits: fixed notation for 1e-3 <= |v| < 1e6 ("0.001234", "1.235",
// "123457"), else scientific ("1.235e+38", "1.000e-05", "-1.50e-310"); "0" for zero, "-" for NaN
// (no value), "inf"/"-inf". Never wider than kTableNumberWidth.
std::string table_number(double v);

}  // namespace tv::cli
