// `trainvisor logs JOB [-f]`: the tail of a job's trainer log, as its host last sent it to the
// coordinator (at most once a heartbeat while the log grows, and once when the trainer exits);
// with -f, new lines as they arrive until the job ends or Ctrl-C.
//
// The coordinator keeps a window of the newest lines, not offsets, so following finds where the
// new window overlaps the lines already printed (the longest end of the old window that starts
// the new one) and prints the rest; when more lines came between two reads than a window holds,
// it says that lines were left out rather than guess.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>

#include "ops_connection.hpp"
#include "signal_watch.hpp"
#include "terminal_text.hpp"
#include "trainvisor/fleet/job_status.hpp"

namespace tv::cli {
namespace {

namespace api = fleet::api;

struct LogsFlags : OpsFlags {
  bool follow = false;
  double every_s = 1.0;
};

// How many of `fresh`'s first lines are the last lines of `shown` (the longest such run).
std::size_t overlap(const std::vector<std::string>& shown, const std::vector<std::string>& fresh) {
  for (std::size_t k = std::min(shown.size(), fresh.size()); k > 0; --k) {
    bool same = true;
    for (std::size_t i = 0; i < k && same; ++i)
      same = shown[shown.size() - k + i] == fresh[i];
    if (same) return k;
  }
  return 0;
}

void print_lines(const std::vector<std::string>& lines, std::size_t from) {
  for (std::size_t i = from; i < lines.size(); ++i)
    std::printf("%s\n", terminal_text(lines[i]).c_str());
  std::fflush(stdout);
}

// Ended, and its trainer gone: a cancelled job's trainer checkpoints and exits after the cancel
// (cancel_requested until its host says so), and its host sends the last lines when it exits.
bool finished(api::CoordinatorClient& client, const std::string& id) {
  const api::JobInfo j = value_of(client.job(id));
  return j.status != fleet::JobStatus::kPending && j.status != fleet::JobStatus::kClaimed &&
         j.status != fleet::JobStatus::kRunning && !j.cancel_requested;
}

void follow(api::CoordinatorClient& client, const std::string& id, const LogsFlags& f,
            std::vector<std::string> shown) {
  SignalWatch watch({SIGINT, SIGTERM});
  const auto every = std::chrono::milliseconds(static_cast<std::int64_t>(f.every_s * 1000));
  std::optional<std::int64_t> seen;
  for (;;) {
    // One more read after the job ends: its host sends the last lines when the trainer exits.
    const bool last = finished(client, id);
    const api::JobLog log = value_of(client.job_log(id));
    if (log.updated_ms != seen) {
      seen = log.updated_ms;
      const std::size_t k = overlap(shown, log.lines);
      if (k == 0 && !shown.empty() && !log.lines.empty())
        std::printf("... (lines left out: more came than the coordinator keeps)\n");
      print_lines(log.lines, k);
      shown = log.lines;
    }
    if (last || watch.wait_for(every)) return;
  }
}

void show_logs(const LogsFlags& f) {
  OpsConnection c(f);
  const std::string id = c.resolve(f.job);
  const api::JobLog log = value_of(c.client().job_log(id));
  if (f.output == "json") {
    print(f, nlohmann::json(log), [] {});
    return;
  }
  if (log.truncated) std::printf("... (older lines left out)\n");
  print_lines(log.lines, 0);
  if (f.follow) follow(c.client(), id, f, log.lines);
}

}  // namespace

void add_logs_command(CLI::App& app) {
  auto f = std::make_shared<LogsFlags>();
  CLI::App* logs = app.add_subcommand(
      "logs", "The tail of a job's trainer log, as its host sent it (-f: follow)");
  add_connection_flags(*logs, *f);
  logs->add_option("JOB", f->job, "Job id, unique id prefix, or name")->required();
  logs->add_flag("-f,--follow", f->follow, "Print new lines as they arrive, until the job ends");
  logs->add_option("--every", f->every_s, "Seconds between reads when following (default 1)")
      ->check(CLI::Range(0.1, 60.0));
  logs->callback([f] { show_logs(*f); });
}

}  // namespace tv::cli
