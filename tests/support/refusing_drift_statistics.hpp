// A DriftStatistics that refuses every call, for tests of triggers that never ask for drift
// statistics (and of the host code that hands them over).
#pragma once

#include <memory>
#include <string>

#include "trainvisor/plugin.hpp"

namespace tv::test {

class RefusingDriftStatistics final : public plugin::DriftStatistics {
 public:
  static constexpr const char* kRefusal = "no drift statistics in this test";

  std::unique_ptr<plugin::DriftReference> prepare(const plugin::FeatureWindow&,
                                                  const plugin::DriftTestOptions&,
                                                  std::string& error) const override {
    error = kRefusal;
    return nullptr;
  }
  bool test(const plugin::DriftReference&, const plugin::FeatureWindow&,
            const plugin::DriftTestOptions&, plugin::DriftTestResult&,
            std::string& error) const override {
    error = kRefusal;
    return false;
  }
};

}  // namespace tv::test
