// The two-sample tests against values computed once with numpy and scipy
// (tests/golden/make_drift.py writes drift_mmd.json and drift_ks.json).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "trainvisor/drift/ks.hpp"
#include "trainvisor/drift/mmd.hpp"

namespace tv::drift {
namespace {

nlohmann::json golden(const std::string& file) {
  std::ifstream in(std::string(TV_GOLDEN_DIR) + "/" + file);
  if (!in) throw std::runtime_error("cannot read " + file);
  return nlohmann::json::parse(in);
}

struct Case {
  std::vector<float> reference, current;
  std::size_t dims;
  Window x() const { return {reference, reference.size() / dims, dims}; }
  Window y() const { return {current, current.size() / dims, dims}; }
};

Case inputs(const nlohmann::json& c) {
  return {c["reference"].get<std::vector<float>>(), c["current"].get<std::vector<float>>(),
          c["dims"].get<std::size_t>()};
}

TEST(DriftGolden, MmdMatchesNumpy) {
  const auto cases = golden("drift_mmd.json")["cases"];
  ASSERT_GE(cases.size(), 4u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const Case in = inputs(c);
    MmdOptions options;
    options.permutations = c["permutations"];
    options.seed = c["seed"];
    options.bandwidth_rows = c["bandwidth_rows"];
    options.sigma = c["given_sigma"];
    const MmdResult r = mmd_test(in.x(), in.y(), options);
    EXPECT_NEAR(r.sigma, c["sigma"].get<double>(), 1e-5 * c["sigma"].get<double>());
    // A float kernel: every statistic is a difference of means of values <= 1.
    EXPECT_NEAR(r.mmd2, c["mmd2"].get<double>(), 1e-6);
    const auto permuted = c["permuted"].get<std::vector<double>>();
    ASSERT_EQ(r.permuted.size(), permuted.size());
    for (std::size_t b = 0; b < permuted.size(); ++b)
      EXPECT_NEAR(r.permuted[b], permuted[b], 1e-6) << "permutation " << b;
    EXPECT_NEAR(r.p_value, c["p_value"].get<double>(), 1e-12);
  }
}

TEST(DriftGolden, KsMatchesScipy) {
  const auto cases = golden("drift_ks.json")["cases"];
  ASSERT_GE(cases.size(), 3u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const Case in = inputs(c);
    const KsResult bonferroni = ks_test(in.x(), in.y(), Correction::kBonferroni);
    const KsResult fdr = ks_test(in.x(), in.y(), Correction::kFdr);
    const auto statistic = c["statistic"].get<std::vector<double>>();
    const auto p = c["p_value"].get<std::vector<double>>();
    const auto scipy_p = c["scipy_asymp_p_value"].get<std::vector<double>>();
    ASSERT_EQ(bonferroni.statistic.size(), statistic.size());
    for (std::size_t f = 0; f < statistic.size(); ++f) {
      EXPECT_NEAR(bonferroni.statistic[f], statistic[f], 1e-12) << "feature " << f;
      EXPECT_NEAR(bonferroni.p_value[f], p[f], 1e-10 + 1e-9 * p[f]) << "feature " << f;
      // scipy's own asymptotic p-value uses the one-sample distribution at round(e): close to
      // the corrected limiting form, not equal.
      EXPECT_NEAR(bonferroni.p_value[f], scipy_p[f], 0.02 + 0.1 * scipy_p[f]) << "feature " << f;
    }
    EXPECT_NEAR(bonferroni.corrected_p, c["bonferroni"].get<double>(), 1e-9);
    EXPECT_NEAR(fdr.corrected_p, c["fdr"].get<double>(), 1e-9);
  }
}

TEST(Ks, KolmogorovSurvivalMatchesScipyOnBothSeries) {
  // scipy.special.kolmogorov at points on each side of the switch between the two series (1.0).
  const std::pair<double, double> known[] = {
      {0.3, 0.9999906941986655},  {0.5, 0.9639452436648751},    {0.9999999, 0.26999977887222576},
      {1.0, 0.26999967167735456}, {1.36, 0.049485876755377876}, {2.0, 0.0006709252557796953}};
  for (const auto& [l, q] : known)
    EXPECT_NEAR(kolmogorov_survival(l), q, 1e-13 + 1e-12 * q) << "l = " << l;
  EXPECT_EQ(kolmogorov_survival(0.0), 1.0);
  EXPECT_LT(kolmogorov_survival(5.0), 1e-20);
}

TEST(Ks, BadInputIsRefusedNamingTheParameter) {
  const std::vector<float> x = {0, 1, 2, 3, 4, 5}, nan = {0, 1, std::nanf(""), 3};
  const KsReference reference(Window{x, 3, 2});
  auto message = [&](const Window& w) {
    try {
      reference.test(w, Correction::kFdr);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message(Window{nan, 2, 2}), "current: row 1, feature 0 is NaN");
  EXPECT_EQ(message(Window{x, 2, 3}), "current: 3 features per row, the reference has 2");
  EXPECT_EQ(message(Window{{}, 0, 2}), "current: the window is empty (no rows)");
  EXPECT_THROW(KsReference(Window{{}, 0, 2}), std::invalid_argument);
}

}  // namespace
}  // namespace tv::drift
