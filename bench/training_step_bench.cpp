// What live knobs and telemetry cost a real training step: one SGD step of the `mlp` model on
// Fashion-MNIST batches with its knobs read from a shared-memory block every step and a telemetry
// record pushed, against the same step on fixed hyperparameters with no telemetry.
//
//   BM_TrainStep_Fixed           fixed knobs, no block, no telemetry (the baseline)
//   BM_TrainStep_Live            knobs from the block every step, telemetry every step
//   BM_TrainStep_LiveVsFixed     the two interleaved step by step, so drift in the machine's
//                                speed hits both alike; reports the median overhead
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>

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
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ss.fixed->step();
    const auto t1 = std::chrono::steady_clock::now();
    ss.live->step();
    const auto t2 = std::chrono::steady_clock::now();
    fixed.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    live.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
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
      if (r.run_type != Run::RT_Iteration) continue;
      ns[r.run_name.function_name] = r.GetAdjustedRealTime();
      const auto it = r.counters.find("overhead_pct");
      if (it != r.counters.end()) interleaved = it->second.value;
    }
  }
  std::map<std::string, double> ns;
  double interleaved = NAN;
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  OverheadReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double f = reporter.ns["BM_TrainStep_Fixed"], l = reporter.ns["BM_TrainStep_Live"];
  std::printf("\nOverhead of live knobs and telemetry on an mlp step (target <= 1%%)\n");
  if (f > 0 && l > 0) {
    std::printf("  BM_TrainStep_Live / BM_TrainStep_Fixed      %+.2f%%\n", 100.0 * (l - f) / f);
  }
  if (!std::isnan(reporter.interleaved)) {
    std::printf("  interleaved median (BM_TrainStep_LiveVsFixed) %+.2f%% %s\n",
                reporter.interleaved, reporter.interleaved <= 1.0 ? "ok" : "MISSED");
  }
  benchmark::Shutdown();
  return 0;
}
