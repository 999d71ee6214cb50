// The verdict table each benchmark prints after its runs: every measured value against its
// target, once for a person and once as a machine-readable line, so that scripts/bench.sh builds
// its table from the same numbers the benchmark judged.
//
//   human:  "  <name>  <value><unit>  [<target>] ok|MISSED|info"
//   script: "RESULT\t<name>\t<value>\t<unit>\t<target>\t<verdict>"   (tab-separated; name and
//           target may contain spaces, never tabs; value is "nan" when it was not measured)
//
// A target whose inputs were not measured (a benchmark skipped with an error) is a miss: a
// measurement that did not happen cannot meet its target. When the run was narrowed with
// --benchmark_filter, unmeasured targets are left out instead. The benchmark's main returns
// finish(), which prints the RESULT lines after the table: 0 when every target was met, 1
// otherwise.
#pragma once

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>

namespace tv::bench {

// The value of a result that was not measured.
inline constexpr double kNotMeasured = std::numeric_limits<double>::quiet_NaN();

class Verdicts {
 public:
  explicit Verdicts(const char* title) {
    const std::string f = benchmark::GetBenchmarkFilter();
    filtered_ = !(f.empty() || f == "." || f == ".*" || f == "all");
    std::printf("\n%s (target in brackets)\n", title);
  }

  // `decimals`: digits after the point when the value is printed.
  void at_most(const std::string& name, double value, const char* unit, double limit,
               int decimals = 2) {
    judge(name, value, unit, "<= " + number(limit, decimals) + unit, value <= limit, decimals);
  }
  void at_least(const std::string& name, double value, const char* unit, double limit,
                int decimals = 2) {
    judge(name, value, unit, ">= " + number(limit, decimals) + unit, value >= limit, decimals);
  }
  // Strictly greater: "faster" when the value is a ratio of times.
  void more_than(const std::string& name, double value, const char* unit, double limit,
                 int decimals = 2) {
    judge(name, value, unit, "> " + number(limit, decimals) + unit, value > limit, decimals);
  }
  void equal(const std::string& name, double value, const char* unit, double expected,
             int decimals = 0) {
    judge(name, value, unit, "= " + number(expected, decimals) + unit, value == expected, decimals);
  }
  // A value reported for context, with no target.
  void info(const std::string& name, double value, const char* unit, int decimals = 2) {
    if (std::isnan(value)) return;
    line(name, value, unit, "info", "info", decimals);
  }

  int finish() {
    std::printf("\n%s", script_.c_str());
    std::fflush(stdout);
    return missed_ == 0 ? 0 : 1;
  }

 private:
  static std::string number(double v, int decimals) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
    return buf;
  }

  void judge(const std::string& name, double value, const char* unit, const std::string& target,
             bool met, int decimals) {
    if (std::isnan(value)) {  // comparisons with NaN are false, so `met` is false too
      if (filtered_) return;
      met = false;
    }
    if (!met) ++missed_;
    line(name, value, unit, target, met ? "ok" : "MISSED", decimals);
  }

  void line(const std::string& name, double value, const char* unit, const std::string& target,
            const char* verdict, int decimals) {
    const std::string v = std::isnan(value) ? "not measured" : number(value, decimals) + unit;
    std::printf("  %-60s %12s  [%s] %s\n", name.c_str(), v.c_str(), target.c_str(), verdict);
    script_ += "RESULT\t" + name + "\t" + (std::isnan(value) ? "nan" : number(value, decimals)) +
               "\t" + unit + "\t" + target + "\t" + verdict + "\n";
  }

  std::string script_;  // the RESULT lines, printed by finish()
  bool filtered_ = false;
  int missed_ = 0;
};

}  // namespace tv::bench
