// Well-formed test plugins: a policy (built twice, the second time under the same name, to test
// duplicate refusal) and a trigger.
#include <cmath>
#include <string>

#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

#ifdef TV_GOOD_POLICY
// Proposes a fixed learning rate once loss passes a bound: enough behaviour to be observed.
class CapPolicy final : public Policy {
 public:
  explicit CapPolicy(double bound) : bound_(bound) {}
  Decision observe(const Observation& o) override {
    Decision d;
    for (std::size_t i = o.first_new; i < o.history.size(); ++i) {
      if (o.history[i].loss > bound_) {
        d.writes.push_back({"training/optimizer/learning_rate", 0.001, "loss above bound"});
        break;
      }
    }
    return d;
  }

 private:
  double bound_;
};

class TestPolicyPlugin final : public PolicyPlugin {
 public:
  Descriptor describe() const override {
#ifdef TV_DUPLICATE
    const char* version = "2.0.0";
#else
    const char* version = "1.0.0";
#endif
    return {Kind::kPolicy,
            "test_policy",
            version,
            "caps the learning rate when loss is high",
            {{"bound", ParamType::kFloat64, 10.0, 0.0, 1e9, {}, "loss above which to act"},
             {"mode", ParamType::kString, std::string("cap"), {}, {}, {"cap", "warn"}, "action"}}};
  }
  std::unique_ptr<Policy> create(const Params& params, std::string&) override {
    return std::make_unique<CapPolicy>(std::get<double>(params.at("bound")));
  }
};
TRAINVISOR_PLUGIN(TestPolicyPlugin)
#endif

#ifdef TV_GOOD_TRIGGER
// Counts rows; refuses, unchanged, a batch of more than `max_rows` rows (0: no limit), so that
// a test can make one member of an ensemble refuse what the others accept.
class EveryN final : public Trigger {
 public:
  EveryN(std::uint64_t n, std::uint64_t max_rows) : n_(n), max_rows_(max_rows) {}
  bool observe(const SampleBatch& batch, TriggerDecision& decision, std::string& error) override {
    if (max_rows_ != 0 && batch.rows > max_rows_) {
      error = "rows: " + std::to_string(batch.rows) + " in a batch, at most " +
              std::to_string(max_rows_);
      return false;
    }
    for (std::size_t row = 0; row < batch.rows; ++row) {
      if (++seen_ < n_) continue;
      seen_ = 0;
      decision.evaluations.push_back({row, batch.time_ns[row], true, "count reached", {}});
    }
    return true;
  }

 private:
  std::uint64_t n_, max_rows_, seen_ = 0;
};

class TestTriggerPlugin final : public TriggerPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kTrigger,
            "test_trigger",
            "0.1.0",
            "fires every N samples",
            {{"samples", ParamType::kInt64, std::int64_t{100}, 1.0, {}, {}, "samples per firing"},
             {"max_rows", ParamType::kInt64, std::int64_t{0}, 0.0, {}, {}, "rows per batch"}}};
  }
  std::unique_ptr<Trigger> create(const Params& params, const TriggerServices&,
                                  std::string&) override {
    return std::make_unique<EveryN>(
        static_cast<std::uint64_t>(std::get<std::int64_t>(params.at("samples"))),
        static_cast<std::uint64_t>(std::get<std::int64_t>(params.at("max_rows"))));
  }
};
TRAINVISOR_PLUGIN(TestTriggerPlugin)
#endif

}  // namespace
