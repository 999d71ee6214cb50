#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>

#include "atomic_file.hpp"
#include "svg_document.hpp"
#include "trainvisor/fleet/replay/report.hpp"

namespace tv::fleet::replay {
namespace {

// Tableau 10: distinct for the colour-blind and in grey print.
constexpr std::array<const char*, 10> kColours{"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                               "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                                               "#9c755f", "#bab0ac"};
constexpr double kWidth = 960;
constexpr double kLeft = 70;
constexpr double kRight = 760;  // the legend lies beyond
constexpr double kTop = 50;
constexpr double kPanelHeight = 300;
constexpr double kScatterTop = kTop + kPanelHeight + 100;
constexpr double kScatterHeight = 240;
constexpr double kBottom = 60;
constexpr int kTicks = 6;
constexpr int kAccuracySteps = 5;  // gridlines at 0, 0.2, ..., 1
constexpr double kMarkRadius = 4;

// Maps data [lo, hi] onto pixels [from, to]; hi > lo.
struct Scale {
  double lo = 0, hi = 1, from = 0, to = 1;
  double operator()(double v) const { return from + (v - lo) / (hi - lo) * (to - from); }
};

struct Panel {
  Scale x, y;
};

// 1, 2 or 5 times a power of ten, about kTicks steps over [lo, hi].
double tick_step(double lo, double hi) {
  const double raw = (hi - lo) / kTicks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double f : {1.0, 2.0, 5.0}) {
    if (f * power >= raw) return f * power;
  }
  return 10 * power;
}

std::string tick_label(double v) {
  if (std::abs(v) < 1e15 && v == std::floor(v)) return std::to_string(static_cast<std::int64_t>(v));
  std::array<char, 64> buf;
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::general, 6);
  return std::string(buf.data(), end);
}

std::string fixed_text(double v, int decimals) {
  std::array<char, 64> buf;
  const auto [end, ec] =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, decimals);
  return std::string(buf.data(), end);
}

std::string colour_of(std::size_t run) {
  return kColours[run % kColours.size()];
}

// Axes, gridlines, tick labels and titles of a panel whose y is an accuracy, 0..1.
void draw_frame(SvgDocument& doc, const Panel& p, const std::string& title,
                const std::string& x_label, const std::string& y_label) {
  const double top = p.y.to, bottom = p.y.from;
  for (int k = 0; k <= kAccuracySteps; ++k) {
    const double v = static_cast<double>(k) / kAccuracySteps;
    const std::string y = svg_number(p.y(v));
    doc.element("line", {{"x1", svg_number(kLeft)},
                         {"x2", svg_number(kRight)},
                         {"y1", y},
                         {"y2", y},
                         {"stroke", "#dddddd"}});
    doc.text({{"x", svg_number(kLeft - 8)}, {"y", svg_number(p.y(v) + 4)}, {"text-anchor", "end"}},
             fixed_text(v, 1));
  }
  const double step = tick_step(p.x.lo, p.x.hi);
  for (auto k = static_cast<std::int64_t>(std::ceil(p.x.lo / step));
       static_cast<double>(k) * step <= p.x.hi + step * 1e-9; ++k) {
    const double v = static_cast<double>(k) * step;
    const std::string x = svg_number(p.x(v));
    doc.element("line", {{"x1", x},
                         {"x2", x},
                         {"y1", svg_number(top)},
                         {"y2", svg_number(bottom)},
                         {"stroke", "#eeeeee"}});
    doc.text({{"x", x}, {"y", svg_number(bottom + 18)}, {"text-anchor", "middle"}}, tick_label(v));
  }
  doc.element("rect", {{"x", svg_number(kLeft)},
                       {"y", svg_number(top)},
                       {"width", svg_number(kRight - kLeft)},
                       {"height", svg_number(bottom - top)},
                       {"fill", "none"},
                       {"stroke", "#333333"}});
  doc.text({{"x", svg_number(kLeft)}, {"y", svg_number(top - 14)}, {"font-size", "14"}}, title);
  doc.text({{"x", svg_number((kLeft + kRight) / 2)},
            {"y", svg_number(bottom + 40)},
            {"text-anchor", "middle"}},
           x_label);
  const std::string y_mid = svg_number((top + bottom) / 2);
  doc.text({{"x", "20"},
            {"y", y_mid},
            {"text-anchor", "middle"},
            {"transform", "rotate(-90 20 " + y_mid + ")"}},
           y_label);
}

// The samples every run's windows and triggers cover.
Scale sample_scale(const std::vector<RunReport>& runs) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const RunReport& r : runs) {
    if (!r.windows.empty()) {
      lo = std::min(lo, static_cast<double>(r.windows.front().begin));
      hi = std::max(hi, static_cast<double>(r.windows.back().end));
    }
    for (const TriggerRow& t : r.triggers) {
      lo = std::min(lo, static_cast<double>(t.sample));
      hi = std::max(hi, static_cast<double>(t.sample));
    }
  }
  if (lo > hi) lo = 0, hi = 1;
  if (lo == hi) hi = lo + 1;
  return {lo, hi, kLeft, kRight};
}

std::string trigger_tooltip(const TriggerRow& t) {
  std::string s = t.run + ": " + t.pipeline + " #" + std::to_string(t.index) + " at sample " +
                  std::to_string(t.sample) + ", " + t.reason + "; ";
  s += t.deployed ? "deployed" : t.model.empty() ? "training failed" : "not deployed";
  if (t.next_window) s += "; next-window accuracy " + fixed_text(t.next_window->accuracy, 4);
  return s;
}

void draw_run(SvgDocument& doc, const Panel& p, const RunReport& r, const Composite& c,
              const std::string& colour) {
  std::string points;
  for (std::size_t w = 0; w < r.windows.size(); ++w) {
    if (!c.accuracy[w]) continue;
    const double middle = (static_cast<double>(r.windows[w].begin) + r.windows[w].end) / 2;
    points += (points.empty() ? "" : " ") + svg_number(p.x(middle)) + "," +
              svg_number(p.y(*c.accuracy[w]));
  }
  doc.element("polyline",
              {{"class", "composite"},
               {"points", points},
               {"fill", "none"},
               {"stroke", colour},
               {"stroke-width", "1.5"}},
              r.run + ": accuracy of the deployed model");
  for (const TriggerRow& t : r.triggers) {
    const double y = t.next_window ? t.next_window->accuracy : 0;
    doc.element("circle",
                {{"class", t.deployed ? "trigger deployed" : "trigger refused"},
                 {"cx", svg_number(p.x(static_cast<double>(t.sample)))},
                 {"cy", svg_number(p.y(y))},
                 {"r", svg_number(kMarkRadius)},
                 {"fill", t.deployed ? colour : "white"},
                 {"stroke", colour},
                 {"stroke-width", "1.5"}},
                trigger_tooltip(t));
  }
}

void draw_change_points(SvgDocument& doc, const Panel& p, const RunReport& first) {
  for (const pipelines::ChangePoint& c : first.change_points) {
    const auto sample = static_cast<double>(c.sample);
    if (sample < p.x.lo || sample > p.x.hi) continue;
    const std::string x = svg_number(p.x(sample));
    doc.element("line",
                {{"class", "change-point"},
                 {"x1", x},
                 {"x2", x},
                 {"y1", svg_number(p.y.to)},
                 {"y2", svg_number(p.y.from)},
                 {"stroke", "#555555"},
                 {"stroke-dasharray", "5 4"}},
                c.text + " (sample " + std::to_string(c.sample) + ")");
  }
}

void draw_legend(SvgDocument& doc, const std::vector<RunReport>& runs) {
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const double y = kTop + 10 + 20 * static_cast<double>(i);
    doc.element("line", {{"x1", svg_number(kRight + 20)},
                         {"x2", svg_number(kRight + 44)},
                         {"y1", svg_number(y)},
                         {"y2", svg_number(y)},
                         {"stroke", colour_of(i)},
                         {"stroke-width", "3"}});
    doc.text({{"x", svg_number(kRight + 52)}, {"y", svg_number(y + 4)}}, runs[i].run);
  }
}

// Total CPU seconds against mean composite accuracy, one labelled point per run.
void draw_cost_panel(SvgDocument& doc, const std::vector<RunReport>& runs) {
  std::vector<Totals> sums;
  double most = 0;
  for (const RunReport& r : runs) {
    sums.push_back(totals(r));
    most = std::max(most, sums.back().cpu_s);
  }
  double hi = 1;
  if (most > 0) hi = std::ceil(most / tick_step(0, most)) * tick_step(0, most);
  const Panel p{{0, hi, kLeft, kRight}, {0, 1, kScatterTop + kScatterHeight, kScatterTop}};
  draw_frame(doc, p, "Cost against accuracy", "total CPU seconds", "mean composite accuracy");
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (!sums[i].mean_accuracy) continue;
    const double x = p.x(sums[i].cpu_s), y = p.y(*sums[i].mean_accuracy);
    doc.element("circle",
                {{"class", "run-point"},
                 {"cx", svg_number(x)},
                 {"cy", svg_number(y)},
                 {"r", svg_number(kMarkRadius + 1)},
                 {"fill", colour_of(i)}},
                runs[i].run + ": " + fixed_text(sums[i].cpu_s, 1) + " CPU s, mean accuracy " +
                    fixed_text(*sums[i].mean_accuracy, 4));
    doc.text({{"x", svg_number(x + 8)}, {"y", svg_number(y - 6)}}, runs[i].run);
  }
}

}  // namespace

void write_accuracy_svg(const std::filesystem::path& path, const std::vector<RunReport>& runs) {
  if (runs.empty()) throw ReportError("replay report " + path.string() + ": no runs to plot");
  std::vector<Composite> composites;
  for (const RunReport& r : runs)
    composites.push_back(composite(r));
  const bool compare = runs.size() > 1;
  SvgDocument doc(kWidth,
                  compare ? kScatterTop + kScatterHeight + kBottom : kTop + kPanelHeight + kBottom);
  const Panel p{sample_scale(runs), {0, 1, kTop + kPanelHeight, kTop}};
  draw_frame(doc, p, "Accuracy of the deployed model over the stream", "sample index",
             "composite accuracy");
  draw_change_points(doc, p, runs.front());
  for (std::size_t i = 0; i < runs.size(); ++i) {
    draw_run(doc, p, runs[i], composites[i], colour_of(i));
  }
  draw_legend(doc, runs);
  if (compare) draw_cost_panel(doc, runs);
  write_atomically(path, doc.str());
}

}  // namespace tv::fleet::replay
