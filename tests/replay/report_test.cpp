// The replay report over small reports built by hand, whose composite accuracy, totals and files
// are worked out here from the inputs.
#include "trainvisor/fleet/replay/report.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace tv::fleet::replay {
namespace {

using nlohmann::json;
using test::files_in;
using test::TempDir;

constexpr std::int64_t kSecond = 1'000'000'000;
constexpr std::int64_t kTime0 = std::int64_t{1'700'000'000} * kSecond;
const std::string kAwkwardReason = "drift, p=0.01 \"severe\"\nsecond line, <&>";

std::string digest_of(char c) {
  return std::string(64, c);
}

Scores score(double accuracy) {
  return {accuracy, accuracy - 0.05, 1.5 - accuracy};
}

TriggerRow trigger(const std::string& run, std::int64_t index, std::int64_t sample,
                   std::string reason, std::string model, bool deployed,
                   std::optional<Scores> next) {
  TriggerRow t;
  t.run = run;
  t.pipeline = "fmnist";
  t.index = index;
  t.sample = sample;
  t.time_ns = kTime0 + sample * kSecond;
  t.reason = std::move(reason);
  t.stats = {{"p_value", 0.01}, {"window", {1, 2, 3}}};
  t.train_samples = sample;
  t.model = std::move(model);
  t.next_window = next;
  t.deployed = deployed;
  return t;
}

// Five windows of 1000 samples whose time spans are 1000, 1000, 500, 1500 and 1000 seconds.
// Model a (deployed at 1000) covers windows 1-2, b is refused, c (deployed at 3000) covers 3-4;
// window 0 comes before any deployment. The fourth training failed.
RunReport baseline(const std::string& run = "baseline") {
  RunReport r;
  r.run = run;
  r.env = {42,
           digest_of('1'),
           digest_of('2'),
           "fashion-mnist t10k, rotate(degrees=15, every=2000)",
           {{"boost", "1.74"}, {"torch", "2.1.0"}},
           "openblas 0.3.21",
           2};
  const std::int64_t seconds[] = {0, 1000, 2000, 2500, 4000, 5000};
  for (std::int64_t w = 0; w < 5; ++w) {
    r.windows.push_back({w * 1000, (w + 1) * 1000, kTime0 + seconds[w] * kSecond,
                         kTime0 + seconds[w + 1] * kSecond});
  }
  r.triggers = {trigger(run, 0, 1000, "initial", digest_of('a'), true, score(0.6)),
                trigger(run, 1, 2500, kAwkwardReason, digest_of('b'), false, score(0.7)),
                trigger(run, 2, 3000, "count", digest_of('c'), true, score(0.8)),
                trigger(run, 3, 4200, "time", "", false, std::nullopt)};
  r.models = {{digest_of('a'), 0, 1000, 1000},
              {digest_of('b'), 1, 2500, std::nullopt},
              {digest_of('c'), 2, 3000, 3000}};
  const std::optional<Scores> none;
  r.matrix = {{none, score(0.6), score(0.5), score(0.4), score(0.3)},
              {none, none, none, score(0.7), score(0.65)},
              {none, none, none, score(0.8), score(0.9)}};
  r.change_points = {{2000, kTime0 + 2000 * kSecond, "rotation 15 degrees"},
                     {4000, kTime0 + 4000 * kSecond, "rotation 30 degrees, \"<&>\""}};
  r.costs = {{10, 2, 1, 11, 2.5, 1.25},
             {20, 3, 0.5, 21, 3.5, 0.75},
             {30, 4, 0.5, 31, 4.5, 0.5},
             {5, 0, 0, 6, 0, 0}};
  return r;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1))
    ++n;
  return n;
}

// RFC 4180 as a reader sees it: quoted fields may hold commas, doubled quotes and line breaks;
// every record ends with CRLF.
std::vector<std::vector<std::string>> read_csv(const std::string& text) {
  std::vector<std::vector<std::string>> records;
  std::vector<std::string> record;
  std::string field;
  bool quoted = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted && c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
      field += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == ',') {
      record.push_back(std::move(field));
      field.clear();
    } else if (!quoted && c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') {
      record.push_back(std::move(field));
      field.clear();
      records.push_back(std::move(record));
      record.clear();
      ++i;
    } else {
      field += c;
    }
  }
  EXPECT_FALSE(quoted) << "a quoted field is not closed";
  EXPECT_TRUE(field.empty() && record.empty()) << "the last record does not end with CRLF";
  return records;
}

// Well-formed XML, as far as this report's SVG needs: one root, balanced tags, quoted attributes,
// no bare '<' or '&' in text. Returns what is wrong, or "".
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  int roots = 0;
  const auto entity_ok = [&](std::size_t at) {
    for (const char* e : {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"}) {
      if (xml.compare(at, std::string(e).size(), e) == 0) return true;
    }
    return false;
  };
  std::size_t i = 0;
  if (xml.rfind("<?xml", 0) == 0) i = xml.find("?>") + 2;
  while (i < xml.size()) {
    if (xml[i] == '&' && !entity_ok(i)) return "bare '&' at " + std::to_string(i);
    if (xml[i] == '>') return "bare '>' at " + std::to_string(i);
    if (xml[i] != '<') {
      if (open.empty() && !std::isspace(static_cast<unsigned char>(xml[i]))) return "text outside";
      ++i;
      continue;
    }
    const bool closing = xml[i + 1] == '/';
    std::size_t j = i + (closing ? 2 : 1);
    const std::size_t name_end = xml.find_first_of(" />\n", j);
    const std::string name = xml.substr(j, name_end - j);
    if (name.empty()) return "a tag without a name at " + std::to_string(i);
    j = name_end;
    while (j < xml.size() && xml[j] != '>' && xml[j] != '/') {
      if (xml[j] == '"') {
        const std::size_t end = xml.find('"', j + 1);
        if (end == std::string::npos) return "an attribute not closed";
        for (std::size_t k = j + 1; k < end; ++k) {
          if (xml[k] == '<' || (xml[k] == '&' && !entity_ok(k))) return "bad attribute " + name;
        }
        j = end;
      }
      ++j;
    }
    const bool empty = xml[j] == '/';
    if (closing) {
      if (open.empty() || open.back() != name) return "</" + name + "> closes nothing open";
      open.pop_back();
    } else if (!empty) {
      if (open.empty()) ++roots;
      open.push_back(name);
    } else if (open.empty()) {
      ++roots;
    }
    i = xml.find('>', j) + 1;
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  return roots == 1 ? "" : std::to_string(roots) + " root elements";
}

void expect_refusal(const std::function<void()>& call, const std::string& message_part) {
  try {
    call();
    ADD_FAILURE() << "no ReportError; expected one saying: " << message_part;
  } catch (const ReportError& e) {
    EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
  }
}

TEST(ReplayReport, CompositeTakesTheModelDeployedAtEachWindowsStart) {
  const RunReport r = baseline();
  const Composite c = composite(r);
  // Window 0 precedes the first deployment (sample 1000); a is deployed at 1000, c at 3000, and b
  // never, though its scores on windows 3 and 4 would have been taken had it been.
  const std::vector<std::optional<std::int64_t>> deployed{std::nullopt, 0, 0, 2, 2};
  ASSERT_EQ(c.model, deployed);
  double weighted = 0, weight = 0;
  for (std::size_t w = 0; w < r.windows.size(); ++w) {
    if (!deployed[w]) {
      EXPECT_FALSE(c.accuracy[w]);
      continue;
    }
    const double expected = r.matrix[static_cast<std::size_t>(*deployed[w])][w]->accuracy;
    ASSERT_TRUE(c.accuracy[w]);
    EXPECT_EQ(*c.accuracy[w], expected);
    const auto span = static_cast<double>(r.windows[w].time_end_ns - r.windows[w].time_begin_ns);
    weighted += span * expected;
    weight += span;
  }
  ASSERT_TRUE(c.mean);
  EXPECT_DOUBLE_EQ(*c.mean, weighted / weight);
  EXPECT_DOUBLE_EQ(*c.mean, (0.6 * 1000 + 0.5 * 500 + 0.8 * 1500 + 0.9 * 1000) / 4000);
}

TEST(ReplayReport, CompositeBreaksTiesByLaterModelAndWeighsEmptySpans) {
  RunReport r = baseline();
  r.models[1].deployed_from = 3000;  // b and c both from 3000: c, the later, wins
  EXPECT_EQ(composite(r).model[3], 2);
  r.models[2].deployed_from = std::nullopt;
  EXPECT_EQ(composite(r).model[3], 1);
  EXPECT_EQ(*composite(r).accuracy[4], 0.65);

  r = baseline();
  r.windows[3].time_end_ns = r.windows[3].time_begin_ns;  // an empty span weighs nothing
  r.windows[4].time_begin_ns = r.windows[3].time_end_ns;
  EXPECT_DOUBLE_EQ(*composite(r).mean, (0.6 * 1000 + 0.5 * 500 + 0.9 * 2500) / 4000);
  for (Window& w : r.windows)
    w.time_end_ns = w.time_begin_ns = kTime0;  // all empty: equal weights
  EXPECT_DOUBLE_EQ(*composite(r).mean, (0.6 + 0.5 + 0.8 + 0.9) / 4);

  r = baseline();
  for (ModelRow& m : r.models)
    m.deployed_from = std::nullopt;
  const Composite never = composite(r);
  EXPECT_FALSE(never.mean);
  EXPECT_EQ(never.accuracy, std::vector<std::optional<double>>(5));
}

TEST(ReplayReport, TotalsCountTriggersDeploymentsAndCpu) {
  const RunReport r = baseline();
  const Totals t = totals(r);
  EXPECT_EQ(t.triggers, 4);
  EXPECT_EQ(t.deployed, 2);
  EXPECT_DOUBLE_EQ(t.cpu_s, 13 + 23.5 + 34.5 + 5);
  ASSERT_TRUE(t.mean_accuracy && t.accuracy_per_cpu_hour);
  EXPECT_DOUBLE_EQ(*t.mean_accuracy, 2950.0 / 4000);
  EXPECT_DOUBLE_EQ(*t.accuracy_per_cpu_hour, (2950.0 / 4000) / (76.0 / 3600));

  RunReport free = baseline();
  for (TriggerCosts& c : free.costs)
    c = {};
  EXPECT_EQ(totals(free).cpu_s, 0);
  EXPECT_FALSE(totals(free).accuracy_per_cpu_hour);
}

TEST(ReplayReport, TriggersCsvQuotesReasonsAndLeavesCostsOut) {
  TempDir dir;
  const RunReport r = baseline();
  write_triggers_csv(dir.path() / "triggers.csv", r);
  const auto rows = read_csv(read_text(dir.path() / "triggers.csv"));
  ASSERT_EQ(rows.size(), 1 + r.triggers.size());
  const std::vector<std::string> header{"run",      "pipeline", "index",         "sample",
                                        "time_ns",  "reason",   "stats",         "train_samples",
                                        "model",    "deployed", "next_accuracy", "next_macro_f1",
                                        "next_loss"};
  EXPECT_EQ(rows[0], header);
  for (std::size_t i = 0; i < r.triggers.size(); ++i) {
    const TriggerRow& t = r.triggers[i];
    const auto& row = rows[i + 1];
    ASSERT_EQ(row.size(), header.size());
    EXPECT_EQ(row[0], t.run);
    EXPECT_EQ(std::stoll(row[3]), t.sample);
    EXPECT_EQ(std::stoll(row[4]), t.time_ns);
    EXPECT_EQ(row[5], t.reason);
    EXPECT_EQ(json::parse(row[6]), t.stats);
    EXPECT_EQ(row[8], t.model);
    EXPECT_EQ(row[9], t.deployed ? "true" : "false");
    if (t.next_window) {
      EXPECT_EQ(std::stod(row[10]), t.next_window->accuracy);
      EXPECT_EQ(std::stod(row[12]), t.next_window->loss);
    } else {
      EXPECT_EQ(row[10] + row[11] + row[12], "");
    }
  }
  EXPECT_EQ(rows[2][5], kAwkwardReason);
  EXPECT_EQ(rows[1][10], "0.6");  // shortest round-trip, not %f
}

// Every key of a JSON document, at any depth.
void collect_keys(const json& j, std::vector<std::string>& keys) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      keys.push_back(key);
      collect_keys(value, keys);
    }
  } else if (j.is_array()) {
    for (const json& v : j)
      collect_keys(v, keys);
  }
}

TEST(ReplayReport, ReportJsonHoldsTheReproduciblePartOnly) {
  TempDir dir;
  const RunReport r = baseline();
  write_report_json(dir.path() / "report.json", r);
  const json j = json::parse(read_text(dir.path() / "report.json"));
  EXPECT_EQ(j["run"], "baseline");
  EXPECT_EQ(j["environment"]["seed"], 42u);
  EXPECT_EQ(j["environment"]["versions"]["torch"], "2.1.0");
  EXPECT_EQ(j["windows"].size(), 5u);
  EXPECT_EQ(j["windows"][2]["time_end_ns"], r.windows[2].time_end_ns);
  EXPECT_EQ(j["triggers"][1]["reason"], kAwkwardReason);
  EXPECT_EQ(j["triggers"][3]["next_window"], nullptr);
  EXPECT_EQ(j["triggers"][2]["next_window"]["macro_f1"], r.triggers[2].next_window->macro_f1);
  EXPECT_EQ(j["models"][1]["deployed_from"], nullptr);
  EXPECT_EQ(j["models"][2]["deployed_from"], 3000);
  EXPECT_EQ(j["matrix"][1][2], nullptr);
  EXPECT_EQ(j["matrix"][2][4]["accuracy"].get<double>(), 0.9);
  EXPECT_EQ(j["composite"]["accuracy"][0], nullptr);
  EXPECT_EQ(j["composite"]["accuracy"][3].get<double>(), 0.8);
  EXPECT_EQ(j["composite"]["mean"].get<double>(), *composite(r).mean);
  EXPECT_EQ(j["change_points"][1]["text"], r.change_points[1].text);
  EXPECT_EQ(j["totals"]["triggers"], 4);
  EXPECT_EQ(j["totals"]["deployed"], 2);
  std::vector<std::string> keys;
  collect_keys(j, keys);
  for (const std::string& key : keys) {
    EXPECT_EQ(key.find("cpu"), std::string::npos) << key;
    EXPECT_EQ(key.find("wall"), std::string::npos) << key;
  }
}

TEST(ReplayReport, ReportJsonIsByteIdenticalForEqualReportsOnly) {
  TempDir dir;
  write_report_json(dir.path() / "one.json", baseline());
  RunReport other = baseline();
  for (TriggerCosts& c : other.costs)
    c.train_cpu_s *= 2;  // costs do not touch report.json
  write_report_json(dir.path() / "two.json", other);
  EXPECT_EQ(read_text(dir.path() / "one.json"), read_text(dir.path() / "two.json"));
  other.matrix[2][4]->accuracy = 0.91;
  write_report_json(dir.path() / "three.json", other);
  EXPECT_NE(read_text(dir.path() / "one.json"), read_text(dir.path() / "three.json"));
  write_triggers_csv(dir.path() / "one.csv", baseline());
  write_triggers_csv(dir.path() / "two.csv", other);
  EXPECT_EQ(read_text(dir.path() / "one.csv"), read_text(dir.path() / "two.csv"));
}

TEST(ReplayReport, ADivergedLossIsNullInJsonAndNamedInCsv) {
  TempDir dir;
  RunReport r = baseline();
  r.matrix[2][4]->loss = std::numeric_limits<double>::quiet_NaN();
  r.triggers[2].next_window->loss = std::numeric_limits<double>::infinity();
  write_report_json(dir.path() / "report.json", r);
  write_triggers_csv(dir.path() / "triggers.csv", r);
  const json j = json::parse(read_text(dir.path() / "report.json"));
  EXPECT_EQ(j["matrix"][2][4]["loss"], nullptr);
  EXPECT_EQ(j["matrix"][2][4]["accuracy"].get<double>(), 0.9);
  EXPECT_EQ(j["triggers"][2]["next_window"]["loss"], nullptr);
  EXPECT_EQ(read_csv(read_text(dir.path() / "triggers.csv"))[3][12], "inf");
}

TEST(ReplayReport, CostsGoToTheirOwnFiles) {
  TempDir dir;
  const RunReport r = baseline();
  write_costs_json(dir.path() / "costs.json", r);
  write_costs_csv(dir.path() / "costs.csv", r);
  const json j = json::parse(read_text(dir.path() / "costs.json"));
  ASSERT_EQ(j["triggers"].size(), 4u);
  EXPECT_EQ(j["triggers"][1]["drift_cpu_s"].get<double>(), 0.5);
  EXPECT_EQ(j["triggers"][0]["eval_wall_s"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(j["totals"]["cpu_s"].get<double>(), 76);
  EXPECT_DOUBLE_EQ(j["totals"]["train_wall_s"].get<double>(), 11 + 21 + 31 + 6);
  EXPECT_DOUBLE_EQ(j["totals"]["accuracy_per_cpu_hour"].get<double>(),
                   *totals(r).accuracy_per_cpu_hour);
  const auto rows = read_csv(read_text(dir.path() / "costs.csv"));
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[0][4], "train_cpu_s");
  EXPECT_EQ(rows[3][2], "2");
  EXPECT_EQ(std::stod(rows[3][4]), 30);

  RunReport free = r;
  for (TriggerCosts& c : free.costs)
    c = {};
  write_costs_json(dir.path() / "free.json", free);
  EXPECT_EQ(json::parse(read_text(dir.path() / "free.json"))["totals"]["accuracy_per_cpu_hour"],
            nullptr);
}

RunReport eager() {
  RunReport r = baseline("eager");
  r.triggers.push_back(trigger("eager", 4, 4500, "eager", digest_of('d'), true, score(0.95)));
  r.models.push_back({digest_of('d'), 4, 4500, 4500});
  r.matrix.push_back({std::nullopt, std::nullopt, std::nullopt, std::nullopt, std::nullopt});
  r.costs.push_back({40, 1, 1, 40, 1, 1});
  r.matrix[2][4] = score(0.85);
  return r;
}

void expect_well_formed(const std::filesystem::path& svg) {
  const std::string text = read_text(svg);
  EXPECT_EQ(xml_problem(text), "");
  EXPECT_EQ(text.find("<script"), std::string::npos);
  EXPECT_EQ(text.find("@import"), std::string::npos);
  if (std::system("command -v xmllint >/dev/null 2>&1") == 0) {
    EXPECT_EQ(std::system(("xmllint --noout '" + svg.string() + "'").c_str()), 0);
  }
}

TEST(ReplayReport, TheXmlCheckFindsBrokenDocuments) {
  EXPECT_EQ(xml_problem("<svg><a x=\"1\"/><b>t &amp; u</b></svg>\n"), "");
  EXPECT_NE(xml_problem("<svg><a></svg>"), "");
  EXPECT_NE(xml_problem("<svg>a & b</svg>"), "");
  EXPECT_NE(xml_problem("<svg><a x=\"<\"/></svg>"), "");
  EXPECT_NE(xml_problem("<svg/><svg/>"), "");
}

TEST(ReplayReport, SvgDrawsRunsTriggersAndChangePoints) {
  TempDir dir;
  // Markup, a control character and a byte that is not UTF-8, in a legend and tooltips.
  const RunReport r = baseline("base <line> & \"co\"\x01\xff");
  write_accuracy_svg(dir.path() / "one.svg", {r});
  expect_well_formed(dir.path() / "one.svg");
  const std::string one = read_text(dir.path() / "one.svg");
  EXPECT_EQ(count_of(one, "<polyline"), 1u);
  EXPECT_EQ(count_of(one, "class=\"trigger "), 4u);
  EXPECT_EQ(count_of(one, "class=\"trigger deployed\""), 2u);
  EXPECT_EQ(count_of(one, "stroke-dasharray"), 2u);
  EXPECT_NE(one.find("rotation 30 degrees, &quot;&lt;&amp;&gt;&quot;"), std::string::npos);
  EXPECT_NE(one.find(">base &lt;line&gt; &amp; &quot;co&quot;\uFFFD\uFFFD</text>"),
            std::string::npos);
  EXPECT_EQ(count_of(one, "class=\"run-point\""), 0u);  // one run: no cost panel

  write_accuracy_svg(dir.path() / "again.svg", {r});
  EXPECT_EQ(read_text(dir.path() / "again.svg"), one);
  std::filesystem::create_directory(dir.path() / "odd");
  write_run_report(dir.path() / "odd", r);
  EXPECT_EQ(json::parse(read_text(dir.path() / "odd" / "report.json"))["run"],
            "base <line> & \"co\"\x01\uFFFD");

  write_accuracy_svg(dir.path() / "two.svg", {baseline(), eager()});
  expect_well_formed(dir.path() / "two.svg");
  const std::string two = read_text(dir.path() / "two.svg");
  EXPECT_EQ(count_of(two, "<polyline"), 2u);
  EXPECT_EQ(count_of(two, "class=\"trigger "), 9u);
  EXPECT_EQ(count_of(two, "stroke-dasharray"), 2u);  // the first run's schedule only
  EXPECT_EQ(count_of(two, "class=\"run-point\""), 2u);
}

TEST(ReplayReport, ComparisonHasOneRowPerRun) {
  TempDir dir;
  write_comparison(dir.path(), {baseline(), eager()});
  EXPECT_EQ(files_in(dir.path()),
            (std::set<std::string>{"accuracy.svg", "comparison.csv", "comparison.json"}));
  const json j = json::parse(read_text(dir.path() / "comparison.json"));
  ASSERT_EQ(j["runs"].size(), 2u);
  EXPECT_EQ(j["runs"][1]["run"], "eager");
  EXPECT_EQ(j["runs"][1]["triggers"], 5);
  EXPECT_EQ(j["runs"][1]["deployed"], 3);
  EXPECT_DOUBLE_EQ(j["runs"][1]["cpu_s"].get<double>(), 76 + 42);
  // d is deployed at 4500, after window 4 starts (4000): c, now scoring 0.85 there, serves it.
  const double eager_mean = (0.6 * 1000 + 0.5 * 500 + 0.8 * 1500 + 0.85 * 1000) / 4000;
  EXPECT_DOUBLE_EQ(j["runs"][1]["mean_accuracy"].get<double>(), eager_mean);
  const auto rows = read_csv(read_text(dir.path() / "comparison.csv"));
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::vector<std::string>{"run", "triggers", "deployed", "mean_accuracy",
                                               "cpu_s", "accuracy_per_cpu_hour"}));
  EXPECT_EQ(rows[1][0], "baseline");
  EXPECT_EQ(rows[2][2], "3");
  EXPECT_DOUBLE_EQ(std::stod(rows[2][5]), eager_mean / (118.0 / 3600));
  expect_well_formed(dir.path() / "accuracy.svg");
}

TEST(ReplayReport, RunReportWritesItsFiveFiles) {
  TempDir dir;
  write_run_report(dir.path(), baseline());
  EXPECT_EQ(files_in(dir.path()), (std::set<std::string>{"accuracy.svg", "costs.csv", "costs.json",
                                                         "report.json", "triggers.csv"}));
}

TEST(ReplayReport, RefusesAMalformedReport) {
  TempDir dir;
  RunReport r = baseline();
  r.matrix.pop_back();
  expect_refusal([&] { validate(r); }, "run 'baseline': the matrix has 2 rows for 3 models");
  r = baseline();
  r.matrix[1].pop_back();
  expect_refusal([&] { validate(r); }, "matrix[1] has 4 scores for 5 windows");
  r = baseline();
  r.costs.pop_back();
  expect_refusal([&] { validate(r); }, "there are 3 costs for 4 triggers");
  r = baseline();
  r.models[1].trigger = 9;
  expect_refusal([&] { validate(r); }, "models[1] names trigger 9 of 4");
  r = baseline();
  r.models[1].trigger = 2;
  expect_refusal([&] { validate(r); }, "models[1] has digest '" + digest_of('b'));
  r = baseline();
  r.windows[2].begin = 1500;
  expect_refusal([&] { validate(r); }, "windows[2] begins at sample 1500, inside or before");
  r = baseline();
  r.matrix[2][3]->accuracy = 1.5;
  expect_refusal([&] { validate(r); }, "matrix[2][3] has an accuracy or macro F1 outside 0..1");
  r = baseline();
  r.triggers[3].run = "other";
  expect_refusal([&] { validate(r); }, "triggers[3] belongs to run 'other'");
  r = baseline();
  r.costs[1].eval_cpu_s = -1;
  expect_refusal([&] { validate(r); }, "costs[1] holds a time that is negative or not finite");

  r = baseline();
  r.costs.pop_back();
  expect_refusal([&] { write_report_json(dir.path() / "report.json", r); }, "3 costs for 4");
  expect_refusal([&] { write_accuracy_svg(dir.path() / "a.svg", {baseline(), r}); }, "3 costs");
  EXPECT_TRUE(files_in(dir.path()).empty());
}

TEST(ReplayReport, RefusesAPathItCannotWrite) {
  TempDir dir;
  const auto missing = dir.path() / "no-such-dir" / "report.json";
  expect_refusal([&] { write_report_json(missing, baseline()); },
                 "replay report " + missing.string() + ": cannot create a temp file in " +
                     missing.parent_path().string() + ": No such file or directory");
  std::ofstream(dir.path() / "plain-file") << "x";
  expect_refusal([&] { write_triggers_csv(dir.path() / "plain-file" / "t.csv", baseline()); },
                 "Not a directory");
  std::filesystem::create_directory(dir.path() / "taken");
  expect_refusal([&] { write_costs_json(dir.path() / "taken", baseline()); },
                 "replay report " + (dir.path() / "taken").string() + ": cannot rename");
  expect_refusal([&] { write_comparison(dir.path() / "nowhere", {baseline()}); },
                 (dir.path() / "nowhere" / "comparison.json").string());
  // Nothing half-written is left beside the targets.
  EXPECT_EQ(files_in(dir.path()), (std::set<std::string>{"plain-file", "taken"}));
}

TEST(ReplayReport, RefusesComparisonsWithoutRunsOrWithTwoOfOneName) {
  TempDir dir;
  expect_refusal([&] { write_comparison(dir.path(), {}); }, "no runs to compare");
  expect_refusal(
      [&] {
        write_comparison(dir.path(), {baseline(), baseline()});
      },
      "two runs are named 'baseline'");
  expect_refusal([&] { write_accuracy_svg(dir.path() / "a.svg", {}); }, "no runs to plot");
  EXPECT_TRUE(files_in(dir.path()).empty());
}

}  // namespace
}  // namespace tv::fleet::replay
