#include "trainvisor/fleet/replay/report.hpp"

#include <cmath>
#include <string>

namespace tv::fleet::replay {
namespace {

[[noreturn]] void refuse(const RunReport& report, const std::string& what) {
  throw ReportError("replay report of run '" + report.run + "': " + what);
}

std::string at(const char* table, std::size_t i) {
  return std::string(table) + "[" + std::to_string(i) + "]";
}

void check_windows(const RunReport& report) {
  const auto& windows = report.windows;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const Window& x = windows[w];
    if (x.begin < 0 || x.end <= x.begin) {
      refuse(report, at("windows", w) + " spans samples [" + std::to_string(x.begin) + ", " +
                         std::to_string(x.end) + "), which is empty or negative");
    }
    if (x.time_end_ns < x.time_begin_ns) {
      refuse(report, at("windows", w) + " ends in time before it begins");
    }
    if (w > 0 && x.begin < windows[w - 1].end) {
      refuse(report, at("windows", w) + " begins at sample " + std::to_string(x.begin) +
                         ", inside or before windows[" + std::to_string(w - 1) + "]");
    }
  }
}

void check_scores(const RunReport& report, const std::string& where, const Scores& s) {
  const auto fraction = [](double v) { return v >= 0 && v <= 1; };  // false for NaN
  if (!fraction(s.accuracy) || !fraction(s.macro_f1)) {
    refuse(report, where + " has an accuracy or macro F1 outside 0..1");
  }
}

void check_models(const RunReport& report) {
  const auto& models = report.models;
  if (report.matrix.size() != models.size()) {
    refuse(report, "the matrix has " + std::to_string(report.matrix.size()) + " rows for " +
                       std::to_string(models.size()) + " models");
  }
  for (std::size_t m = 0; m < models.size(); ++m) {
    const ModelRow& model = models[m];
    if (model.digest.empty()) refuse(report, at("models", m) + " has no digest");
    if (model.trigger < 0 || static_cast<std::size_t>(model.trigger) >= report.triggers.size()) {
      refuse(report, at("models", m) + " names trigger " + std::to_string(model.trigger) + " of " +
                         std::to_string(report.triggers.size()));
    }
    if (report.triggers[static_cast<std::size_t>(model.trigger)].model != model.digest) {
      refuse(report, at("models", m) + " has digest '" + model.digest + "' but its trigger " +
                         std::to_string(model.trigger) + " trained '" +
                         report.triggers[static_cast<std::size_t>(model.trigger)].model + "'");
    }
    const auto& row = report.matrix[m];
    if (row.size() != report.windows.size()) {
      refuse(report, at("matrix", m) + " has " + std::to_string(row.size()) + " scores for " +
                         std::to_string(report.windows.size()) + " windows");
    }
    for (std::size_t w = 0; w < row.size(); ++w) {
      if (row[w]) check_scores(report, at("matrix", m) + at("", w), *row[w]);
    }
  }
}

void check_triggers(const RunReport& report) {
  if (report.costs.size() != report.triggers.size()) {
    refuse(report, "there are " + std::to_string(report.costs.size()) + " costs for " +
                       std::to_string(report.triggers.size()) + " triggers");
  }
  for (std::size_t t = 0; t < report.triggers.size(); ++t) {
    if (report.triggers[t].run != report.run) {
      refuse(report, at("triggers", t) + " belongs to run '" + report.triggers[t].run + "'");
    }
    if (const auto& s = report.triggers[t].next_window) {
      check_scores(report, at("triggers", t) + ".next_window", *s);
    }
    const TriggerCosts& c = report.costs[t];
    for (const double v : {c.train_cpu_s, c.eval_cpu_s, c.drift_cpu_s, c.train_wall_s,
                           c.eval_wall_s, c.drift_wall_s}) {
      if (!std::isfinite(v) || v < 0) {
        refuse(report, at("costs", t) + " holds a time that is negative or not finite");
      }
    }
  }
}

// Among the models deployed at or before `sample`, the latest deployed; -1 if none.
std::int64_t deployed_at(const RunReport& report, std::int64_t sample) {
  std::int64_t best = -1;
  for (std::size_t m = 0; m < report.models.size(); ++m) {
    const auto& from = report.models[m].deployed_from;
    if (!from || *from > sample) continue;
    if (best < 0 || *from >= *report.models[static_cast<std::size_t>(best)].deployed_from) {
      best = static_cast<std::int64_t>(m);
    }
  }
  return best;
}

}  // namespace

void validate(const RunReport& report) {
  check_windows(report);
  check_triggers(report);
  check_models(report);
}

Composite composite(const RunReport& report) {
  validate(report);
  Composite out;
  double weighted = 0, weight = 0, plain = 0;
  std::size_t counted = 0;
  for (std::size_t w = 0; w < report.windows.size(); ++w) {
    const std::int64_t m = deployed_at(report, report.windows[w].begin);
    const auto& score = m < 0 ? std::nullopt : report.matrix[static_cast<std::size_t>(m)][w];
    out.model.push_back(m < 0 ? std::nullopt : std::optional<std::int64_t>(m));
    out.accuracy.push_back(score ? std::optional<double>(score->accuracy) : std::nullopt);
    if (!score) continue;
    const auto span =
        static_cast<double>(report.windows[w].time_end_ns - report.windows[w].time_begin_ns);
    weighted += span * score->accuracy;
    weight += span;
    plain += score->accuracy;
    ++counted;
  }
  if (weight > 0) {
    out.mean = weighted / weight;
  } else if (counted > 0) {
    out.mean = plain / static_cast<double>(counted);
  }
  return out;
}

Totals totals(const RunReport& report) {
  Totals out;
  out.mean_accuracy = composite(report).mean;
  out.triggers = static_cast<std::int64_t>(report.triggers.size());
  for (const TriggerRow& t : report.triggers)
    out.deployed += t.deployed ? 1 : 0;
  for (const TriggerCosts& c : report.costs)
    out.cpu_s += c.train_cpu_s + c.eval_cpu_s + c.drift_cpu_s;
  if (out.mean_accuracy && out.cpu_s > 0) {
    out.accuracy_per_cpu_hour = *out.mean_accuracy / (out.cpu_s / 3600.0);
  }
  return out;
}

}  // namespace tv::fleet::replay
