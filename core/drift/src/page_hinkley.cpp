#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "trainvisor/drift/streaming.hpp"

namespace tv::drift {
namespace {

void require(bool ok, const char* option, const char* range) {
  if (!ok) {
    throw std::invalid_argument(std::string("Page-Hinkley option '") + option + "' must be " +
                                range);
  }
}

}  // namespace

PageHinkley::PageHinkley(const PageHinkleyOptions& options) : options_(options) {
  require(std::isfinite(options.delta) && options.delta >= 0.0, "delta", "finite and >= 0");
  require(std::isfinite(options.lambda) && options.lambda > 0.0, "lambda", "finite and > 0");
  require(std::isfinite(options.alpha) && options.alpha > 0.0 && options.alpha <= 1.0, "alpha",
          "in (0, 1]");
  require(options.min_instances >= 1, "min_instances", ">= 1");
  const auto direction = static_cast<int>(options.direction);
  require(direction >= static_cast<int>(PageHinkleyDirection::up) &&
              direction <= static_cast<int>(PageHinkleyDirection::both),
          "direction", "up, down or both");
}

bool PageHinkley::update(double x) {
  if (!std::isfinite(x)) {
    throw std::invalid_argument("Page-Hinkley update: x must be a finite number, got " +
                                std::to_string(x));
  }
  ++count_;
  mean_ += (x - mean_) / static_cast<double>(count_);
  const double deviation = x - mean_;
  // Starting the extremes at m_0 = n_0 = 0 changes nothing: m_1 = -delta <= 0 and
  // n_1 = delta >= 0, so the first observation's sums already reach them.
  sum_up_ = options_.alpha * sum_up_ + (deviation - options_.delta);
  min_up_ = std::min(min_up_, sum_up_);
  sum_down_ = options_.alpha * sum_down_ + (deviation + options_.delta);
  max_down_ = std::max(max_down_, sum_down_);

  if (count_ < options_.min_instances) return false;
  const bool up =
      options_.direction != PageHinkleyDirection::down && increase_statistic() > options_.lambda;
  const bool down =
      options_.direction != PageHinkleyDirection::up && decrease_statistic() > options_.lambda;
  if (!up && !down) return false;
  ++detections_;
  reset();
  return true;
}

void PageHinkley::reset() {
  count_ = 0;
  mean_ = 0.0;
  sum_up_ = 0.0;
  min_up_ = 0.0;
  sum_down_ = 0.0;
  max_down_ = 0.0;
}

double PageHinkley::statistic() const {
  switch (options_.direction) {
    case PageHinkleyDirection::up:
      return increase_statistic();
    case PageHinkleyDirection::down:
      return decrease_statistic();
    case PageHinkleyDirection::both:
      break;
  }
  return std::max(increase_statistic(), decrease_statistic());
}

}  // namespace tv::drift
