#include "trainvisor/fleet/pipelines/deployment_gate.hpp"

#include <cmath>
#include <cstdio>
#include <optional>

namespace tv::fleet::pipelines {
namespace {

std::string fixed(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3f", v);
  return b;
}

// The accuracy of `side` ("new" or "deployed"), when the evaluation has a finite one in [0, 1].
std::optional<double> accuracy(const nlohmann::json& evaluation, const char* side) {
  if (!evaluation.is_object()) return std::nullopt;
  const auto s = evaluation.find(side);
  if (s == evaluation.end() || !s->is_object()) return std::nullopt;
  const auto a = s->find("accuracy");
  if (a == s->end() || !a->is_number()) return std::nullopt;
  const double v = a->get<double>();
  if (!std::isfinite(v) || v < 0 || v > 1) return std::nullopt;
  return v;
}

std::string short_digest(const std::string& d) {
  return d.empty() ? "none" : d.substr(0, 12);
}

}  // namespace

GateDecision judge(const GateInput& in) {
  const std::optional<double> fresh = accuracy(in.evaluation, "new");
  if (!fresh) return {false, "refused: the training reported no usable evaluation of its model"};
  std::string why = "accuracy " + fixed(*fresh);
  if (*fresh < in.min_accuracy)
    return {false, "refused: " + why + " < min_accuracy " + fixed(in.min_accuracy)};
  why += " >= min " + fixed(in.min_accuracy);
  if (in.deployed_now != in.baseline) {
    return {false, "refused: the alias holds " + short_digest(in.deployed_now) +
                       ", and this model was compared with " + short_digest(in.baseline)};
  }
  if (in.baseline.empty()) return {true, "deployed: " + why + "; nothing deployed before"};
  const std::optional<double> old = accuracy(in.evaluation, "deployed");
  if (!old) return {false, "refused: the training reported no evaluation of the deployed model"};
  const std::string against =
      "deployed model " + fixed(*old) + " (max_regression " + fixed(in.max_regression) + ")";
  if (*fresh < *old - in.max_regression)
    return {false, "refused: " + why + ", below the " + against};
  return {true, "deployed: " + why + ", against the " + against};
}

}  // namespace tv::fleet::pipelines
