#include "coordinator_command.hpp"

#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "secret_flags.hpp"
#include "service_notify.hpp"
#include "signal_watch.hpp"
#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/log.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/trainer/stored_models.hpp"

namespace tv::cli {
namespace {

// --test-stream-fault's "skip:N,close:M" into the options' stream fault.
void parse_stream_fault(const std::string& fault, fleet::CoordinatorOptions& o) {
  for (std::size_t pos = 0; pos < fault.size();) {
    const auto comma = fault.find(',', pos);
    const std::string part = fault.substr(pos, comma == std::string::npos ? comma : comma - pos);
    pos = comma == std::string::npos ? fault.size() : comma + 1;
    const auto colon = part.find(':');
    int n = 0;
    try {
      n = colon == std::string::npos ? 0 : std::stoi(part.substr(colon + 1));
    } catch (const std::exception&) {
    }
    if (n <= 0 || (part.compare(0, colon, "skip") != 0 && part.compare(0, colon, "close") != 0))
      throw std::invalid_argument("--test-stream-fault '" + part +
                                  "': expected skip:N or close:N with N >= 1");
    (part.compare(0, colon, "skip") == 0 ? o.stream_fault.skip_every : o.stream_fault.close_every) =
        n;
  }
}

namespace log = fleet::log;

// One line of the coordinator's log (trainvisor/fleet/log.hpp).
void say(log::Level level, std::string message, log::Fields fields = {}) {
  log::emit({level, "coordinator", std::move(message), "", std::move(fields)});
}

// The manifest reload SIGHUP asks for: the same as POST /v1/manifest/reload, its summary logged,
// told to the service manager as RELOADING=1 then READY=1 (a refused manifest changes nothing,
// and the service is as ready as before).
void reload_manifest(fleet::Coordinator& coordinator, const ServiceNotifier& notifier) {
  log_notify_failure("coordinator", notifier.reloading());
  try {
    const auto s = coordinator.reload(false);
    say(log::Level::kInfo,
        "manifest reloaded: " + std::to_string(s.added.size()) + " added, " +
            std::to_string(s.unchanged.size()) + " unchanged, " + std::to_string(s.removed.size()) +
            " no longer listed",
        {{"jobs_added", s.added.size()},
         {"jobs_unchanged", s.unchanged.size()},
         {"jobs_removed", s.removed.size()}});
    for (const std::string& w : s.warnings)
      say(log::Level::kWarn, "manifest " + w);
  } catch (const std::exception& e) {
    say(log::Level::kError, std::string("manifest reload refused, nothing changed:\n") + e.what());
  }
  log_notify_failure("coordinator", notifier.ready("serving " + coordinator.url()));
}

// Runs the coordinator until SIGTERM or SIGINT; SIGHUP reloads the manifest. Under systemd
// (Type=notify) it says READY=1 once its port is open, pings the watchdog while it runs and
// says STOPPING=1 before it shuts down.
void serve(fleet::CoordinatorOptions o) {
  log::set_format(log::format_from_env());  // a bad TRAINVISOR_LOG_FORMAT is refused at start
  const ServiceNotifier notifier = ServiceNotifier::take_from_environment();
  SignalWatch watch({SIGTERM, SIGINT, SIGHUP});  // taken by this thread, between requests
  o.make_embedder = model_embedder_maker();
  fleet::Coordinator coordinator(o);  // listening once constructed
  say(log::Level::kInfo, "listening on " + coordinator.url() + " (data in " + o.data_dir + ")",
      {{"url", coordinator.url()}, {"data_dir", o.data_dir}, {"dashboard", !o.web_root.empty()}});
  std::printf("%s\n", coordinator.url().c_str());
  std::fflush(stdout);
  log_notify_failure("coordinator", notifier.ready("serving " + coordinator.url()));
  WatchdogPinger pinger(notifier);
  while (watch.wait() == SIGHUP)
    reload_manifest(coordinator, notifier);
  log_notify_failure("coordinator", notifier.stopping());
  pinger.stop();
  say(log::Level::kInfo, "stopping");
}

}  // namespace

decltype(fleet::CoordinatorOptions::make_embedder) model_embedder_maker() {
  return [](const PluginRegistry& plugins,
            std::function<std::filesystem::path(const std::string&)> artifact_file) {
    return std::make_shared<trainer::ModelEmbedder>(plugins, std::move(artifact_file));
  };
}

std::string default_web_root() {
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const std::filesystem::path prefix = exe.parent_path().parent_path();
  for (const std::filesystem::path& dir :
       {prefix / "web", prefix / "share" / "trainvisor" / "web"}) {
    if (std::filesystem::is_regular_file(dir / "index.html", ec)) return dir.string();
  }
  return "";
}

void add_coordinator_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("coordinator", "Run the fleet's coordinator: queue, artifacts, HTTP API");
  auto o = std::make_shared<fleet::CoordinatorOptions>();
  auto stale_s = std::make_shared<double>(30);
  auto sweep_s = std::make_shared<double>(5);
  cmd->add_option("--data-dir", o->data_dir, "Directory for coordinator.sqlite and artifacts/")
      ->required();
  cmd->add_option("--manifest", o->manifest_path, "The operator's manifest (TOML)");
  cmd->add_option("--bind", o->http.bind,
                  "Address to listen on (default 127.0.0.1: loopback only)");
  cmd->add_option("--port", o->http.port, "Port (0: any free one, printed at start)");
  auto operator_token =
      std::make_shared<SecretFlag>("--operator-token", "TRAINVISOR_OPERATOR_TOKEN");
  auto worker_token = std::make_shared<SecretFlag>("--worker-token", "TRAINVISOR_WORKER_TOKEN");
  auto read_token = std::make_shared<SecretFlag>("--read-token", "TRAINVISOR_READ_TOKEN");
  auto ingest_token = std::make_shared<SecretFlag>("--ingest-token", "TRAINVISOR_INGEST_TOKEN");
  add_secret_flags(*cmd, *operator_token, "Operator token");
  add_secret_flags(
      *cmd, *worker_token,
      "Worker token: enrols a host name that has no credential yet (each host then uses its own)");
  add_secret_flags(*cmd, *read_token,
                   "Read token: jobs, configs, audit log, telemetry and artifacts, nothing else; "
                   "the operator and worker tokens read too");
  add_secret_flags(*cmd, *ingest_token,
                   "Ingest token: a pipeline's samples (POST /v1/pipeline/NAME/samples), nothing "
                   "else; the operator and worker tokens ingest too");
  cmd->add_flag_function(
      "--public-reads,!--no-public-reads", [o](std::int64_t n) { o->public_reads = n > 0; },
      "Reads without a token (--no-public-reads: a token always). Default: public when --bind "
      "is a loopback address (only this machine can ask), a token required otherwise");
  cmd->add_option("--tls-cert", o->http.tls_cert_file, "PEM certificate chain: serve HTTPS");
  cmd->add_option("--tls-key", o->http.tls_key_file, "PEM private key of --tls-cert");
  cmd->add_option("--plugin-dir", o->plugin_dirs, "Extra plugin directory for manifest validation");
  o->web_root = default_web_root();
  cmd->add_option("--web-root", o->web_root,
                  "The dashboard's bundle served at / (default: the build's or the install's)");
  cmd->add_option("--stale-after", *stale_s,
                  "Seconds without a heartbeat before a job is taken back (default 30: six of a "
                  "host's default 5 s heartbeats may be missed on a loaded host or network "
                  "without a false sweep, and a lost host's job is pending again within "
                  "--stale-after + --sweep-every = 35 s)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--sweep-every", *sweep_s,
                  "Seconds between sweeps for expired leases (default 5: a lost host's job waits "
                  "at most this long past --stale-after; a sweep is one cheap indexed query)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-artifact-bytes", o->max_artifact_bytes, "Largest upload accepted");
  cmd->add_option("--telemetry-keep", o->telemetry.keep_per_job,
                  "Telemetry points kept per job, the newest (default 100000, some 10 MB a job; "
                  "0 keeps every point): a longer curve loses its oldest points, and a read "
                  "still thins it to the points asked for")
      ->check(CLI::Validator(
          [](const std::string& v) {
            // Up to 18 digits: every such count fits the store's signed 64-bit integers.
            return !v.empty() && v.size() <= 18 &&
                           v.find_first_not_of("0123456789") == std::string::npos
                       ? std::string()
                       : "'" + v +
                             "' is not a whole number of points under 10^18 (0 keeps every "
                             "point)";
          },
          "N"));
  auto head_s = std::make_shared<double>(10);
  auto transfer_s = std::make_shared<double>(10);
  cmd->add_option("--http-head-timeout", *head_s,
                  "Seconds a request head (or a TLS handshake) may take from its first byte "
                  "(default 10); a slower client is disconnected")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--http-transfer-timeout", *transfer_s,
                  "Seconds a request body, a response or a config stream message may wait on "
                  "the client (default 10); beyond it a transfer must average 1 KiB/s")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--http-max-connections", o->http.max_connections,
                  "Connections open at once, in all (default 1024; more get 503)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--http-max-connections-per-peer", o->http.max_connections_per_peer,
                  "Connections open at once from one IP address, loopback included (default 64)")
      ->check(CLI::PositiveNumber);
  auto fault = std::make_shared<std::string>();
  cmd->add_option("--test-stream-fault", *fault,
                  "Test hook: lose every Nth config delta (skip:N) and drop each config stream "
                  "after M messages (close:M), e.g. skip:3,close:10")
      ->group("");  // hidden: for fault-injection tests only
  cmd->callback([o, stale_s, sweep_s, fault, operator_token, worker_token, read_token, ingest_token,
                 head_s, transfer_s] {
    parse_stream_fault(*fault, *o);
    o->operator_token = secret_of(*operator_token, true);
    o->worker_token = secret_of(*worker_token, true);
    o->read_token = secret_of(*read_token, true);
    o->ingest_token = secret_of(*ingest_token, true);
    if (o->operator_token.empty() || o->worker_token.empty()) {
      throw std::invalid_argument(
          "the coordinator needs the operator and worker tokens (--operator-token-file and "
          "--worker-token-file, or their TRAINVISOR_*_TOKEN variables): without them nobody "
          "could use it");
    }
    // Everything the coordinator creates (its database, artifacts, logs) is its owner's alone.
    ::umask(077);
    o->queue.stale_after = std::chrono::milliseconds(static_cast<std::int64_t>(*stale_s * 1000));
    o->sweep_every = std::chrono::milliseconds(static_cast<std::int64_t>(*sweep_s * 1000));
    o->http.head_timeout = std::chrono::milliseconds(static_cast<std::int64_t>(*head_s * 1000));
    o->http.transfer_timeout =
        std::chrono::milliseconds(static_cast<std::int64_t>(*transfer_s * 1000));
    serve(*o);
  });
}

}  // namespace tv::cli
