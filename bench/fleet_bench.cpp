// The coordinator against the floor of what it wraps, in one run.
//
//   BM_Claim_RawSqlite     one claim as a bare SQLite transaction on the queue's own schema
//                          (BEGIN IMMEDIATE; SELECT the next pending job; UPDATE it; COMMIT), in
//                          a loop: the floor
//   BM_Claim_Http32        claims over HTTP from 32 concurrent clients through the coordinator
//                          (eligibility, lease token, JSON), counting double claims
//   BM_Upload_ShaCopy      sha256sum of a 1 GiB file, then a copy of it: the floor
//   BM_Upload_Http         the same file uploaded to the coordinator (streamed, hashed on the
//                          fly, stored), with the process's resident memory sampled throughout
//
// Each timed variant runs once (Iterations(1)): the work inside is large and the ratio is what
// is reported. The queue is the coordinator's own, on its default durability (synchronous=FULL).
#include <benchmark/benchmark.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/manifest.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tv;
using Clock = std::chrono::steady_clock;

const fs::path kDir = fs::temp_directory_path() / ("tv-fleet-bench-" + std::to_string(::getpid()));
constexpr int kJobs = 2000;

std::map<std::string, double> results;  // name -> value, for the ratio table

void write_manifest(const fs::path& path, int jobs) {
  std::ofstream m(path);
  for (int i = 0; i < jobs; ++i)
    m << "[[jobs]]\nname = \"job-" << i << "\"\nmodel = \"tiny\"\nseed = " << i << "\n";
}

std::unique_ptr<fleet::Coordinator> coordinator(const std::string& name, int jobs) {
  const fs::path dir = kDir / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  write_manifest(dir / "fleet.toml", jobs);
  fleet::CoordinatorOptions o;
  o.data_dir = (dir / "data").string();
  o.manifest_path = (dir / "fleet.toml").string();
  o.operator_token = "op";
  o.worker_token = "wk";
  o.max_artifact_bytes = std::uint64_t{2} << 30;
  return std::make_unique<fleet::Coordinator>(o);
}

void BM_Claim_RawSqlite(benchmark::State& state) {
  // The coordinator creates the schema and loads the jobs, then steps aside.
  { auto c = coordinator("raw", kJobs); }
  sqlite3* db = nullptr;
  sqlite3_open((kDir / "raw" / "data" / "queue.sqlite").c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nullptr, nullptr, nullptr);
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* update = nullptr;
  sqlite3_prepare_v2(
      db, "SELECT id FROM jobs WHERE status='pending' ORDER BY priority DESC, seq LIMIT 1", -1,
      &select, nullptr);
  sqlite3_prepare_v2(
      db,
      "UPDATE jobs SET status='claimed', attempt=attempt+1, worker='raw', lease_token=?, "
      "lease_expires_ms=?, claimed_ms=?, heartbeat_ms=?, updated_ms=? WHERE id=? AND "
      "status='pending'",
      -1, &update, nullptr);
  int claimed = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    while (true) {
      sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr);
      sqlite3_reset(select);
      if (sqlite3_step(select) != SQLITE_ROW) {
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        break;
      }
      const std::string id(reinterpret_cast<const char*>(sqlite3_column_text(select, 0)));
      sqlite3_reset(update);
      sqlite3_bind_text(update, 1, "0123456789abcdef0123456789abcdef", -1, SQLITE_STATIC);
      for (int i = 2; i <= 5; ++i)
        sqlite3_bind_int64(update, i, 1);
      sqlite3_bind_text(update, 6, id.c_str(), -1, SQLITE_TRANSIENT);
      sqlite3_step(update);
      claimed += sqlite3_changes(db);
      sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    }
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["claims_per_s"] = claimed / secs;
    results["raw"] = claimed / secs;
  }
  state.counters["claimed"] = claimed;
  sqlite3_finalize(select);
  sqlite3_finalize(update);
  sqlite3_close(db);
}
BENCHMARK(BM_Claim_RawSqlite)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Claim_Http32(benchmark::State& state) {
  auto c = coordinator("http", kJobs);
  std::mutex mu;
  std::multiset<std::string> ids;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int k = 0; k < 32; ++k) {
      clients.emplace_back([&, k] {
        http::Client client(http::ClientOptions{c->url(), {}, std::chrono::seconds(60)});
        const nlohmann::json body = {{"worker", "bench-" + std::to_string(k)},
                                     {"capability", {{"cores", 1}, {"ram_gib", 1.0}}}};
        while (true) {
          const auto r =
              client.request("POST", "/v1/job/claim", body.dump(), {{"X-Worker-Token", "wk"}});
          const auto j = r.json_body();
          if (r.status != 200 || j["job"].is_null()) return;
          std::lock_guard lock(mu);
          ids.insert(j["job"]["id"].get<std::string>());
        }
      });
    }
    for (auto& t : clients)
      t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["claims_per_s"] = static_cast<double>(ids.size()) / secs;
    results["http"] = static_cast<double>(ids.size()) / secs;
  }
  const std::set<std::string> unique(ids.begin(), ids.end());
  state.counters["claimed"] = static_cast<double>(ids.size());
  state.counters["double_claims"] = static_cast<double>(ids.size() - unique.size());
  results["double_claims"] = static_cast<double>(ids.size() - unique.size());
  results["http_claimed"] = static_cast<double>(unique.size());
}
BENCHMARK(BM_Claim_Http32)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

const fs::path kBlob = kDir / "blob.bin";
constexpr std::uint64_t kBlobBytes = std::uint64_t{1} << 30;

void make_blob() {
  if (fs::exists(kBlob) && fs::file_size(kBlob) == kBlobBytes) return;
  fs::create_directories(kDir);
  std::ofstream out(kBlob, std::ios::binary);
  std::vector<std::uint64_t> chunk(1 << 17);  // 1 MiB of varying words
  std::uint64_t x = 88172645463325252ULL;
  for (std::uint64_t written = 0; written < kBlobBytes; written += chunk.size() * 8) {
    for (auto& w : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    out.write(reinterpret_cast<const char*>(chunk.data()),
              static_cast<std::streamsize>(chunk.size() * 8));
  }
}

double rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

void BM_Upload_ShaCopy(benchmark::State& state) {
  make_blob();
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const std::string cmd = "sha256sum " + kBlob.string() + " > /dev/null && cp " + kBlob.string() +
                            " " + (kDir / "copy.bin").string() + " && sync -f " +
                            (kDir / "copy.bin").string();
    if (std::system(cmd.c_str()) != 0) state.SkipWithError("sha256sum or cp failed");
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["MiB_per_s"] = 1024.0 / secs;
    results["copy"] = 1024.0 / secs;
  }
  fs::remove(kDir / "copy.bin");
}
BENCHMARK(BM_Upload_ShaCopy)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Upload_Http(benchmark::State& state) {
  make_blob();
  auto c = coordinator("upload", 1);
  http::Client client(http::ClientOptions{c->url(), {}, std::chrono::seconds(120)});
  const auto claim =
      client
          .request("POST", "/v1/job/claim",
                   nlohmann::json{{"worker", "w"}, {"capability", {{"cores", 1}, {"ram_gib", 1.0}}}}
                       .dump(),
                   {{"X-Worker-Token", "wk"}})
          .json_body();
  // The digest is declared up front, as a host does; computing it is part of the host's work,
  // not of the transfer being compared, so it is done before the clock starts.
  std::string digest;
  {
    FILE* p = ::popen(("sha256sum " + kBlob.string()).c_str(), "r");
    char buf[65] = {};
    if (std::fread(buf, 1, 64, p) != 64) state.SkipWithError("sha256sum failed");
    ::pclose(p);
    digest = buf;
  }
  std::atomic<bool> done{false};
  double base = rss_mib(), peak = base;
  std::thread sampler([&] {
    while (!done) {
      peak = std::max(peak, rss_mib());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const auto r = client.send_file(
        "PUT", "/v1/job/" + claim["job"]["id"].get<std::string>() + "/artifact/blob.bin",
        kBlob.string(),
        {{"X-Worker-Token", "wk"},
         {"X-Lease-Token", claim["lease_token"].get<std::string>()},
         {"X-Content-SHA256", digest}});
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (r.status != 200) state.SkipWithError(("upload refused: " + r.body).c_str());
    state.counters["MiB_per_s"] = 1024.0 / secs;
    results["upload"] = 1024.0 / secs;
  }
  done = true;
  sampler.join();
  state.counters["rss_growth_MiB"] = peak - base;
  results["rss_growth"] = peak - base;
}
BENCHMARK(BM_Upload_Http)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  std::printf("\nRatios in this run (target in brackets)\n");
  if (results.count("raw") && results.count("http")) {
    const double r = results["http"] / results["raw"];
    std::printf("  HTTP claims (32 clients) / raw SQLite claims   %6.1f%%  [>= 30%%] %s\n", 100 * r,
                r >= 0.3 ? "ok" : "MISSED");
    std::printf(
        "  double claims                                  %6.0f   [0] %s\n",
        results["double_claims"],
        results["double_claims"] == 0 && results["http_claimed"] == kJobs ? "ok" : "MISSED");
  }
  if (results.count("copy") && results.count("upload")) {
    const double r = results["upload"] / results["copy"];
    std::printf("  HTTP upload / (sha256sum + copy), 1 GiB        %6.1f%%  [>= 70%%] %s\n", 100 * r,
                r >= 0.7 ? "ok" : "MISSED");
    std::printf("  resident memory growth during the upload       %6.1f MiB [flat]\n",
                results["rss_growth"]);
  }
  benchmark::Shutdown();
  fs::remove_all(kDir);
  return 0;
}
