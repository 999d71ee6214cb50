#include <charconv>
#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "atomic_file.hpp"
#include "trainvisor/fleet/replay/report.hpp"

namespace tv::fleet::replay {
namespace {

using nlohmann::json;

constexpr int kFormatVersion = 1;
constexpr int kJsonIndent = 2;

// Shortest text that reads back as the same double, independent of the locale.
std::string number_text(double v) {
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

std::string optional_text(const std::optional<double>& v) {
  return v ? number_text(*v) : std::string();
}

// RFC 4180: one record, CRLF-terminated.
std::string csv_row(const std::vector<std::string>& fields) {
  std::string line;
  for (std::size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) line += ',';
    const std::string& f = fields[i];
    if (f.find_first_of(",\"\r\n") == std::string::npos) {
      line += f;
      continue;
    }
    line += '"';
    for (const char c : f)
      line += c == '"' ? std::string("\"\"") : std::string(1, c);
    line += '"';
  }
  return line + "\r\n";
}

// A double JSON can hold: NaN and infinities become null.
json number_json(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

template <typename T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json scores_json(const std::optional<Scores>& s) {
  if (!s) return nullptr;
  return {{"accuracy", s->accuracy}, {"loss", number_json(s->loss)}, {"macro_f1", s->macro_f1}};
}

json environment_json(const Environment& env) {
  return {{"blas", env.blas},
          {"data_digest", env.data_digest},
          {"manifest_sha256", env.manifest_sha256},
          {"seed", env.seed},
          {"source", env.source},
          {"threads", env.threads},
          {"versions", env.versions}};
}

json trigger_json(const TriggerRow& t) {
  return {{"run", t.run},          {"pipeline", t.pipeline},
          {"index", t.index},      {"sample", t.sample},
          {"time_ns", t.time_ns},  {"reason", t.reason},
          {"stats", t.stats},      {"train_samples", t.train_samples},
          {"model", t.model},      {"next_window", scores_json(t.next_window)},
          {"deployed", t.deployed}};
}

json model_json(const ModelRow& m) {
  return {{"digest", m.digest},
          {"trigger", m.trigger},
          {"trained_until", m.trained_until},
          {"deployed_from", optional_json(m.deployed_from)}};
}

json composite_json(const Composite& c) {
  json accuracy = json::array(), model = json::array();
  for (std::size_t w = 0; w < c.accuracy.size(); ++w) {
    accuracy.push_back(optional_json(c.accuracy[w]));
    model.push_back(optional_json(c.model[w]));
  }
  return {{"accuracy", accuracy}, {"model", model}, {"mean", optional_json(c.mean)}};
}

json report_json(const RunReport& report) {
  json windows = json::array(), triggers = json::array(), models = json::array();
  json matrix = json::array(), change_points = json::array();
  for (const Window& w : report.windows) {
    windows.push_back({{"begin", w.begin},
                       {"end", w.end},
                       {"time_begin_ns", w.time_begin_ns},
                       {"time_end_ns", w.time_end_ns}});
  }
  for (const TriggerRow& t : report.triggers)
    triggers.push_back(trigger_json(t));
  for (const ModelRow& m : report.models)
    models.push_back(model_json(m));
  for (const auto& row : report.matrix) {
    json scores = json::array();
    for (const auto& s : row)
      scores.push_back(scores_json(s));
    matrix.push_back(scores);
  }
  for (const pipelines::ChangePoint& c : report.change_points) {
    change_points.push_back({{"sample", c.sample}, {"time_ns", c.time_ns}, {"text", c.text}});
  }
  const Totals sums = totals(report);
  return {{"format_version", kFormatVersion},
          {"run", report.run},
          {"environment", environment_json(report.env)},
          {"windows", windows},
          {"triggers", triggers},
          {"models", models},
          {"matrix", matrix},
          {"composite", composite_json(composite(report))},
          {"change_points", change_points},
          {"totals",
           {{"triggers", sums.triggers},
            {"deployed", sums.deployed},
            {"mean_accuracy", optional_json(sums.mean_accuracy)}}}};
}

// nlohmann's objects are std::maps: keys come out sorted, so equal reports give equal bytes.
// Bytes that are not UTF-8 (in a reason, a run's name) become U+FFFD rather than an exception.
std::string json_text(const json& value, int indent = -1) {
  return value.dump(indent, ' ', false, json::error_handler_t::replace);
}

void write_json(const std::filesystem::path& path, const json& value) {
  write_atomically(path, json_text(value, kJsonIndent) + "\n");
}

json comparison_row(const std::string& run, const Totals& sums) {
  return {{"run", run},
          {"triggers", sums.triggers},
          {"deployed", sums.deployed},
          {"mean_accuracy", optional_json(sums.mean_accuracy)},
          {"cpu_s", sums.cpu_s},
          {"accuracy_per_cpu_hour", optional_json(sums.accuracy_per_cpu_hour)}};
}

void check_runs(const std::vector<RunReport>& runs) {
  if (runs.empty()) throw ReportError("replay comparison: no runs to compare");
  std::set<std::string> names;
  for (const RunReport& r : runs) {
    if (!names.insert(r.run).second) {
      throw ReportError("replay comparison: two runs are named '" + r.run +
                        "'; give each configuration its own name");
    }
  }
}

}  // namespace

void write_triggers_csv(const std::filesystem::path& path, const RunReport& report) {
  validate(report);
  std::string text =
      csv_row({"run", "pipeline", "index", "sample", "time_ns", "reason", "stats", "train_samples",
               "model", "deployed", "next_accuracy", "next_macro_f1", "next_loss"});
  for (const TriggerRow& t : report.triggers) {
    const auto& s = t.next_window;
    text += csv_row({t.run, t.pipeline, std::to_string(t.index), std::to_string(t.sample),
                     std::to_string(t.time_ns), t.reason, json_text(t.stats),
                     std::to_string(t.train_samples), t.model, t.deployed ? "true" : "false",
                     s ? number_text(s->accuracy) : "", s ? number_text(s->macro_f1) : "",
                     s ? number_text(s->loss) : ""});
  }
  write_atomically(path, text);
}

void write_report_json(const std::filesystem::path& path, const RunReport& report) {
  validate(report);
  write_json(path, report_json(report));
}

void write_costs_json(const std::filesystem::path& path, const RunReport& report) {
  validate(report);
  json triggers = json::array();
  TriggerCosts sum;
  for (std::size_t i = 0; i < report.costs.size(); ++i) {
    const TriggerRow& t = report.triggers[i];
    const TriggerCosts& c = report.costs[i];
    triggers.push_back({{"pipeline", t.pipeline},
                        {"index", t.index},
                        {"sample", t.sample},
                        {"train_cpu_s", c.train_cpu_s},
                        {"eval_cpu_s", c.eval_cpu_s},
                        {"drift_cpu_s", c.drift_cpu_s},
                        {"train_wall_s", c.train_wall_s},
                        {"eval_wall_s", c.eval_wall_s},
                        {"drift_wall_s", c.drift_wall_s}});
    sum.train_cpu_s += c.train_cpu_s;
    sum.eval_cpu_s += c.eval_cpu_s;
    sum.drift_cpu_s += c.drift_cpu_s;
    sum.train_wall_s += c.train_wall_s;
    sum.eval_wall_s += c.eval_wall_s;
    sum.drift_wall_s += c.drift_wall_s;
  }
  const Totals sums = totals(report);
  write_json(path, {{"format_version", kFormatVersion},
                    {"run", report.run},
                    {"triggers", triggers},
                    {"totals",
                     {{"train_cpu_s", sum.train_cpu_s},
                      {"eval_cpu_s", sum.eval_cpu_s},
                      {"drift_cpu_s", sum.drift_cpu_s},
                      {"train_wall_s", sum.train_wall_s},
                      {"eval_wall_s", sum.eval_wall_s},
                      {"drift_wall_s", sum.drift_wall_s},
                      {"cpu_s", sums.cpu_s},
                      {"accuracy_per_cpu_hour", optional_json(sums.accuracy_per_cpu_hour)}}}});
}

void write_costs_csv(const std::filesystem::path& path, const RunReport& report) {
  validate(report);
  std::string text = csv_row({"run", "pipeline", "index", "sample", "train_cpu_s", "eval_cpu_s",
                              "drift_cpu_s", "train_wall_s", "eval_wall_s", "drift_wall_s"});
  for (std::size_t i = 0; i < report.costs.size(); ++i) {
    const TriggerRow& t = report.triggers[i];
    const TriggerCosts& c = report.costs[i];
    text += csv_row({t.run, t.pipeline, std::to_string(t.index), std::to_string(t.sample),
                     number_text(c.train_cpu_s), number_text(c.eval_cpu_s),
                     number_text(c.drift_cpu_s), number_text(c.train_wall_s),
                     number_text(c.eval_wall_s), number_text(c.drift_wall_s)});
  }
  write_atomically(path, text);
}

void write_comparison(const std::filesystem::path& dir, const std::vector<RunReport>& runs) {
  check_runs(runs);
  json rows = json::array();
  std::string text =
      csv_row({"run", "triggers", "deployed", "mean_accuracy", "cpu_s", "accuracy_per_cpu_hour"});
  for (const RunReport& r : runs) {
    const Totals sums = totals(r);
    rows.push_back(comparison_row(r.run, sums));
    text += csv_row({r.run, std::to_string(sums.triggers), std::to_string(sums.deployed),
                     optional_text(sums.mean_accuracy), number_text(sums.cpu_s),
                     optional_text(sums.accuracy_per_cpu_hour)});
  }
  write_json(dir / "comparison.json", {{"format_version", kFormatVersion}, {"runs", rows}});
  write_atomically(dir / "comparison.csv", text);
  write_accuracy_svg(dir / "accuracy.svg", runs);
}

void write_run_report(const std::filesystem::path& dir, const RunReport& report) {
  write_report_json(dir / "report.json", report);
  write_triggers_csv(dir / "triggers.csv", report);
  write_costs_json(dir / "costs.json", report);
  write_costs_csv(dir / "costs.csv", report);
  write_accuracy_svg(dir / "accuracy.svg", {report});
}

}  // namespace tv::fleet::replay
