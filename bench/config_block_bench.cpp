// The hot path against its floor and against the locked designs it replaces, in one run.
//
//   BM_Get_AtomicLoad            one relaxed atomic load of a double: the floor
//   BM_Get_Handle                Handle<double>::get on a real shared-memory block
//   BM_Get_MutexMap              std::mutex + unordered_map lookup by full path
//   BM_Get_LockedTreeWalk        recursive mutex + nested maps walked segment by segment
//   BM_Snapshot_8Keys            one consistent read of 8 keys (generation unchanged)
//   BM_Snapshot_8Keys_WriterContinuous ... while another thread rewrites one of them
//   BM_TelemetryPush             one telemetry record into the ring
//   BM_Get_Handle_NoWriter       BM_Get_Handle, each read timed (the latency baseline)
//   BM_Get_Handle_Writer1kHz     ... while another thread writes the key 1000 times a second
//   BM_Get_Handle_WriterContinuous ... while another thread writes it back to back
//
// After the runs, a table of ratios against the baselines of this same run, with the targets.
#include <benchmark/benchmark.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace {

using namespace tv::shm;

const std::string kPath = "training/optimizer/learning_rate";

// A block for the process, removed at exit.
struct BenchBlock {
  BenchBlock()
      : name("trainvisor.bench-" + std::to_string(::getpid())),
        writer(ConfigBlockWriter::open_or_create(name, {}, initial())),
        reader(ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite)) {}
  ~BenchBlock() { ConfigBlockWriter::remove(name); }

  static std::vector<Entry> initial() {
    std::vector<Entry> e = {{kPath, Value::f64(0.1)}};
    for (int i = 0; i < 8; ++i) {
      e.push_back({"training/knob/k" + std::to_string(i), Value::f64(i)});
    }
    return e;
  }

  std::string name;
  ConfigBlockWriter writer;
  ConfigBlockReader reader;
};

BenchBlock& block() {
  static BenchBlock b;
  return b;
}

void BM_Get_AtomicLoad(benchmark::State& state) {
  std::atomic<std::uint64_t> word{std::bit_cast<std::uint64_t>(0.1)};
  for (auto _ : state) {
    benchmark::DoNotOptimize(std::bit_cast<double>(word.load(std::memory_order_relaxed)));
  }
}
BENCHMARK(BM_Get_AtomicLoad);

void BM_Get_Handle(benchmark::State& state) {
  Handle<double> h = block().reader.resolve<double>(kPath);
  for (auto _ : state)
    benchmark::DoNotOptimize(h.get(0.0));
  state.counters["fallbacks"] = static_cast<double>(h.stats().fallbacks);
}
BENCHMARK(BM_Get_Handle);

void BM_Get_MutexMap(benchmark::State& state) {
  std::mutex mu;
  std::unordered_map<std::string, double> values;
  for (const Entry& e : BenchBlock::initial())
    values[e.path] = e.value.as_f64();
  for (auto _ : state) {
    std::lock_guard lock(mu);
    benchmark::DoNotOptimize(values.find(kPath)->second);
  }
}
BENCHMARK(BM_Get_MutexMap);

// What a locked local cache of a config tree does (a Python client's dict of dicts behind an
// RLock): take the lock, walk one map per path segment.
struct TreeNode {
  std::map<std::string, std::unique_ptr<TreeNode>, std::less<>> children;
  double value = 0;
};

void BM_Get_LockedTreeWalk(benchmark::State& state) {
  std::recursive_mutex mu;
  TreeNode root;
  for (const Entry& e : BenchBlock::initial()) {
    TreeNode* n = &root;
    std::string_view rest = e.path;
    while (!rest.empty()) {
      const auto slash = rest.find('/');
      const std::string seg(rest.substr(0, slash));
      auto& child = n->children[seg];
      if (!child) child = std::make_unique<TreeNode>();
      n = child.get();
      rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    }
    n->value = e.value.as_f64();
  }
  for (auto _ : state) {
    std::lock_guard lock(mu);
    const TreeNode* n = &root;
    std::string_view rest = kPath;
    while (n != nullptr && !rest.empty()) {
      const auto slash = rest.find('/');
      const auto it = n->children.find(rest.substr(0, slash));
      n = it == n->children.end() ? nullptr : it->second.get();
      rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
    }
    benchmark::DoNotOptimize(n ? n->value : 0.0);
  }
}
BENCHMARK(BM_Get_LockedTreeWalk);

Snapshot eight_knobs() {
  std::vector<SnapshotKey> keys;
  for (int i = 0; i < 8; ++i) {
    keys.push_back({"training/knob/k" + std::to_string(i), Value::f64(0)});
  }
  return block().reader.snapshot(keys);
}

void BM_Snapshot_8Keys(benchmark::State& state) {
  Snapshot s = eight_knobs();
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.read());
    benchmark::DoNotOptimize(s[7].as_f64());
  }
}
BENCHMARK(BM_Snapshot_8Keys);

// The same while another thread rewrites one of the 8 keys back to back, so nearly every read
// finds a new generation and does the full seqlock read of all 8 slots.
void BM_Snapshot_8Keys_WriterContinuous(benchmark::State& state) {
  Snapshot s = eight_knobs();
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::vector<Entry> batch = {{"training/knob/k3", Value::f64(0)}};
    for (double v = 0; !stop.load(std::memory_order_relaxed); v += 1) {
      batch[0].value = Value::f64(v);
      block().writer.apply(batch);
    }
  });
  const std::uint64_t gen0 = s.generation();
  for (auto _ : state) {
    benchmark::DoNotOptimize(s.read());
    benchmark::DoNotOptimize(s[3].as_f64());
  }
  stop = true;
  writer.join();
  state.counters["generations_seen"] = static_cast<double>(s.generation() - gen0);
  state.counters["fallbacks"] = static_cast<double>(s.stats().fallbacks);
}
BENCHMARK(BM_Snapshot_8Keys_WriterContinuous);

void BM_TelemetryPush(benchmark::State& state) {
  TelemetryWriter w = block().reader.telemetry_writer();
  TelemetryRecord r;
  r.loss = 0.5;
  r.learning_rate = 0.1;
  for (auto _ : state) {
    ++r.step;
    w.push(r);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_TelemetryPush);

// TSC ticks per nanosecond, measured once against steady_clock.
double ticks_per_ns() {
  static const double v = [] {
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::uint64_t c1 = __rdtsc();
    const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0);
    return static_cast<double>(c1 - c0) / ns.count();
  }();
  return v;
}

enum class WriterMode { kNone, k1kHz, kContinuous };

// Every read timed with the TSC; a second thread writes the key at the given pace.
void get_under_writer(benchmark::State& state, WriterMode mode) {
  BenchBlock& b = block();
  Handle<double> h = b.reader.resolve<double>(kPath);
  std::atomic<bool> stop{false};
  std::uint64_t writes = 0;
  std::thread writer;
  if (mode != WriterMode::kNone) {
    writer = std::thread([&] {
      std::vector<Entry> batch = {{kPath, Value::f64(0)}};
      auto next = std::chrono::steady_clock::now();
      while (!stop.load(std::memory_order_relaxed)) {
        batch[0].value = Value::f64(static_cast<double>(writes++));
        b.writer.apply(batch);
        if (mode == WriterMode::k1kHz) {
          next += std::chrono::milliseconds(1);
          std::this_thread::sleep_until(next);
        }
      }
    });
  }
  std::vector<std::uint32_t> ticks;
  ticks.reserve(1 << 24);
  for (auto _ : state) {
    const std::uint64_t t0 = __rdtsc();
    benchmark::DoNotOptimize(h.get(0.0));
    const std::uint64_t t1 = __rdtsc();
    if (ticks.size() < ticks.capacity()) ticks.push_back(static_cast<std::uint32_t>(t1 - t0));
  }
  stop = true;
  if (writer.joinable()) writer.join();
  const auto reads = static_cast<double>(state.iterations());
  std::sort(ticks.begin(), ticks.end());
  const auto pct = [&](double q) {
    if (ticks.empty()) return 0.0;
    return ticks[std::min(ticks.size() - 1, static_cast<std::size_t>(q * ticks.size()))] /
           ticks_per_ns();
  };
  state.counters["attempts_per_read"] = 1.0 + static_cast<double>(h.stats().retries) / reads;
  state.counters["fallbacks"] = static_cast<double>(h.stats().fallbacks);
  state.counters["p50_ns"] = pct(0.5);
  state.counters["p99_9_ns"] = pct(0.999);
  state.counters["max_ns"] = ticks.empty() ? 0.0 : ticks.back() / ticks_per_ns();
  state.counters["writes"] = static_cast<double>(writes);
}

void BM_Get_Handle_NoWriter(benchmark::State& s) {
  get_under_writer(s, WriterMode::kNone);
}
void BM_Get_Handle_Writer1kHz(benchmark::State& s) {
  get_under_writer(s, WriterMode::k1kHz);
}
void BM_Get_Handle_WriterContinuous(benchmark::State& s) {
  get_under_writer(s, WriterMode::kContinuous);
}
BENCHMARK(BM_Get_Handle_NoWriter);
BENCHMARK(BM_Get_Handle_Writer1kHz);
BENCHMARK(BM_Get_Handle_WriterContinuous);

// Prints every run as usual and remembers it for the ratio table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  struct Result {
    double ns = 0;
    std::map<std::string, double> counters;
  };
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration) continue;
      Result& out = results[r.run_name.function_name];
      out.ns = r.GetAdjustedRealTime();
      for (const auto& [k, c] : r.counters)
        out.counters[k] = c.value;
    }
  }
  std::map<std::string, Result> results;
};

void print_ratios(const std::map<std::string, RatioReporter::Result>& r) {
  const auto ns = [&](const char* n) {
    const auto it = r.find(n);
    return it == r.end() ? 0.0 : it->second.ns;
  };
  const auto counter = [&](const char* n, const char* c) {
    const auto it = r.find(n);
    if (it == r.end()) return 0.0;
    const auto jt = it->second.counters.find(c);
    return jt == it->second.counters.end() ? 0.0 : jt->second;
  };
  const double floor = ns("BM_Get_AtomicLoad"), handle = ns("BM_Get_Handle");
  if (floor <= 0 || handle <= 0) return;  // filtered runs: nothing to compare
  std::printf("\nRatios in this run (target in brackets)\n");
  const auto line = [](const char* what, double v, const char* unit, bool ok, const char* target) {
    std::printf("  %-46s %9.2f%-3s [%s] %s\n", what, v, unit, target, ok ? "ok" : "MISSED");
  };
  line("BM_Get_Handle / BM_Get_AtomicLoad", handle / floor, "x", handle / floor <= 3, "<= 3x");
  if (const double m = ns("BM_Get_MutexMap"); m > 0) {
    line("BM_Get_MutexMap / BM_Get_Handle", m / handle, "x", m / handle >= 20, ">= 20x");
  }
  if (const double t = ns("BM_Get_LockedTreeWalk"); t > 0) {
    line("BM_Get_LockedTreeWalk / BM_Get_Handle", t / handle, "x", t / handle >= 20, ">= 20x");
  }
  if (const double p = ns("BM_TelemetryPush"); p > 0) {
    line("BM_TelemetryPush", p, "ns", p <= 20, "<= 20 ns");
  }
  if (const double s = ns("BM_Snapshot_8Keys"); s > 0) {
    line("BM_Snapshot_8Keys / BM_Get_Handle", s / handle, "x", true, "info");
  }
  const double base_p999 = counter("BM_Get_Handle_NoWriter", "p99_9_ns");
  for (const char* n : {"BM_Get_Handle_Writer1kHz", "BM_Get_Handle_WriterContinuous"}) {
    if (r.find(n) == r.end() || base_p999 <= 0) continue;
    const double p = counter(n, "p99_9_ns");
    const double attempts = counter(n, "attempts_per_read");
    std::string label = std::string(n) + " p99.9 / no-writer p99.9";
    line(label.c_str(), p / base_p999, "x", p / base_p999 <= 50, "<= 50x");
    label = std::string(n) + " attempts per read";
    line(label.c_str(), attempts, "", attempts <= kMaxReadAttempts, "<= K=16");
    label = std::string(n) + " fallbacks";
    line(label.c_str(), counter(n, "fallbacks"), "", true, "counted");
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_ratios(reporter.results);
  benchmark::Shutdown();
  return 0;
}
