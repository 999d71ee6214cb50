// What live knobs and telemetry cost a real training step: one SGD step of the `mlp` model on
// Fashion-MNIST batches with its knobs read from a shared-memory block every step and a telemetry
// record pushed, against the same step on fixed hyperparameters with no telemetry.
//
//   BM_TrainStep_Fixed           fixed knobs, no block, no telemetry (the baseline)
//   BM_TrainStep_Live            knobs from the block every step, telemetry every step
//   BM_TrainStep_LiveVsFixed     the two interleaved step by step, so drift in the machine's
//                                speed hits both alike, each going first in every other pair so
//                                that neither always runs on the caches the other left; reports
//                                the median overhead
//
// The verdict table at the end (bench_result.hpp) makes main return 1 when a target is missed.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

#include "bench_result.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace {

using namespace tv;

const std::map<std::string, plugin::ParamValue> kKnobs = {
    {"training/control/eval_every", std::int64_t{1000000000}},  // no evaluation inside the timing
    {"training/control/batch_size", std::int64_t{64}}};

trainer::TrainerOptions options(const std::string& job) {
  trainer::TrainerOptions o;
  o.job_id = job;
  o.model = "mlp";
  o.knobs = kKnobs;
  o.seed = 1;
  o.data.max_val_samples = 100;
  o.log = false;
  return o;
}

struct Sessions {
  Sessions()
      : job("bench-step-" + std::to_string(::getpid())),
        sink(job, plugin::ConfigView(kKnobs.begin(), kKnobs.end())),
        live(trainer::TrainingSession::open(options(job))),
        fixed(trainer::TrainingSession::open(options(""))) {
    for (int i = 0; i < 20; ++i) {  // warm both: allocator, BLAS buffers, page faults
      live->step();
      fixed->step();
    }
  }
  ~Sessions() { sink.remove_block(); }
  std::string job;
  BlockConfigSink sink;
  std::unique_ptr<trainer::TrainingSession> live, fixed;
};

Sessions& sessions() {
  static Sessions s;
  return s;
}

void BM_TrainStep_Fixed(benchmark::State& state) {
  auto& s = *sessions().fixed;
  for (auto _ : state)
    s.step();
}
BENCHMARK(BM_TrainStep_Fixed)->Unit(benchmark::kMicrosecond)->MinTime(3.0);

void BM_TrainStep_Live(benchmark::State& state) {
  auto& s = *sessions().live;
  for (auto _ : state)
    s.step();
}
BENCHMARK(BM_TrainStep_Live)->Unit(benchmark::kMicrosecond)->MinTime(3.0);

void BM_TrainStep_LiveVsFixed(benchmark::State& state) {
  auto& ss = sessions();
  std::vector<double> live, fixed;
  const auto timed_step = [](trainer::TrainingSession& session) {
    const auto t0 = std::chrono::steady_clock::now();
    session.step();
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  };
  bool fixed_first = true;
  for (auto _ : state) {
    if (fixed_first) {
      fixed.push_back(timed_step(*ss.fixed));
      live.push_back(timed_step(*ss.live));
    } else {
      live.push_back(timed_step(*ss.live));
      fixed.push_back(timed_step(*ss.fixed));
    }
    fixed_first = !fixed_first;
  }
  const auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
    return v[v.size() / 2];
  };
  const double f = median(fixed), l = median(live);
  state.counters["fixed_us"] = f;
  state.counters["live_us"] = l;
  state.counters["overhead_pct"] = 100.0 * (l - f) / f;
}
BENCHMARK(BM_TrainStep_LiveVsFixed)->Unit(benchmark::kMicrosecond)->MinTime(6.0);

class OverheadReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      ns[r.run_name.function_name] = r.GetAdjustedRealTime();
      for (const auto& [k, c] : r.counters)
        counters[k] = c.value;
    }
  }
  double counter(const char* name) const {
    const auto it = counters.find(name);
    return it == counters.end() ? tv::bench::kNotMeasured : it->second;
  }
  std::map<std::string, double> ns;        // real time per step, by benchmark
  std::map<std::string, double> counters;  // BM_TrainStep_LiveVsFixed's
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  OverheadReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto ns = [&](const char* name) {
    const auto it = reporter.ns.find(name);
    return it == reporter.ns.end() ? tv::bench::kNotMeasured : it->second;
  };
  const double f = ns("BM_TrainStep_Fixed"), l = ns("BM_TrainStep_Live");
  tv::bench::Verdicts v("Overhead of live knobs and telemetry on an mlp step");
  v.info("BM_TrainStep_Live / BM_TrainStep_Fixed - 1, run apart", 100.0 * (l - f) / f, "%");
  v.info("interleaved median step, fixed", reporter.counter("fixed_us"), " us", 0);
  v.info("interleaved median step, live", reporter.counter("live_us"), " us", 0);
  v.at_most("interleaved median overhead (BM_TrainStep_LiveVsFixed)",
            reporter.counter("overhead_pct"), "%", 1.0);
  const int rc = v.finish();
  benchmark::Shutdown();
  return rc;
}
