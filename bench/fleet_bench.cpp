// The coordinator against the floor of what it wraps, in one run.
//
//   BM_Claim_RawSqlite     one claim as a bare SQLite transaction on the queue's own schema
//                          (BEGIN IMMEDIATE; SELECT the next pending job; UPDATE it; COMMIT), in
//                          a loop: the floor
//   BM_Claim_Http32        claims over HTTP from 32 concurrent clients through the coordinator
//                          (eligibility, lease token, JSON), counting double claims
//   BM_Upload_HashCopy     the floor of storing a 1 GiB upload: one pass over the file that
//                          hashes each 1 MiB piece with the fleet's SHA-256 (OpenSSL, as the
//                          artifact store) and writes it to a new file, then fsync of the file
//                          and its directory
//   BM_Upload_ShaCopy      `sha256sum`, then `cp`, then `sync` of the copy and its directory:
//                          the tools' way, for reference (coreutils' SHA-256 is portable code,
//                          about three times slower than OpenSSL's on a core with SHA
//                          instructions)
//   BM_Upload_Http         the same file uploaded to the coordinator (streamed, hashed on the
//                          fly, stored), with the process's resident memory sampled throughout
//
// Each timed variant runs once (Iterations(1)): the work inside is large and the ratio is what
// is reported. The queue is the coordinator's own, on its default durability (synchronous=FULL).
//
// Both sides of a comparison start from the same state: before either clock starts, the file
// system has no writeback pending (syncfs), so neither side pays for what was written before it
// (the blob, the other side's files, a deleted copy's discards). For the uploads the 1 GiB source
// is on disk (fsynced) and wholly in the page cache, checked with mincore, as a bundle is that a
// trainer has just written; each side writes its copy into just-freed page cache
// (warm_page_cache); and both make their copy durable in the same way, fsync of the file and its
// directory (a `sync -f` would flush the whole file system inside the floor's clock). The
// verdict table at the end (bench_result.hpp) makes main return 1 when a target is missed.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>

#include "bench_result.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/fleet/sha256.hpp"

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

// Flushes every dirty page of the file system under kDir, so that the clock that starts next
// does not also pay for writes made before it.
void settle_filesystem() {
  const int fd = ::open(kDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::syncfs(fd);
  ::close(fd);
}

// Size of the write-ahead log of the named coordinator's database (0: none).
double wal_bytes(const std::string& name) {
  std::error_code ec;
  const auto n = fs::file_size(kDir / name / "data" / "coordinator.sqlite-wal", ec);
  return ec ? 0.0 : static_cast<double>(n);
}

void BM_Claim_RawSqlite(benchmark::State& state) {
  // The coordinator creates the schema and loads the jobs, then steps aside. This connection
  // opens before it closes (the last connection to close checkpoints and deletes the
  // write-ahead log), so that both sides start on the log the job load left.
  auto c = coordinator("raw", kJobs);
  sqlite3* db = nullptr;
  sqlite3_open((kDir / "raw" / "data" / "coordinator.sqlite").c_str(), &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", nullptr, nullptr, nullptr);
  c.reset();
  state.counters["wal_bytes"] = wal_bytes("raw");
  settle_filesystem();
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
      if (sqlite3_step(select) != SQLITE_ROW) {
        sqlite3_reset(select);
        sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
        break;
      }
      const std::string id(reinterpret_cast<const char*>(sqlite3_column_text(select, 0)));
      // Reset at once, as the queue's statements end when they go out of scope: a statement
      // left mid-step keeps a read snapshot open past the COMMIT, so the write-ahead log is never
      // checkpointed back to its start and every commit grows it (to 27 MB over 2000 claims,
      // against 4 MB for the queue).
      sqlite3_reset(select);
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
    if (claimed != kJobs) {
      state.SkipWithError(("the raw loop claimed " + std::to_string(claimed) + " of " +
                           std::to_string(kJobs) + " jobs")
                              .c_str());
    } else {
      results["raw"] = claimed / secs;
    }
  }
  state.counters["claimed"] = claimed;
  state.counters["wal_bytes_end"] = wal_bytes("raw");
  sqlite3_finalize(select);
  sqlite3_finalize(update);
  sqlite3_close(db);
}
BENCHMARK(BM_Claim_RawSqlite)->Iterations(1)->Unit(benchmark::kMillisecond);

// Host `name`'s client of the coordinator at `url`, enrolled with the bench's worker token ("wk");
// throws when the enrolment is refused.
fleet::api::CoordinatorClient host_client(const std::string& url, std::chrono::milliseconds timeout,
                                          const std::string& name) {
  fleet::api::CoordinatorClientOptions o;
  o.http = http::ClientOptions{url, {}, timeout};
  o.worker_token = "wk";
  fleet::api::CoordinatorClient client(o);
  const auto e = client.enrol_self(name);
  if (!e) throw std::runtime_error("enrolment of " + name + " refused: " + e.error().error);
  client.set_host_credential(e->credential);
  return client;
}

fleet::HostCapability bench_capability() {
  fleet::HostCapability cap;
  cap.cores = 1;
  cap.ram_gib = 1.0;
  return cap;
}

void BM_Claim_Http32(benchmark::State& state) {
  auto c = coordinator("http", kJobs);
  state.counters["wal_bytes"] = wal_bytes("http");
  settle_filesystem();
  std::mutex mu;
  std::multiset<std::string> ids;
  // Enrolled before the clock starts: a host enrols once in its life, not per claim.
  std::vector<fleet::api::CoordinatorClient> hosts;
  for (int k = 0; k < 32; ++k)
    hosts.push_back(host_client(c->url(), std::chrono::seconds(60), "bench-" + std::to_string(k)));
  for (auto _ : state) {
    const auto t0 = Clock::now();
    std::vector<std::thread> clients;
    for (int k = 0; k < 32; ++k) {
      clients.emplace_back([&, k] {
        fleet::api::CoordinatorClient& client = hosts[static_cast<std::size_t>(k)];
        const fleet::api::ClaimRequest claim{"bench-" + std::to_string(k), bench_capability()};
        while (true) {
          const auto r = client.claim(claim);
          if (!r || !r->job) return;
          std::lock_guard lock(mu);
          ids.insert(r->job->id);
        }
      });
    }
    for (auto& t : clients)
      t.join();
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["claims_per_s"] = static_cast<double>(ids.size()) / secs;
    results["http"] = static_cast<double>(ids.size()) / secs;
  }
  state.counters["wal_bytes_end"] = wal_bytes("http");
  const std::set<std::string> unique(ids.begin(), ids.end());
  state.counters["claimed"] = static_cast<double>(ids.size());
  state.counters["double_claims"] = static_cast<double>(ids.size() - unique.size());
  results["double_claims"] = static_cast<double>(ids.size() - unique.size());
  results["http_claimed"] = static_cast<double>(unique.size());
}
BENCHMARK(BM_Claim_Http32)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

const fs::path kBlob = kDir / "blob.bin";
constexpr std::uint64_t kBlobBytes = std::uint64_t{1} << 30;

// The source of both uploads: 1 GiB of varying words, written once and fsynced, so that its
// dirty pages are no part of what either side is timed for.
void make_blob() {
  if (fs::exists(kBlob) && fs::file_size(kBlob) == kBlobBytes) return;
  fs::create_directories(kDir);
  const int fd = ::open(kBlob.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + kBlob.string());
  std::vector<std::uint64_t> chunk(1 << 17);  // 1 MiB
  std::uint64_t x = 88172645463325252ULL;
  for (std::uint64_t written = 0; written < kBlobBytes; written += chunk.size() * 8) {
    for (auto& w : chunk) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      w = x;
    }
    if (::write(fd, chunk.data(), chunk.size() * 8) != static_cast<ssize_t>(chunk.size() * 8)) {
      ::close(fd);
      throw std::runtime_error("cannot write " + kBlob.string());
    }
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) throw std::runtime_error("cannot fsync the blob");
}

// Fraction of the blob's pages in the page cache.
double blob_resident() {
  const int fd = ::open(kBlob.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  void* map = ::mmap(nullptr, kBlobBytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) return 0;
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  std::vector<unsigned char> in_core((kBlobBytes + page - 1) / page);
  std::size_t resident = 0;
  if (::mincore(map, kBlobBytes, in_core.data()) == 0) {
    for (const unsigned char c : in_core)
      resident += c & 1;
  }
  ::munmap(map, kBlobBytes);
  return static_cast<double>(resident) / static_cast<double>(in_core.size());
}

// Writes a scratch file larger than the blob into the page cache and deletes it unflushed, so
// that the side timed next writes its copy into pages the kernel has just freed. This machine is
// a VM that hands free memory back to its host (free page reporting), and a page first written
// after the host took it back faults there: writing 1 GiB into pages freed a moment before took
// 0.2 s of CPU, 0.8 s four seconds later, 1.5 s twelve seconds later, and up to 3.4 s into pages
// long free. Without this, a side's cost would depend on what the side or process before it had
// freed and when; with it, both start alike (a side that takes longer still meets a few more
// pages the host has taken back by then).
void warm_page_cache() {
  const fs::path scratch = kDir / "scratch.bin";
  const int fd = ::open(scratch.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  const std::vector<char> zeros(1 << 20);
  for (std::uint64_t n = 0; n < kBlobBytes + kBlobBytes / 4; n += zeros.size()) {
    if (::write(fd, zeros.data(), zeros.size()) != static_cast<ssize_t>(zeros.size())) break;
  }
  ::close(fd);
  fs::remove(scratch);
}

// The state both uploads start from: the blob durable and wholly cached, no writeback pending,
// just-freed pages for the copy. Each side's copy is kept until the end of the run (main removes
// kDir), so that the only large free before a clock starts is the scratch file's.
// Returns the fraction of the blob that was resident when the clock was about to start.
double settle_blob() {
  make_blob();
  {
    std::ifstream in(kBlob, std::ios::binary);  // every page into the cache
    std::vector<char> buf(1 << 20);
    while (in.read(buf.data(), static_cast<std::streamsize>(buf.size())) || in.gcount() > 0) {
    }
  }
  settle_filesystem();
  warm_page_cache();
  return blob_resident();
}

double rss_mib() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0;
}

// Resident fraction of the source below which the two uploads would not start from one state.
constexpr double kMinResident = 0.99;

// One pass: read a piece, hash it, write it; then make the copy durable. False on an I/O error.
bool hash_and_copy(const fs::path& from, const fs::path& dir, std::string& digest) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return false;
  const fs::path to = dir / "copy.bin";
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (out < 0) {
    ::close(in);
    return false;
  }
  fleet::Sha256 sha;
  std::vector<std::byte> buf(1 << 20);
  bool ok = true;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    const std::span<const std::byte> piece(buf.data(), static_cast<std::size_t>(n));
    sha.update(piece);
    if (::write(out, piece.data(), piece.size()) != n) {
      ok = false;
      break;
    }
  }
  ok = ok && ::fsync(out) == 0;
  ::close(out);
  ::close(in);
  const int d = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ok = ok && d >= 0 && ::fsync(d) == 0;
  if (d >= 0) ::close(d);
  digest = sha.hex();
  return ok;
}

// Every upload side starts from the same source state: settled, resident, recorded.
void settle_blob_for(benchmark::State& state) {
  const double resident = settle_blob();
  state.counters["source_resident"] = resident;
  if (resident < kMinResident) state.SkipWithError("the blob is not in the page cache");
}

void BM_Upload_HashCopy(benchmark::State& state) {
  const fs::path copy_dir = kDir / "hashcopy";
  fs::create_directories(copy_dir);
  settle_blob_for(state);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    std::string digest;
    const bool ok = hash_and_copy(kBlob, copy_dir, digest);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["MiB_per_s"] = 1024.0 / secs;
    if (!ok) {
      state.SkipWithError("reading, writing or syncing the copy failed");
    } else {
      results["hashcopy"] = 1024.0 / secs;
    }
  }
}
BENCHMARK(BM_Upload_HashCopy)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Upload_ShaCopy(benchmark::State& state) {
  const fs::path copy_dir = kDir / "copy";
  fs::create_directories(copy_dir);
  settle_blob_for(state);
  for (auto _ : state) {
    const auto t0 = Clock::now();
    // `sync FILE DIR` fsyncs the copy and its directory, what the store does for an object.
    const std::string cmd = "sha256sum " + kBlob.string() + " > /dev/null && cp --reflink=never " +
                            kBlob.string() + " " + (copy_dir / "copy.bin").string() + " && sync " +
                            (copy_dir / "copy.bin").string() + " " + copy_dir.string();
    const int rc = std::system(cmd.c_str());
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["MiB_per_s"] = 1024.0 / secs;
    if (rc != 0) {
      state.SkipWithError("sha256sum, cp or sync failed");
    } else {
      results["copy"] = 1024.0 / secs;
    }
  }
}
BENCHMARK(BM_Upload_ShaCopy)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Upload_Http(benchmark::State& state) {
  make_blob();
  auto c = coordinator("upload", 1);
  fleet::api::CoordinatorClient client = host_client(c->url(), std::chrono::seconds(120), "w");
  const auto claim = client.claim({"w", bench_capability()});
  if (!claim || !claim->job) {
    state.SkipWithError("the upload job could not be claimed");
    return;
  }
  // The digest is declared up front, as a host does; computing it is part of the host's work,
  // not of the transfer being compared, so it is done before the clock starts.
  const std::string digest = fleet::sha256_file_hex(kBlob.string());
  settle_blob_for(state);
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
    const auto r =
        client.upload(claim->job->id, "blob.bin", kBlob.string(), digest, claim->lease_token);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    state.counters["MiB_per_s"] = 1024.0 / secs;
    if (!r) {
      state.SkipWithError(("upload refused: " + r.error().error).c_str());
    } else {
      results["upload"] = 1024.0 / secs;
    }
  }
  done = true;
  sampler.join();
  state.counters["rss_growth_MiB"] = peak - base;
  results["rss_growth"] = peak - base;
}
BENCHMARK(BM_Upload_Http)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

double result(const char* name) {
  const auto it = results.find(name);
  return it == results.end() ? tv::bench::kNotMeasured : it->second;
}

int judge() {
  tv::bench::Verdicts v("The coordinator against its floors in this run");
  v.info("BM_Claim_RawSqlite claims/s", result("raw"), "", 0);
  v.info("BM_Claim_Http32 claims/s", result("http"), "", 0);
  v.at_least("HTTP claims (32 clients) / raw SQLite claims", 100 * result("http") / result("raw"),
             "%", 30, 1);
  v.equal("jobs claimed over HTTP, each once", result("http_claimed"), "", kJobs);
  v.equal("double claims", result("double_claims"), "", 0);
  v.info("BM_Upload_HashCopy MiB/s", result("hashcopy"), "", 0);
  v.info("BM_Upload_ShaCopy MiB/s", result("copy"), "", 0);
  v.info("BM_Upload_Http MiB/s", result("upload"), "", 0);
  v.at_least("HTTP upload / (hash + copy + fsync, one pass), 1 GiB",
             100 * result("upload") / result("hashcopy"), "%", 70, 1);
  v.info("HTTP upload / (sha256sum, cp, sync), 1 GiB", 100 * result("upload") / result("copy"), "%",
         1);
  // Streamed: the process holds buffers, never the file (which would be 1024 MiB).
  v.at_most("resident memory growth during the upload", result("rss_growth"), " MiB", 64, 1);
  return v.finish();
}

}  // namespace

// A run that was killed leaves its folder (over 3 GiB) behind: the next run removes the folders of
// runs whose process is gone.
void remove_folders_of_dead_runs() {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(fs::temp_directory_path(), ec)) {
    const std::string name = e.path().filename().string();
    const std::string prefix = "tv-fleet-bench-";
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string pid = name.substr(prefix.size());
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) fs::remove_all(e.path(), ec);
  }
}

int main(int argc, char** argv) {
  remove_folders_of_dead_runs();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  const int rc = judge();
  benchmark::Shutdown();
  fs::remove_all(kDir);
  return rc;
}
