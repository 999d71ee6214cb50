// What tv_drift's MMD permutation test costs on one thread, against the same test in numpy run
// by this benchmark in the same run: Fashion-MNIST test images (784 pixels in [0, 1]), reference
// and current windows of disjoint images, B = 100 permutations, the median-heuristic bandwidth.
//
//   BM_Mmd_FirstTest       n = m = 1000: prepare the reference and test (mmd_test)
//   BM_Mmd_SecondTest      n = m = 1000: a prepared reference, a new current window every
//                          iteration (the cached reference side is reused)
//   BM_Mmd_SecondVsFirst   the two interleaved pair by pair: the ratio the target judges
//   BM_Mmd_Numpy           runs bench/mmd_numpy.py once on the same data with one BLAS thread:
//                          the loop form alibi-detect uses and numpy's batched form; it checks
//                          both against this library's statistic and p-value
//   BM_Mmd_FirstTest_5000  n = m = 5000, with the memory peak: the growth of the resident set's
//                          high-water mark (VmHWM, reset through /proc/self/clear_refs) over the
//                          resident set before the test
//
// Both sides are timed in CPU time (one thread: the cost of the work), the median of the
// iterations, so that other processes on a shared machine move neither side of a ratio; the wall
// times are reported beside them. The verdict table at the end (bench_result.hpp) makes main
// return 1 when a target is missed.
#include <benchmark/benchmark.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_result.hpp"
#include "trainvisor/core/idx_reader.hpp"
#include "trainvisor/drift/backend.hpp"
#include "trainvisor/drift/mmd.hpp"

namespace {

using tv::drift::Window;

constexpr std::size_t kRows = 1000, kLargeRows = 5000, kPermutations = 100;
constexpr char kImagesPath[] = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";

// The test images as rows of floats in [0, 1], in a seeded random order so that consecutive
// windows are disjoint random samples.
struct Images {
  std::vector<float> pixels;
  std::size_t rows = 0, dims = 0;
  std::string error;  // why they could not be read; empty when they were

  // `count` rows starting at row `first`, copied.
  std::vector<float> slice(std::size_t first, std::size_t count) const {
    return {pixels.begin() + static_cast<std::ptrdiff_t>(first * dims),
            pixels.begin() + static_cast<std::ptrdiff_t>((first + count) * dims)};
  }
};

const Images& images() {
  static const Images loaded = [] {
    Images im;
    tv::plugin::IdxArray idx;
    try {
      tv::read_idx_file(kImagesPath, idx);
    } catch (const std::exception& e) {
      im.error = e.what();
      return im;
    }
    if (idx.dims.size() != 3 ||
        idx.bytes.size() != std::size_t{idx.dims[0]} * idx.dims[1] * idx.dims[2]) {
      im.error = std::string(kImagesPath) + ": not a stack of uint8 images";
      return im;
    }
    const std::size_t rows = idx.dims[0], dims = std::size_t{idx.dims[1]} * idx.dims[2];
    std::vector<std::size_t> order(rows);
    for (std::size_t i = 0; i < rows; ++i)
      order[i] = i;
    std::shuffle(order.begin(), order.end(), std::mt19937_64(2012));
    im.pixels.resize(rows * dims);
    for (std::size_t r = 0; r < rows; ++r) {
      for (std::size_t j = 0; j < dims; ++j)
        im.pixels[r * dims + j] = idx.bytes[order[r] * dims + j] / 255.0f;
    }
    im.rows = rows;
    im.dims = dims;
    return im;
  }();
  return loaded;
}

Window window(const std::vector<float>& v, std::size_t dims) {
  return {v, v.size() / dims, dims};
}

tv::drift::MmdOptions options() {
  tv::drift::MmdOptions o;
  o.permutations = kPermutations;
  o.seed = 7;
  return o;
}

// False, with the benchmark skipped, when the images are missing or too few.
bool have_images(benchmark::State& state, std::size_t rows_needed) {
  const Images& im = images();
  if (!im.error.empty()) {
    state.SkipWithError(im.error.c_str());
    return false;
  }
  if (im.rows < rows_needed) {
    state.SkipWithError(
        (std::string(kImagesPath) + ": fewer images than the windows need").c_str());
    return false;
  }
  return true;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

double process_cpu_ms() {
  timespec t{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

struct Timing {
  double cpu_ms, wall_ms;
};

template <class F>
Timing time_once(F body) {
  const double cpu_start = process_cpu_ms();
  const auto start = std::chrono::steady_clock::now();
  body();
  const auto wall = std::chrono::steady_clock::now() - start;
  return {process_cpu_ms() - cpu_start, std::chrono::duration<double, std::milli>(wall).count()};
}

// Times the body of each iteration and reports the medians of its CPU time (median_ms) and of
// its wall time (wall_median_ms).
template <class F>
void timed_loop(benchmark::State& state, F body) {
  std::vector<double> cpu, wall;
  for (auto _ : state) {
    const Timing t = time_once(body);
    cpu.push_back(t.cpu_ms);
    wall.push_back(t.wall_ms);
  }
  state.counters["median_ms"] = median(cpu);
  state.counters["wall_median_ms"] = median(wall);
}

// The reference window and kWindows current windows, all of disjoint images.
struct Windows {
  static constexpr std::size_t kWindows = 8;
  std::size_t dims = images().dims;
  std::vector<float> x = images().slice(0, kRows);
  std::vector<std::vector<float>> current;
  Windows() {
    for (std::size_t w = 1; w <= kWindows; ++w)
      current.push_back(images().slice(w * kRows, kRows));
  }
  Window reference() const { return window(x, dims); }
  Window current_window(std::size_t i) const { return window(current[i % kWindows], dims); }
};

void BM_Mmd_FirstTest(benchmark::State& state) {
  if (!have_images(state, (Windows::kWindows + 1) * kRows)) return;
  const Windows w;
  timed_loop(state, [&] {
    benchmark::DoNotOptimize(tv::drift::mmd_test(w.reference(), w.current_window(0), options()));
  });
}
BENCHMARK(BM_Mmd_FirstTest)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

void BM_Mmd_SecondTest(benchmark::State& state) {
  if (!have_images(state, (Windows::kWindows + 1) * kRows)) return;
  const Windows w;
  const tv::drift::MmdReference reference(w.reference(), options());
  reference.test(w.current_window(0), options());  // the first test, outside the timing
  std::size_t next = 1;
  timed_loop(state, [&] {
    benchmark::DoNotOptimize(reference.test(w.current_window(next++), options()));
  });
}
BENCHMARK(BM_Mmd_SecondTest)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(3.0);

// The two tests interleaved, each going first in every other pair, so that a change in the
// machine's load hits both alike; the ratio is the median of the pairs' ratios.
void BM_Mmd_SecondVsFirst(benchmark::State& state) {
  if (!have_images(state, (Windows::kWindows + 1) * kRows)) return;
  const Windows w;
  const tv::drift::MmdReference reference(w.reference(), options());
  reference.test(w.current_window(0), options());
  std::vector<double> first, second, ratio;
  std::size_t pair = 0;
  for (auto _ : state) {
    const auto run_first = [&] {
      return time_once([&] {
        benchmark::DoNotOptimize(
            tv::drift::mmd_test(w.reference(), w.current_window(pair), options()));
      });
    };
    const auto run_second = [&] {
      return time_once(
          [&] { benchmark::DoNotOptimize(reference.test(w.current_window(pair + 1), options())); });
    };
    Timing f{}, s{};
    if (pair % 2 == 0) {
      f = run_first();
      s = run_second();
    } else {
      s = run_second();
      f = run_first();
    }
    first.push_back(f.cpu_ms);
    second.push_back(s.cpu_ms);
    ratio.push_back(s.cpu_ms / f.cpu_ms);
    ++pair;
  }
  state.counters["first_ms"] = median(first);
  state.counters["second_ms"] = median(second);
  state.counters["ratio"] = median(ratio);
}
BENCHMARK(BM_Mmd_SecondVsFirst)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(4.0);

template <class T>
void write_raw(const std::filesystem::path& path, const std::vector<T>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()),
            static_cast<std::streamsize>(v.size() * sizeof(T)));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Runs the numpy script on `dir`'s inputs; returns its JSON, or throws with its complaint.
nlohmann::json run_numpy(const std::filesystem::path& dir, std::size_t d) {
  const std::string command =
      "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 '" TV_BENCH_DIR
      "/mmd_numpy.py' --dir '" +
      dir.string() + "' --n " + std::to_string(kRows) + " --m " + std::to_string(kRows) + " --d " +
      std::to_string(d) + " --permutations " + std::to_string(kPermutations) + " --expect '" +
      (dir / "expect.f64").string() + "' 2>'" + (dir / "stderr").string() + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot start /usr/bin/python3");
  std::string out;
  char buf[4096];
  for (std::size_t got; (got = std::fread(buf, 1, sizeof buf, pipe)) > 0;)
    out.append(buf, got);
  const int status = ::pclose(pipe);
  if (status != 0) {
    std::ifstream err(dir / "stderr");
    std::stringstream why;
    why << err.rdbuf();
    throw std::runtime_error("mmd_numpy.py failed (status " + std::to_string(status) +
                             "): " + why.str());
  }
  return nlohmann::json::parse(out);
}

void BM_Mmd_Numpy(benchmark::State& state) {
  if (!have_images(state, (Windows::kWindows + 1) * kRows)) return;
  const Windows w;  // the first test's windows
  const std::size_t d = w.dims;
  const std::vector<float>&x = w.x, &y = w.current[0];
  const tv::drift::MmdResult ours = tv::drift::mmd_test(window(x, d), window(y, d), options());
  std::vector<double> expect = {ours.mmd2, ours.p_value};
  expect.insert(expect.end(), ours.permuted.begin(), ours.permuted.end());

  char pattern[] = "/tmp/tv-bench-mmd.XXXXXX";
  if (::mkdtemp(pattern) == nullptr) {
    state.SkipWithError("cannot create a temporary directory");
    return;
  }
  const std::filesystem::path dir = pattern;
  nlohmann::json result;
  std::string error;
  try {
    write_raw(dir / "x.f32", x);
    write_raw(dir / "y.f32", y);
    write_raw(dir / "membership.u8",
              tv::drift::permutation_membership(2 * kRows, kRows, kPermutations, options().seed));
    write_raw(dir / "expect.f64", expect);
    for (auto _ : state)
      result = run_numpy(dir, d);
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::filesystem::remove_all(dir);
  if (!error.empty()) {
    state.SkipWithError(error.c_str());
    return;
  }
  for (const char* form : {"loop", "batched"}) {
    state.counters[std::string(form) + "_ms"] = result[form]["ms"].get<double>();
    state.counters[std::string(form) + "_wall_ms"] = result[form]["wall_ms"].get<double>();
  }
  state.counters["mmd2"] = ours.mmd2;
  state.counters["p_value"] = ours.p_value;
}
BENCHMARK(BM_Mmd_Numpy)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);

// A field of /proc/self/status in KiB (VmRSS, VmHWM), or -1.
double status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stod(line.substr(field.size() + 1));
  }
  return -1;
}

void BM_Mmd_FirstTest_5000(benchmark::State& state) {
  if (!have_images(state, 2 * kLargeRows)) return;
  const std::size_t d = images().dims;
  const std::vector<float> x = images().slice(0, kLargeRows),
                           y = images().slice(kLargeRows, kLargeRows);
  // Writing 5 to clear_refs resets the high-water mark to the current resident set.
  bool reset = static_cast<bool>(std::ofstream("/proc/self/clear_refs") << "5");
  const double before = status_kib("VmRSS");
  timed_loop(state, [&] {
    benchmark::DoNotOptimize(tv::drift::mmd_test(window(x, d), window(y, d), options()));
  });
  const double peak = status_kib("VmHWM");
  if (!reset || before < 0 || peak < 0) {
    state.SkipWithError("cannot reset or read the resident set's high-water mark");
    return;
  }
  state.counters["peak_mib"] = (peak - before) / 1024.0;
}
BENCHMARK(BM_Mmd_FirstTest_5000)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

class CounterReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      for (const auto& [k, c] : r.counters)
        counters[r.run_name.function_name + "/" + k] = c.value;
    }
  }
  double counter(const std::string& name) const {
    const auto it = counters.find(name);
    return it == counters.end() ? tv::bench::kNotMeasured : it->second;
  }
  std::map<std::string, double> counters;  // "benchmark/counter"
};

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  tv::drift::set_cpu_threads(1);
  std::printf("drift backend: %s\n", tv::drift::backend().description.c_str());
  CounterReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const auto c = [&](const char* name) { return reporter.counter(name); };
  const double first = c("BM_Mmd_FirstTest/median_ms"), second = c("BM_Mmd_SecondTest/median_ms");
  const double loop = c("BM_Mmd_Numpy/loop_ms"), batched = c("BM_Mmd_Numpy/batched_ms");

  tv::bench::Verdicts v("MMD permutation test, n = m = 1000, d = 784, B = 100, one thread");
  v.info("first test (prepare + test), CPU", first, " ms", 1);
  v.info("second test of an unchanged reference, CPU", second, " ms", 1);
  v.info("numpy loop form (alibi-detect's), CPU", loop, " ms", 1);
  v.info("numpy batched form, CPU", batched, " ms", 1);
  v.info("first test, wall", c("BM_Mmd_FirstTest/wall_median_ms"), " ms", 1);
  v.info("second test, wall", c("BM_Mmd_SecondTest/wall_median_ms"), " ms", 1);
  v.info("numpy loop form, wall", c("BM_Mmd_Numpy/loop_wall_ms"), " ms", 1);
  v.info("numpy batched form, wall", c("BM_Mmd_Numpy/batched_wall_ms"), " ms", 1);
  v.at_least("numpy loop form / first test", loop / first, "x", 5.0);
  v.more_than("numpy batched form / first test", batched / first, "x", 1.0);
  v.info("second test / first test, run apart", second / first, "", 2);
  v.info("interleaved first test, CPU", c("BM_Mmd_SecondVsFirst/first_ms"), " ms", 1);
  v.info("interleaved second test, CPU", c("BM_Mmd_SecondVsFirst/second_ms"), " ms", 1);
  v.at_most("second test / first test, interleaved (median of pairs)",
            c("BM_Mmd_SecondVsFirst/ratio"), "", 0.60);
  v.info("n = m = 5000 first test, CPU", c("BM_Mmd_FirstTest_5000/median_ms"), " ms", 0);
  v.info("n = m = 5000 first test, wall", c("BM_Mmd_FirstTest_5000/wall_median_ms"), " ms", 0);
  v.info("n = m = 5000 first test, memory peak over the RSS before it",
         c("BM_Mmd_FirstTest_5000/peak_mib"), " MiB", 0);
  const int rc = v.finish();
  benchmark::Shutdown();
  return rc;
}
