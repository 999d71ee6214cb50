#include "trainvisor/fleet/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace tv::fleet::metrics {
namespace {

bool name_char(char c, bool first, bool colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (alpha || (colon && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

bool valid_name(std::string_view n, bool colon) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i)
    if (!name_char(n[i], i == 0, colon)) return false;
  return true;
}

void check_names(const std::string& name, const std::vector<std::string>& labels, Kind kind) {
  if (!valid_name(name, true))
    throw std::invalid_argument("metric '" + name + "': not a name of [a-zA-Z_:][a-zA-Z0-9_:]*");
  if (kind == Kind::kCounter && !name.ends_with("_total"))
    throw std::invalid_argument("metric '" + name + "': a counter's name ends in _total");
  for (const std::string& l : labels) {
    if (!valid_name(l, false) || l.starts_with("__"))
      throw std::invalid_argument("metric '" + name + "': label '" + l +
                                  "' is not a name of [a-zA-Z_][a-zA-Z0-9_]* without a "
                                  "leading __");
    if (kind == Kind::kHistogram && l == "le")
      throw std::invalid_argument("metric '" + name + "': 'le' is a histogram's bucket label");
  }
}

const char* type_name(Kind kind) {
  switch (kind) {
    case Kind::kCounter:
      return "counter";
    case Kind::kGauge:
      return "gauge";
    case Kind::kHistogram:
      break;
  }
  return "histogram";
}

int compare(std::span<const std::string> a, std::span<const std::string_view> b) {
  for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    if (const int c = std::string_view(a[i]).compare(b[i]); c != 0) return c;
  }
  return a.size() < b.size() ? -1 : (a.size() > b.size() ? 1 : 0);
}

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Whole numbers up to 2^53 are exact in a double: shown without an exponent or a fraction.
  if (v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
    const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<std::int64_t>(v));
    return std::string(buf, r.ptr);
  }
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Histogram::Histogram(std::span<const double> bounds)
    : bounds_(bounds.begin(), bounds.end()),
      counts_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds.size() + 1)) {}

void Histogram::observe(double v) noexcept {
  // The first bound at or above v (le is "less or equal"); past the last: the +Inf bucket.
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[static_cast<std::size_t>(at)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

FamilyBase::FamilyBase(std::string name, std::string help, std::vector<std::string> label_names,
                       Kind kind)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      kind_(kind) {
  check_names(name_, label_names_, kind_);
}

bool FamilyBase::ValuesLess::operator()(const std::vector<std::string>& a,
                                        const std::vector<std::string>& b) const {
  return a < b;
}
bool FamilyBase::ValuesLess::operator()(const std::vector<std::string>& a,
                                        std::span<const std::string_view> b) const {
  return compare(a, b) < 0;
}
bool FamilyBase::ValuesLess::operator()(std::span<const std::string_view> a,
                                        const std::vector<std::string>& b) const {
  return compare(b, a) > 0;
}

void FamilyBase::check_arity(std::span<const std::string_view> values) const {
  if (values.size() == label_names_.size()) return;
  throw std::invalid_argument("metric '" + name_ + "': " + std::to_string(values.size()) +
                              " label values for " + std::to_string(label_names_.size()) +
                              " labels");
}

std::string FamilyBase::label_text(const std::vector<std::string>& values) const {
  std::string out;
  for (std::size_t i = 0; i < values.size(); ++i) {
    out += i == 0 ? "{" : ",";
    out += label_names_[i] + "=\"" + escape_label_value(values[i]) + "\"";
  }
  return out;
}

void FamilyBase::render(std::string& out) const {
  out += "# HELP " + name_ + " " + escape_help(help_) + "\n";
  out += "# TYPE " + name_ + " " + type_name(kind_) + "\n";
  std::shared_lock lock(mu_);
  render_series(out);
}

template <class T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  Kind kind, std::function<std::unique_ptr<T>()> make)
    : FamilyBase(std::move(name), std::move(help), std::move(label_names), kind),
      make_(std::move(make)) {}

template <class T>
T& Family<T>::with(std::span<const std::string_view> values) {
  {
    std::shared_lock lock(mu_);
    if (const auto it = series_.find(values); it != series_.end()) return *it->second;
  }
  check_arity(values);
  std::unique_lock lock(mu_);
  auto [it, inserted] = series_.try_emplace(std::vector<std::string>(values.begin(), values.end()));
  if (inserted) it->second = make_();
  return *it->second;
}

template <class T>
void Family<T>::remove(std::initializer_list<std::string_view> values) {
  std::unique_lock lock(mu_);
  if (const auto it = series_.find(std::span(values.begin(), values.size())); it != series_.end())
    series_.erase(it);
}

template <>
void Family<Counter>::render_series(std::string& out) const {
  for (const auto& [values, c] : series_) {
    const std::string labels = label_text(values);
    out += name() + labels + (labels.empty() ? " " : "} ") + std::to_string(c->value()) + "\n";
  }
}

template <>
void Family<Gauge>::render_series(std::string& out) const {
  for (const auto& [values, g] : series_) {
    const std::string labels = label_text(values);
    out += name() + labels + (labels.empty() ? " " : "} ") + format_value(g->value()) + "\n";
  }
}

template <>
void Family<Histogram>::render_series(std::string& out) const {
  for (const auto& [values, h] : series_) {
    const std::string labels = label_text(values);
    const std::string open = labels.empty() ? "{" : labels + ",";
    const std::string close = labels.empty() ? " " : "} ";
    const std::vector<std::uint64_t> counts = h->cumulative();
    const std::span<const double> bounds = h->bounds();
    for (std::size_t i = 0; i < counts.size(); ++i) {
      const std::string le = i < bounds.size() ? format_value(bounds[i]) : "+Inf";
      out += name() + "_bucket" + open + "le=\"" + le + "\"} " + std::to_string(counts[i]) + "\n";
    }
    out += name() + "_sum" + labels + close + format_value(h->sum()) + "\n";
    out += name() + "_count" + labels + close + std::to_string(counts.back()) + "\n";
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

template <class T>
Family<T>& Registry::add(std::unique_ptr<Family<T>> family) {
  std::lock_guard lock(mu_);
  const std::string& name = family->name();
  if (families_.count(name)) throw std::invalid_argument("metric '" + name + "': registered twice");
  Family<T>& out = *family;
  families_.emplace(name, std::move(family));
  return out;
}

Family<Counter>& Registry::counter(std::string name, std::string help,
                                   std::vector<std::string> label_names) {
  const bool plain = label_names.empty();
  auto& f = add(std::make_unique<Family<Counter>>(std::move(name), std::move(help),
                                                  std::move(label_names), Kind::kCounter,
                                                  [] { return std::make_unique<Counter>(); }));
  if (plain) f.get();
  return f;
}

Family<Gauge>& Registry::gauge(std::string name, std::string help,
                               std::vector<std::string> label_names) {
  const bool plain = label_names.empty();
  auto& f =
      add(std::make_unique<Family<Gauge>>(std::move(name), std::move(help), std::move(label_names),
                                          Kind::kGauge, [] { return std::make_unique<Gauge>(); }));
  if (plain) f.get();
  return f;
}

Family<Histogram>& Registry::histogram(std::string name, std::string help,
                                       std::vector<std::string> label_names,
                                       std::span<const double> bounds) {
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
      throw std::invalid_argument("metric '" + name +
                                  "': bucket bounds must be finite and strictly increasing");
  }
  const bool plain = label_names.empty();
  std::vector<double> b(bounds.begin(), bounds.end());
  auto& f = add(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), std::move(label_names), Kind::kHistogram,
      [b] { return std::make_unique<Histogram>(b); }));
  if (plain) f.get();
  return f;
}

void Registry::on_scrape(std::function<void()> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  for (const auto& collect : collectors_)
    collect();
  std::string out;
  for (const auto& [name, family] : families_)
    family->render(out);
  return out;
}

}  // namespace tv::fleet::metrics
