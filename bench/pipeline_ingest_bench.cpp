// A pipeline's ingest against the floor of what it does, in one run, over loopback.
//
//   BM_Upload_Raw   the same bytes as the ingest below, batch after batch, uploaded to the
//                   coordinator's artifact store (streamed, hashed, written, fsynced): moving and
//                   storing the bytes durably, without decoding them
//   BM_Ingest       POST /v1/pipeline/NAME/samples of batches of 1000 Fashion-MNIST-sized samples
//                   (784 float32 features, an int64 label and timestamp each: 3.1 MiB a batch),
//                   each decoded, checked, sealed as a segment (temp file, fsync, rename,
//                   directory fsync, index row with synchronous=FULL) and handed to the trigger
//
// Both run on one coordinator of the same data directory, on the same encoded batches, one
// client, one request at a time (what a client that waits for its acknowledgement sees). The
// trigger (data_count, every 10^9 samples) never fires, so no training competes. Reported:
// samples/s and MiB/s of each, and ingest / raw upload.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>

#include "bench_result.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/api/paths.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tv;
using Clock = std::chrono::steady_clock;

const fs::path kDir = fs::temp_directory_path() / ("tv-ingest-bench-" + std::to_string(::getpid()));
constexpr int kBatches = 40;
constexpr std::size_t kRows = 1000;
constexpr std::int64_t kDims = 784;

std::map<std::string, double> results;

// kBatches encoded batches of random pixels, in stream order.
const std::vector<std::string>& batches() {
  static const std::vector<std::string> out = [] {
    std::vector<std::string> b;
    std::mt19937 gen(7);
    std::uniform_real_distribution<float> pixel(0, 1);
    std::int64_t t = 1'700'000'000'000'000'000;
    for (int i = 0; i < kBatches; ++i) {
      fleet::pipelines::SampleBatchData d;
      d.sample_shape = {kDims};
      d.rows = kRows;
      d.features.resize(kRows * kDims);
      for (float& v : d.features)
        v = pixel(gen);
      for (std::size_t r = 0; r < kRows; ++r) {
        d.labels.push_back(static_cast<std::int64_t>(r % 10));
        d.time_ns.push_back(t++);
      }
      b.push_back(fleet::pipelines::encode_batch(d));
    }
    return b;
  }();
  return out;
}

double mib_of_batches() {
  double bytes = 0;
  for (const std::string& b : batches())
    bytes += static_cast<double>(b.size());
  return bytes / (1 << 20);
}

struct Fleet {
  std::unique_ptr<fleet::Coordinator> coordinator;
  Fleet() {
    fs::remove_all(kDir);
    fs::create_directories(kDir);
    std::ofstream(kDir / "fleet.toml")
        << "[[jobs]]\nname = \"upload\"\nmodel = \"tiny\"\n"
           "[[pipelines]]\nname = \"bench\"\nmodel = \"tiny\"\n[pipelines.stream]\nshape = ["
        << kDims << "]\nclasses = 10\n[pipelines.trigger]\nplugin = \"data_count\"\n"
        << "every = 1000000000\n";
    fleet::CoordinatorOptions o;
    o.data_dir = (kDir / "data").string();
    o.manifest_path = (kDir / "fleet.toml").string();
    o.operator_token = "op";
    o.worker_token = "wk";
    o.ingest_token = "in";
    o.http.max_body_bytes = std::size_t{8} << 20;
    coordinator = std::make_unique<fleet::Coordinator>(o);
  }
  ~Fleet() {
    coordinator.reset();
    fs::remove_all(kDir);
  }
};

Fleet& fleet_once() {
  static Fleet f;
  return f;
}

void BM_Upload_Raw(benchmark::State& state) {
  Fleet& f = fleet_once();
  fleet::api::CoordinatorClientOptions co;
  co.http = http::ClientOptions{f.coordinator->url(), "", std::chrono::seconds(60)};
  co.worker_token = "wk";
  fleet::api::CoordinatorClient client(co);
  const auto enrolled = client.enrol_self("bench");
  if (!enrolled) return state.SkipWithError("the bench host could not enrol");
  client.set_host_credential(enrolled->credential);
  fleet::HostCapability cap;
  cap.cores = 1;
  cap.ram_gib = 1.0;
  const auto claim = client.claim({"bench", cap});
  if (!claim || !claim->job) return state.SkipWithError("the upload job could not be claimed");
  // Written to files first: an upload streams a file, as a host sends its bundle.
  std::vector<std::pair<fs::path, std::string>> files;
  for (std::size_t i = 0; i < batches().size(); ++i) {
    const fs::path p = kDir / ("batch-" + std::to_string(i));
    std::ofstream(p, std::ios::binary) << batches()[i];
    files.emplace_back(p, fleet::sha256_hex(batches()[i]));
  }
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (std::size_t i = 0; i < files.size(); ++i) {
      const auto r = client.upload(claim->job->id, "batch-" + std::to_string(i),
                                   files[i].first.string(), files[i].second, claim->lease_token);
      if (!r) return state.SkipWithError(("upload refused: " + r.error().error).c_str());
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    results["raw_mib_s"] = mib_of_batches() / s;
    results["raw_samples_s"] = kBatches * static_cast<double>(kRows) / s;
  }
  state.counters["MiB_per_s"] = results["raw_mib_s"];
}
BENCHMARK(BM_Upload_Raw)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Ingest(benchmark::State& state) {
  Fleet& f = fleet_once();
  http::Client client(http::ClientOptions{f.coordinator->url(), "", std::chrono::seconds(60)});
  const std::string target = fleet::api::target(fleet::api::kPipelineSamples, {"bench"});
  const std::vector<std::pair<std::string, std::string>> headers = {
      {std::string(fleet::api::kIngestTokenHeader), "in"}};
  for (auto _ : state) {
    const auto t0 = Clock::now();
    for (const std::string& b : batches()) {
      const http::Response r = client.request("POST", target, b, headers);
      if (r.status != 200) return state.SkipWithError(("ingest refused: " + r.body).c_str());
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    results["ingest_mib_s"] = mib_of_batches() / s;
    results["ingest_samples_s"] = kBatches * static_cast<double>(kRows) / s;
  }
  state.counters["MiB_per_s"] = results["ingest_mib_s"];
}
BENCHMARK(BM_Ingest)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

double result(const char* name) {
  const auto it = results.find(name);
  return it == results.end() ? tv::bench::kNotMeasured : it->second;
}

int judge() {
  tv::bench::Verdicts v("Pipeline ingest against a raw upload of the same bytes, in this run");
  v.info("raw upload, samples/s", result("raw_samples_s"), "", 0);
  v.info("raw upload, MiB/s", result("raw_mib_s"), "", 1);
  v.info("ingest, samples/s", result("ingest_samples_s"), "", 0);
  v.info("ingest, MiB/s", result("ingest_mib_s"), "", 1);
  v.info("ingest / raw upload", 100 * result("ingest_mib_s") / result("raw_mib_s"), "%", 1);
  return v.finish();
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return judge();
}
