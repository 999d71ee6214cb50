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
// After the runs, a table of ratios against the baselines of this same run, with the targets
// (bench_result.hpp); main returns 1 when one is missed.
#include <benchmark/benchmark.h>
#include <sched.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bench_result.hpp"
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

// Keeps the calling thread on one CPU for its lifetime and restores its affinity after. With a
// writer thread, where the two threads run decides what is measured: on one core they take turns
// and a read never meets a write; on two the key's cache line moves between cores on every
// write. The benchmarks with a writer pin the reader and the writer to two different CPUs, so
// that every run measures the second (unpinned, the scheduler picked either from run to run).
class PinnedTo {
 public:
  explicit PinnedTo(int cpu) {
    pinned_ = cpu >= 0 && ::sched_getaffinity(0, sizeof saved_, &saved_) == 0;
    if (!pinned_) return;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
  }
  ~PinnedTo() {
    if (pinned_) ::sched_setaffinity(0, sizeof saved_, &saved_);
  }
  PinnedTo(const PinnedTo&) = delete;
  PinnedTo& operator=(const PinnedTo&) = delete;
  bool pinned() const { return pinned_; }

 private:
  cpu_set_t saved_;
  bool pinned_ = false;
};

// The first two CPUs this process may run on: {reader, writer}, or {-1, -1} with fewer than two.
std::pair<int, int> reader_writer_cpus() {
  cpu_set_t set;
  if (::sched_getaffinity(0, sizeof set, &set) != 0) return {-1, -1};
  int found[2] = {-1, -1};
  for (int cpu = 0, n = 0; cpu < CPU_SETSIZE && n < 2; ++cpu)
    if (CPU_ISSET(cpu, &set)) found[n++] = cpu;
  return found[1] < 0 ? std::pair{-1, -1} : std::pair{found[0], found[1]};
}

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
  const auto [reader_cpu, writer_cpu] = reader_writer_cpus();
  const PinnedTo reader_pin(reader_cpu);
  std::atomic<bool> stop{false};
  std::thread writer([&, writer_cpu = writer_cpu] {
    const PinnedTo writer_pin(writer_cpu);
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
  state.counters["pinned"] = reader_pin.pinned() ? 1 : 0;
  state.counters["generations_seen"] = static_cast<double>(s.generation() - gen0);
  state.counters["fallbacks"] = static_cast<double>(s.stats().fallbacks);
  state.counters["fallbacks_per_M"] =
      1e6 * static_cast<double>(s.stats().fallbacks) / static_cast<double>(state.iterations());
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

// The TSC around one read. RDTSC alone is not ordered with the loads around it: the second one
// can retire before the read's load has completed, and the window would then time the timer
// only. The fences keep the read inside the window (LFENCE is dispatch-serializing on the x86
// cores Linux runs on; RDTSCP waits for earlier loads).
std::uint64_t tsc_begin() noexcept {
  _mm_lfence();
  const std::uint64_t t = __rdtsc();
  _mm_lfence();
  return t;
}
std::uint64_t tsc_end() noexcept {
  unsigned aux = 0;
  const std::uint64_t t = __rdtscp(&aux);
  _mm_lfence();
  return t;
}

enum class WriterMode { kNone, k1kHz, kContinuous };

// How many attempts each read took: reads[k] is the number of good reads that took k attempts
// (1..kMaxReadAttempts); fallbacks are the reads that gave up after kMaxReadAttempts.
struct AttemptHistogram {
  std::array<std::uint64_t, kMaxReadAttempts + 1> reads{};
  std::uint64_t fallbacks = 0;

  std::uint64_t total() const {
    std::uint64_t n = fallbacks;
    for (const std::uint64_t c : reads)
      n += c;
    return n;
  }
  // The attempts of the read at quantile q, a fallback counting as kMaxReadAttempts attempts.
  double quantile(double q) const {
    const double rank = q * static_cast<double>(total());
    std::uint64_t below = 0;
    for (unsigned k = 1; k <= kMaxReadAttempts; ++k) {
      below += reads[k];
      if (static_cast<double>(below) >= rank) return k;
    }
    return kMaxReadAttempts;
  }
  double max() const {
    if (fallbacks > 0) return kMaxReadAttempts;
    for (unsigned k = kMaxReadAttempts; k >= 1; --k)
      if (reads[k] > 0) return k;
    return 0;
  }
  double per_million(std::uint64_t n) const {
    return total() == 0 ? 0.0 : 1e6 * static_cast<double>(n) / static_cast<double>(total());
  }
};

// Every read timed with the TSC and its attempts counted; a second thread writes the key at the
// given pace.
void get_under_writer(benchmark::State& state, WriterMode mode) {
  BenchBlock& b = block();
  Handle<double> h = b.reader.resolve<double>(kPath);
  std::atomic<bool> stop{false};
  std::uint64_t writes = 0;
  const auto [reader_cpu, writer_cpu] = reader_writer_cpus();
  const PinnedTo reader_pin(reader_cpu);
  std::thread writer;
  if (mode != WriterMode::kNone) {
    writer = std::thread([&, writer_cpu = writer_cpu] {
      const PinnedTo writer_pin(writer_cpu);
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
  AttemptHistogram attempts;
  for (auto _ : state) {
    // The handle's counters are read outside the timed window: they say how this read went.
    const std::uint64_t retries0 = h.stats().retries, fallbacks0 = h.stats().fallbacks;
    const std::uint64_t t0 = tsc_begin();
    benchmark::DoNotOptimize(h.get(0.0));
    const std::uint64_t t1 = tsc_end();
    if (ticks.size() < ticks.capacity()) ticks.push_back(static_cast<std::uint32_t>(t1 - t0));
    if (h.stats().fallbacks != fallbacks0) {
      ++attempts.fallbacks;
    } else {
      ++attempts.reads[1 + h.stats().retries - retries0];
    }
  }
  stop = true;
  if (writer.joinable()) writer.join();
  std::sort(ticks.begin(), ticks.end());
  const auto pct = [&](double q) {
    if (ticks.empty()) return 0.0;
    return ticks[std::min(ticks.size() - 1, static_cast<std::size_t>(q * ticks.size()))] /
           ticks_per_ns();
  };
  state.counters["attempts_p99"] = attempts.quantile(0.99);
  state.counters["attempts_p99_9"] = attempts.quantile(0.999);
  state.counters["attempts_p99_99"] = attempts.quantile(0.9999);
  state.counters["attempts_max"] = attempts.max();
  state.counters["retried_per_M"] = attempts.per_million(attempts.total() - attempts.reads[1]);
  state.counters["fallbacks_per_M"] = attempts.per_million(attempts.fallbacks);
  state.counters["fallbacks"] = static_cast<double>(attempts.fallbacks);
  state.counters["p50_ns"] = pct(0.5);
  state.counters["p99_ns"] = pct(0.99);
  state.counters["p99_9_ns"] = pct(0.999);
  state.counters["max_ns"] = ticks.empty() ? 0.0 : ticks.back() / ticks_per_ns();
  state.counters["writes"] = static_cast<double>(writes);
  state.counters["pinned"] = reader_pin.pinned() ? 1 : 0;
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

// Prints every run as usual and remembers it for the verdict table. The single-threaded
// benchmarks are compared on CPU time: the machine is shared, and time the thread spent
// preempted by another process is no cost of the code under test.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  struct Result {
    double cpu_ns = 0;
    std::map<std::string, double> counters;
  };
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      Result& out = results[r.run_name.function_name];
      out.cpu_ns = r.GetAdjustedCPUTime();
      for (const auto& [k, c] : r.counters)
        out.counters[k] = c.value;
    }
  }
  std::map<std::string, Result> results;
};

int judge(const std::map<std::string, RatioReporter::Result>& r) {
  const auto ns = [&](const char* n) {
    const auto it = r.find(n);
    return it == r.end() ? tv::bench::kNotMeasured : it->second.cpu_ns;
  };
  const auto counter = [&](const std::string& n, const char* c) {
    const auto it = r.find(n);
    if (it == r.end()) return tv::bench::kNotMeasured;
    const auto jt = it->second.counters.find(c);
    return jt == it->second.counters.end() ? tv::bench::kNotMeasured : jt->second;
  };
  tv::bench::Verdicts v("The hot path against its baselines in this run, CPU time per read");
  const double floor = ns("BM_Get_AtomicLoad"), handle = ns("BM_Get_Handle");
  v.info("BM_Get_AtomicLoad (the floor)", floor, " ns", 3);
  v.info("BM_Get_Handle", handle, " ns", 3);
  v.at_most("BM_Get_Handle / BM_Get_AtomicLoad", handle / floor, "x", 3);
  v.at_least("BM_Get_MutexMap / BM_Get_Handle", ns("BM_Get_MutexMap") / handle, "x", 20);
  v.at_least("BM_Get_LockedTreeWalk / BM_Get_Handle", ns("BM_Get_LockedTreeWalk") / handle, "x",
             20);
  v.at_most("BM_TelemetryPush", ns("BM_TelemetryPush"), " ns", 20);
  v.info("BM_Snapshot_8Keys / BM_Get_Handle", ns("BM_Snapshot_8Keys") / handle, "x");
  v.at_most("BM_Snapshot_8Keys_WriterContinuous fallbacks per M reads",
            counter("BM_Snapshot_8Keys_WriterContinuous", "fallbacks_per_M"), "", 1000, 1);
  const double base_p999 = counter("BM_Get_Handle_NoWriter", "p99_9_ns");
  // Attempts per read. A write keeps its slot odd for a few stores, so a read that meets one
  // normally succeeds on its next attempt; a read runs out of attempts only while the writer is
  // descheduled mid-write, and then every read in that time falls back (a few thousand per
  // preemption). The 1 kHz writer is the real load (people, the config agent): there a retried
  // read is rare. The continuous writer is the stress case: its fallback target admits a couple
  // of preemptions of the writer by other processes per run.
  struct Load {
    const char* name;
    double max_retried_per_m;  // negative: reported, no target
    double max_fallbacks_per_m;
  };
  for (const Load& l : {Load{"BM_Get_Handle_Writer1kHz", 10, 10},
                        Load{"BM_Get_Handle_WriterContinuous", -1, 1000}}) {
    const std::string n = l.name;
    v.at_most(n + " p99.9 / no-writer p99.9", counter(n, "p99_9_ns") / base_p999, "x", 50);
    v.at_most(n + " attempts, p99", counter(n, "attempts_p99"), "", 1, 0);
    v.at_most(n + " attempts, p99.9", counter(n, "attempts_p99_9"), "", 2, 0);
    v.info(n + " attempts, p99.99", counter(n, "attempts_p99_99"), "", 0);
    v.info(n + " attempts, max", counter(n, "attempts_max"), "", 0);
    if (l.max_retried_per_m < 0) {
      v.info(n + " retried reads per M", counter(n, "retried_per_M"), "", 1);
    } else {
      v.at_most(n + " retried reads per M", counter(n, "retried_per_M"), "", l.max_retried_per_m,
                1);
    }
    v.at_most(n + " fallbacks per M reads", counter(n, "fallbacks_per_M"), "",
              l.max_fallbacks_per_m, 1);
  }
  return v.finish();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const int rc = judge(reporter.results);
  benchmark::Shutdown();
  return rc;
}
