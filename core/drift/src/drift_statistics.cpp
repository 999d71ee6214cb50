#include "trainvisor/drift/drift_statistics.hpp"

#include <optional>
#include <stdexcept>
#include <string>

#include "trainvisor/drift/ks.hpp"
#include "trainvisor/drift/mmd.hpp"

namespace tv::drift {
namespace {

Window window(const plugin::FeatureWindow& w) {
  return {w.values, w.rows, w.dims};
}

// Throws std::invalid_argument naming the option a test cannot run with.
void check_options(const plugin::DriftTestOptions& o) {
  if (o.metric != "mmd" && o.metric != "ks")
    throw std::invalid_argument("metric: must be mmd or ks, got '" + o.metric + "'");
  if (o.metric == "mmd" && o.permutations < 1) {
    throw std::invalid_argument("permutations: must be at least 1, got " +
                                std::to_string(o.permutations));
  }
  if (o.metric == "ks" && o.correction != "bonferroni" && o.correction != "fdr")
    throw std::invalid_argument("correction: must be bonferroni or fdr, got '" + o.correction +
                                "'");
}

class PreparedReference final : public plugin::DriftReference {
 public:
  PreparedReference(const plugin::FeatureWindow& w, const plugin::DriftTestOptions& o)
      : metric_(o.metric) {
    if (metric_ == "mmd")
      mmd_.emplace(window(w), MmdOptions{});
    else
      ks_.emplace(window(w));
  }
  std::size_t rows() const override { return mmd_ ? mmd_->rows() : ks_->rows(); }
  std::size_t dims() const override { return mmd_ ? mmd_->dims() : ks_->dims(); }

  plugin::DriftTestResult test(const plugin::FeatureWindow& current,
                               const plugin::DriftTestOptions& o) const {
    if (o.metric != metric_) {
      throw std::invalid_argument("metric: the reference was prepared for " + metric_ + ", not " +
                                  o.metric);
    }
    plugin::DriftTestResult out;
    const double reference_rows = static_cast<double>(rows());
    if (mmd_) {
      MmdOptions options;
      options.permutations = static_cast<std::size_t>(o.permutations);
      options.seed = o.seed;
      const MmdResult r = mmd_->test(window(current), options);
      out.distance = r.mmd2;
      out.p_value = r.p_value;
      out.stats = {{"sigma", r.sigma},
                   {"permutations", static_cast<double>(r.permutations)},
                   {"exceeding", static_cast<double>(r.exceeding)},
                   {"reference_rows", reference_rows},
                   {"current_rows", static_cast<double>(current.rows)}};
      return out;
    }
    const KsResult r = ks_->test(
        window(current), o.correction == "fdr" ? Correction::kFdr : Correction::kBonferroni);
    out.distance = r.max_statistic;
    out.p_value = r.corrected_p;
    out.stats = {{"max_feature", static_cast<double>(r.max_feature)},
                 {"features", static_cast<double>(r.statistic.size())},
                 {"reference_rows", reference_rows},
                 {"current_rows", static_cast<double>(current.rows)}};
    return out;
  }

 private:
  std::string metric_;
  std::optional<MmdReference> mmd_;
  std::optional<KsReference> ks_;
};

class Statistics final : public plugin::DriftStatistics {
 public:
  std::unique_ptr<plugin::DriftReference> prepare(const plugin::FeatureWindow& reference,
                                                  const plugin::DriftTestOptions& options,
                                                  std::string& error) const override {
    try {
      check_options(options);
      return std::make_unique<PreparedReference>(reference, options);
    } catch (const std::exception& e) {
      error = e.what();
      return nullptr;
    }
  }

  bool test(const plugin::DriftReference& reference, const plugin::FeatureWindow& current,
            const plugin::DriftTestOptions& options, plugin::DriftTestResult& out,
            std::string& error) const override {
    const auto* prepared = dynamic_cast<const PreparedReference*>(&reference);
    if (!prepared) {
      error = "reference: not prepared by these drift statistics";
      return false;
    }
    try {
      check_options(options);
      out = prepared->test(current, options);
      return true;
    } catch (const std::exception& e) {
      error = e.what();
      return false;
    }
  }
};

}  // namespace

const plugin::DriftStatistics& drift_statistics() {
  static const Statistics instance;
  return instance;
}

}  // namespace tv::drift
