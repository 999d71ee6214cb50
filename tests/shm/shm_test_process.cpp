// A separate process for the multi-process tests: each mode plays one role against a real block
// and reports on stdout, one "key=value" line per fact, so the test can assert on it.
//
//   create NAME [KEY=TYPE:VALUE ...]   create (or take over) a block, print "ready", then hold it
//                                      as its live writer until stdin closes or SIGTERM
//   serve NAME [ATTEMPT:DIGEST] [KEY=TYPE:VALUE ...]
//                                      as create, stamped with that lease when given; then each
//                                      stdin line is a command, answered by one stdout line:
//                                      "KEY=TYPE:VALUE ..." applies one batch ("applied
//                                      generation=N"), "silent" stops the heartbeat ("silent");
//                                      stdin EOF or SIGTERM ends it
//   invariant-writer NAME BATCHES      create NAME, print "ready", then apply {a=i, b=2i, c=i+1,
//                                      tag="i"} as fast as possible (BATCHES 0: until stdin
//                                      closes)
//   invariant-reader NAME READS        snapshot a, b, c, tag READS times, check the invariant
//                                      (start it once the writer printed "ready")
//   stop-mid-write NAME                take over NAME, then SIGSTOP itself in the middle of a
//                                      write to training/a (the test SIGKILLs it there)
//   remove-quietly NAME                remove the block if it exists
//   telemetry-push NAME COUNT          push COUNT records (step = 0..COUNT-1)
//   telemetry-expect NAME COUNT SECS   poll until COUNT records arrived or SECS passed
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

using namespace tv::shm;

namespace {

std::vector<Entry> invariant_batch(std::int64_t i) {
  return {{"training/a", Value::i64(i)},
          {"training/b", Value::i64(2 * i)},
          {"training/c", Value::i64(i + 1)},
          {"training/tag", Value::string(std::to_string(i))}};
}

Value parse_value(std::string_view spec) {
  const auto colon = spec.find(':');
  if (colon == std::string_view::npos)
    throw ShmError("value '" + std::string(spec) + "' lacks TYPE:");
  const std::string_view type = spec.substr(0, colon);
  const std::string v(spec.substr(colon + 1));
  if (type == "f64") return Value::f64(std::strtod(v.c_str(), nullptr));
  if (type == "i64") return Value::i64(std::strtoll(v.c_str(), nullptr, 10));
  if (type == "bool") return Value::boolean(v == "true");
  if (type == "str") return Value::string(v);
  throw ShmError("unknown type '" + std::string(type) + "'");
}

std::vector<Entry> parse_entries(const std::vector<std::string_view>& args) {
  std::vector<Entry> out;
  for (const std::string_view arg : args) {
    const auto eq = arg.find('=');
    if (eq == std::string_view::npos) throw ShmError("entry '" + std::string(arg) + "' lacks =");
    out.push_back({std::string(arg.substr(0, eq)), parse_value(arg.substr(eq + 1))});
  }
  return out;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  while (!line.empty()) {
    const auto start = line.find_first_not_of(" \t\r");
    if (start == std::string_view::npos) break;
    const auto end = std::min(line.find_first_of(" \t\r", start), line.size());
    out.push_back(line.substr(start, end - start));
    line.remove_prefix(end);
  }
  return out;
}

volatile sig_atomic_t stop_requested = 0;

int create(const std::string& name, int argc, char** argv) {
  const std::vector<Entry> source = parse_entries({argv, argv + argc});
  auto writer = ConfigBlockWriter::open_or_create(name, {}, source);
  std::printf("ready\ntook_over=%d\n", writer.repair_report().took_over ? 1 : 0);
  std::fflush(stdout);
  signal(SIGTERM, [](int) { stop_requested = 1; });
  // Hold the block (and its writer lock) while the parent works; stdin EOF is the signal.
  pollfd in{0, POLLIN, 0};
  while (!stop_requested) {
    writer.heartbeat();
    if (::poll(&in, 1, 100) > 0) {
      char buf[64];
      if (::read(0, buf, sizeof buf) <= 0) break;
    }
  }
  return 0;
}

// A config writer the test drives line by line, as the agent drives a trainer's block.
int serve(const std::string& name, int argc, char** argv) {
  WriterOptions options;
  std::vector<std::string_view> args(argv, argv + argc);
  if (!args.empty() && args.front().find('=') == std::string_view::npos) {
    const std::string_view lease = args.front();
    const auto colon = lease.find(':');
    if (colon == std::string_view::npos)
      throw ShmError("lease '" + std::string(lease) + "' lacks :");
    options.lease = BlockLease::from_hex(
        std::strtoull(std::string(lease.substr(0, colon)).c_str(), nullptr, 10),
        lease.substr(colon + 1));
    args.erase(args.begin());
  }
  auto writer = ConfigBlockWriter::open_or_create(name, options, parse_entries(args));
  std::printf("ready\ngeneration=%llu\n", static_cast<unsigned long long>(writer.generation()));
  std::fflush(stdout);
  signal(SIGTERM, [](int) { stop_requested = 1; });
  bool beating = true;
  std::string pending;
  pollfd in{0, POLLIN, 0};
  while (!stop_requested) {
    if (beating) writer.heartbeat();
    if (::poll(&in, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(0, buf, sizeof buf);
    if (n <= 0) break;
    pending.append(buf, static_cast<std::size_t>(n));
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      const std::string line = pending.substr(0, nl);
      pending.erase(0, nl + 1);
      if (line == "silent") {
        beating = false;
        std::printf("silent\n");
      } else {
        writer.apply(parse_entries(words(line)));
        std::printf("applied generation=%llu\n",
                    static_cast<unsigned long long>(writer.generation()));
      }
      std::fflush(stdout);
    }
  }
  return 0;
}

// "ready" once the block exists, so readers can attach. BATCHES > 0: that many, then exit.
// BATCHES == 0: keep writing until stdin closes (for readers that start slowly, such as Python
// processes).
int invariant_writer(const std::string& name, std::int64_t batches) {
  auto writer = ConfigBlockWriter::open_or_create(name, {}, invariant_batch(0));
  std::printf("ready\n");
  std::fflush(stdout);
  std::int64_t done = 0;
  if (batches > 0) {
    for (; done < batches; ++done)
      writer.apply(invariant_batch(done + 1));
  } else {
    pollfd in{0, POLLIN, 0};
    while (::poll(&in, 1, 0) == 0) {
      for (int k = 0; k < 1000; ++k, ++done)
        writer.apply(invariant_batch(done + 1));
    }
  }
  std::printf("batches=%lld\ngeneration=%llu\n", static_cast<long long>(done),
              static_cast<unsigned long long>(writer.generation()));
  return 0;
}

int invariant_reader(const std::string& name, std::int64_t reads) {
  // The test starts readers after the writer's "ready": the block exists (or this is an error).
  const ConfigBlockReader reader = ConfigBlockReader::attach(name);
  const std::vector<SnapshotKey> keys = {{"training/a", Value::i64(-1)},
                                         {"training/b", Value::i64(-2)},
                                         {"training/c", Value::i64(0)},
                                         {"training/tag", Value::string("-1")}};
  Snapshot snap = reader.snapshot(keys);
  std::int64_t fresh = 0, violations = 0, distinct = 0, last_a = -1;
  for (std::int64_t r = 0; r < reads; ++r) {
    fresh += snap.read() ? 1 : 0;
    const std::int64_t a = snap[0].as_i64();
    if (snap[1].as_i64() != 2 * a || snap[2].as_i64() != a + 1 ||
        snap[3].as_string() != std::to_string(a)) {
      if (++violations <= 5) {
        std::printf("violation a=%lld b=%lld c=%lld tag=%s\n", static_cast<long long>(a),
                    static_cast<long long>(snap[1].as_i64()),
                    static_cast<long long>(snap[2].as_i64()),
                    std::string(snap[3].as_string()).c_str());
      }
    }
    if (a != last_a) ++distinct;
    last_a = a;
  }
  std::printf("reads=%lld\nfresh=%lld\nfallbacks=%llu\nviolations=%lld\ndistinct=%lld\n",
              static_cast<long long>(reads), static_cast<long long>(fresh),
              static_cast<unsigned long long>(snap.stats().fallbacks),
              static_cast<long long>(violations), static_cast<long long>(distinct));
  return violations == 0 ? 0 : 1;
}

int stop_mid_write(const std::string& name) {
  WriterOptions options;
  options.mid_write_hook = [] {
    std::printf("mid-write\n");
    std::fflush(stdout);
    ::raise(SIGSTOP);
  };
  auto writer = ConfigBlockWriter::open_or_create(name, options, {});
  writer.apply(
      std::vector<Entry>{{"training/a", Value::i64(999)}, {"training/b", Value::i64(1998)}});
  std::printf("resumed\n");  // only if the test continues us instead of killing us
  return 0;
}

int telemetry_push(const std::string& name, std::uint64_t count) {
  auto reader = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  TelemetryWriter w = reader.telemetry_writer();
  for (std::uint64_t i = 0; i < count; ++i) {
    TelemetryRecord r;
    r.step = i;
    r.loss = 1.0 / static_cast<double>(i + 1);
    r.learning_rate = 0.1;
    r.config_revision = i / 10;
    w.push(r);
  }
  std::printf("pushed=%llu\n", static_cast<unsigned long long>(count));
  return 0;
}

int telemetry_expect(const std::string& name, std::uint64_t count, double seconds) {
  auto reader = ConfigBlockReader::attach(name, ConfigBlockReader::Access::kReadWrite);
  TelemetryReader r = reader.telemetry_reader();
  std::vector<TelemetryRecord> buf(256);
  std::uint64_t got = 0, missed = 0, out_of_order = 0, next_step = 0, flags_or = 0;
  double loss_sum = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (got + missed < count && std::chrono::steady_clock::now() < deadline) {
    const PollResult p = r.poll(buf);
    missed += p.missed;
    for (std::size_t i = 0; i < p.count; ++i) {
      if (buf[i].step < next_step) ++out_of_order;
      next_step = buf[i].step + 1;
      loss_sum += buf[i].loss;
      flags_or |= buf[i].flags;
    }
    got += p.count;
    // The ring has no wake-up: poll it, 1 ms apart, until the records or the deadline come.
    if (p.count == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::printf(
      "received=%llu\nmissed=%llu\nout_of_order=%llu\nlast_step=%llu\nflags=%llu\n"
      "loss_sum=%.9f\n",
      static_cast<unsigned long long>(got), static_cast<unsigned long long>(missed),
      static_cast<unsigned long long>(out_of_order),
      static_cast<unsigned long long>(next_step ? next_step - 1 : 0),
      static_cast<unsigned long long>(flags_or), loss_sum);
  return got + missed >= count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODE NAME ...\n", argv[0]);
    return 2;
  }
  const std::string_view mode = argv[1];
  const std::string name = argv[2];
  try {
    if (mode == "create") return create(name, argc - 3, argv + 3);
    if (mode == "serve") return serve(name, argc - 3, argv + 3);
    if (mode == "invariant-writer" && argc == 4) return invariant_writer(name, std::atoll(argv[3]));
    if (mode == "invariant-reader" && argc == 4) return invariant_reader(name, std::atoll(argv[3]));
    if (mode == "stop-mid-write") return stop_mid_write(name);
    if (mode == "remove-quietly") return ConfigBlockWriter::remove(name) ? 0 : 1;
    if (mode == "telemetry-push" && argc == 4)
      return telemetry_push(name, std::strtoull(argv[3], nullptr, 10));
    if (mode == "telemetry-expect" && argc == 5) {
      return telemetry_expect(name, std::strtoull(argv[3], nullptr, 10), std::atof(argv[4]));
    }
  } catch (const std::exception& e) {
    std::printf("error=%s\n", e.what());
    return 3;
  }
  std::fprintf(stderr, "unknown mode or arguments: %s\n", argv[1]);
  return 2;
}
