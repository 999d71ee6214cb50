#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <string_view>

#include "replay_text.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/fleet/pipelines/replay_source.hpp"

namespace tv::fleet::pipelines {
namespace {

const std::vector<std::string> kSchedules{"none", "rotate", "class_incremental", "label_shift",
                                          "permute"};

bool space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

std::string joined(const std::vector<std::string>& words) {
  std::string out;
  for (const std::string& w : words)
    out += (out.empty() ? "" : ", ") + w;
  return out;
}

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string close = did_you_mean(word, candidates);
  return close.empty() ? "" : " (did you mean '" + close + "'?)";
}

// `name(key=value, ...)` split into its parts; values are kept as text for the schedule to read.
class ScheduleText {
 public:
  explicit ScheduleText(const std::string& text) : text_(text) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw ReplayError("drift schedule '" + text_ + "': " + why);
  }

  void parse() {
    skip_space();
    name_ = word();
    if (name_.empty()) fail_expected("a schedule name");
    skip_space();
    if (at_end()) return;
    if (text_[pos_] != '(') fail_expected("'(' or the end");
    ++pos_;
    skip_space();
    if (!at_end() && text_[pos_] == ')') {
      ++pos_;
    } else {
      parse_params();
    }
    skip_space();
    if (!at_end()) fail_expected("the end");
  }

  const std::string& name() const { return name_; }
  const std::map<std::string, std::string>& params() const { return params_; }

 private:
  void parse_params() {
    for (;;) {
      skip_space();
      const std::string key = word();
      if (key.empty()) fail_expected("a parameter name");
      skip_space();
      if (at_end() || text_[pos_] != '=') fail_expected("'=' after '" + key + "'");
      ++pos_;
      skip_space();
      const std::size_t begin = pos_;
      while (!at_end() && !space(text_[pos_]) && text_[pos_] != ',' && text_[pos_] != ')' &&
             text_[pos_] != '(' && text_[pos_] != '=')
        ++pos_;
      if (pos_ == begin) fail_expected("a value for '" + key + "'");
      if (!params_.emplace(key, text_.substr(begin, pos_ - begin)).second) {
        fail("parameter '" + key + "' is given twice");
      }
      skip_space();
      if (at_end()) fail_expected("')'");
      if (text_[pos_++] == ')') return;
      if (text_[pos_ - 1] != ',') {
        --pos_;
        fail_expected("',' or ')'");
      }
    }
  }

  [[noreturn]] void fail_expected(const std::string& what) const {
    const std::string found = at_end() ? "the end" : "'" + std::string(1, text_[pos_]) + "'";
    fail("expected " + what + " at character " + std::to_string(pos_ + 1) + ", found " + found);
  }

  std::string word() {
    const std::size_t begin = pos_;
    while (!at_end() && word_char(text_[pos_]))
      ++pos_;
    return text_.substr(begin, pos_ - begin);
  }
  void skip_space() {
    while (!at_end() && space(text_[pos_]))
      ++pos_;
  }
  bool at_end() const { return pos_ >= text_.size(); }

  const std::string& text_;
  std::size_t pos_ = 0;
  std::string name_;
  std::map<std::string, std::string> params_;
};

// Reads one schedule's parameters, refusing unknown ones and bad values by name.
class ParamReader {
 public:
  ParamReader(const ScheduleText& text, std::vector<std::string> known)
      : text_(text), known_(std::move(known)) {
    for (const auto& [key, value] : text.params()) {
      if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
      if (known_.empty()) text.fail(text.name() + " takes no parameters ('" + key + "' given)");
      text.fail(text.name() + " has no parameter '" + key + "' (parameters: " + joined(known_) +
                ")" + suggestion(key, known_));
    }
  }

  const std::string* get(const std::string& key) const {
    const auto it = text_.params().find(key);
    return it == text_.params().end() ? nullptr : &it->second;
  }

  [[noreturn]] void bad(const std::string& key, const std::string& why) const {
    text_.fail(text_.name() + ": " + key + " '" + *get(key) + "' " + why);
  }

  void integer(const std::string& key, std::int64_t& out, std::int64_t min) const {
    const std::string* v = get(key);
    if (v == nullptr) return;
    std::int64_t n = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || end != v->data() + v->size()) bad(key, "is not an integer");
    if (n < min) bad(key, "is below " + std::to_string(min));
    out = n;
  }

  void real(const std::string& key, double& out) const {
    const std::string* v = get(key);
    if (v == nullptr) return;
    double x = 0;
    const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
    if (ec != std::errc() || end != v->data() + v->size() || !std::isfinite(x)) {
      bad(key, "is not a finite number");
    }
    out = x;
  }

  // Classes joined by '-', e.g. 0-1-7.
  std::vector<std::int64_t> classes(const std::string& key, std::string_view list) const {
    std::vector<std::int64_t> out;
    std::size_t pos = 0;
    while (pos <= list.size()) {
      const std::size_t end = std::min(list.find('-', pos), list.size());
      std::int64_t c = -1;
      const auto [p, ec] = std::from_chars(list.data() + pos, list.data() + end, c);
      if (ec != std::errc() || p != list.data() + end || c < 0) {
        bad(key, "is not classes (non-negative integers) joined by '-'");
      }
      if (std::find(out.begin(), out.end(), c) != out.end()) {
        bad(key, "names class " + std::to_string(c) + " twice");
      }
      out.push_back(c);
      pos = end + 1;
    }
    return out;
  }

 private:
  const ScheduleText& text_;
  std::vector<std::string> known_;
};

DriftSchedule class_incremental(const ScheduleText& text) {
  ClassIncremental r;
  const ParamReader p(text, {"groups", "every"});
  p.integer("every", r.every, 1);
  if (const std::string* v = p.get("groups")) {
    r.groups.clear();
    std::set<std::int64_t> seen;
    std::size_t pos = 0;
    while (pos <= v->size()) {
      const std::size_t end = std::min(v->find('/', pos), v->size());
      r.groups.push_back(p.classes("groups", std::string_view(*v).substr(pos, end - pos)));
      for (const std::int64_t c : r.groups.back()) {
        if (!seen.insert(c).second) {
          p.bad("groups", "puts class " + std::to_string(c) + " in two groups");
        }
      }
      pos = end + 1;
    }
  }
  return {r};
}

DriftSchedule label_shift(const ScheduleText& text) {
  LabelShift r;
  const ParamReader p(text, {"classes", "mass", "from", "to"});
  if (const std::string* v = p.get("classes")) r.classes = p.classes("classes", *v);
  p.real("mass", r.mass);
  if (r.mass < 0 || r.mass > 1) p.bad("mass", "is not between 0 and 1");
  p.integer("from", r.from, 0);
  p.integer("to", r.to, 0);
  if (r.to <= r.from) {
    text.fail("label_shift: to (" + std::to_string(r.to) + ") is not after from (" +
              std::to_string(r.from) + ")");
  }
  return {r};
}

}  // namespace

DriftSchedule parse_drift_schedule(const std::string& text) {
  ScheduleText t(text);
  t.parse();
  const std::string& name = t.name();
  if (name == "none") {
    const ParamReader p(t, {});
    return {NoDrift{}};
  }
  if (name == "rotate") {
    Rotation r;
    const ParamReader p(t, {"degrees", "every"});
    p.real("degrees", r.degrees);
    p.integer("every", r.every, 1);
    return {r};
  }
  if (name == "class_incremental") return class_incremental(t);
  if (name == "label_shift") return label_shift(t);
  if (name == "permute") {
    PixelPermutation r;
    const ParamReader p(t, {"from"});
    p.integer("from", r.from, 0);
    return {r};
  }
  t.fail("unknown schedule '" + name + "' (schedules: " + joined(kSchedules) + ")" +
         suggestion(name, kSchedules));
}

std::string to_string(const DriftSchedule& schedule) {
  struct Printer {
    std::string operator()(const NoDrift&) const { return "none"; }
    std::string operator()(const Rotation& r) const {
      return "rotate(degrees=" + number_text(r.degrees) + ", every=" + std::to_string(r.every) +
             ")";
    }
    std::string operator()(const ClassIncremental& r) const {
      std::string groups;
      for (const auto& g : r.groups)
        groups += (groups.empty() ? "" : "/") + list_text(g);
      return "class_incremental(groups=" + groups + ", every=" + std::to_string(r.every) + ")";
    }
    std::string operator()(const LabelShift& r) const {
      return "label_shift(classes=" + list_text(r.classes) + ", mass=" + number_text(r.mass) +
             ", from=" + std::to_string(r.from) + ", to=" + std::to_string(r.to) + ")";
    }
    std::string operator()(const PixelPermutation& r) const {
      return "permute(from=" + std::to_string(r.from) + ")";
    }
  };
  return std::visit(Printer{}, schedule.rule);
}

}  // namespace tv::fleet::pipelines
