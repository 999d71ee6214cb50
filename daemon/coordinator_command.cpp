#include "coordinator_command.hpp"

#include <signal.h>

#include <cstdlib>
#include <memory>

#include "trainvisor/fleet/coordinator.hpp"
#include "trainvisor/fleet/manifest.hpp"

namespace tv::cli {
namespace {

std::string from_env(const std::string& flag_value, const char* env) {
  if (!flag_value.empty()) return flag_value;
  const char* v = std::getenv(env);
  return v ? v : "";
}

}  // namespace

void add_coordinator_command(CLI::App& app) {
  CLI::App* cmd =
      app.add_subcommand("coordinator", "Run the fleet's coordinator: queue, artifacts, HTTP API");
  auto o = std::make_shared<fleet::CoordinatorOptions>();
  auto stale_s = std::make_shared<double>(600);
  cmd->add_option("--data-dir", o->data_dir, "Directory for queue.sqlite and artifacts/")
      ->required();
  cmd->add_option("--manifest", o->manifest_path, "The operator's manifest (TOML)");
  cmd->add_option("--bind", o->http.bind,
                  "Address to listen on (default 127.0.0.1: loopback only)");
  cmd->add_option("--port", o->http.port, "Port (0: any free one, printed at start)");
  cmd->add_option("--operator-token", o->operator_token,
                  "Operator token (or $TRAINVISOR_OPERATOR_TOKEN)");
  cmd->add_option("--worker-token", o->worker_token, "Worker token (or $TRAINVISOR_WORKER_TOKEN)");
  cmd->add_option("--tls-cert", o->http.tls_cert_file, "PEM certificate chain: serve HTTPS");
  cmd->add_option("--tls-key", o->http.tls_key_file, "PEM private key of --tls-cert");
  cmd->add_option("--plugin-dir", o->plugin_dirs, "Extra plugin directory for manifest validation");
  cmd->add_option("--stale-after", *stale_s,
                  "Seconds without a heartbeat before a job is taken back");
  cmd->add_option("--max-artifact-bytes", o->max_artifact_bytes, "Largest upload accepted");
  cmd->callback([o, stale_s] {
    o->operator_token = from_env(o->operator_token, "TRAINVISOR_OPERATOR_TOKEN");
    o->worker_token = from_env(o->worker_token, "TRAINVISOR_WORKER_TOKEN");
    if (o->operator_token.empty() || o->worker_token.empty()) {
      throw std::invalid_argument(
          "the coordinator needs --operator-token and --worker-token (or their "
          "TRAINVISOR_*_TOKEN variables): without them nobody could use it");
    }
    o->queue.stale_after = std::chrono::milliseconds(static_cast<std::int64_t>(*stale_s * 1000));
    // Signals are taken synchronously by this thread; the server's threads never see them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    fleet::Coordinator coordinator(*o);
    std::fprintf(stderr, "coordinator: listening on %s (data in %s)\n", coordinator.url().c_str(),
                 o->data_dir.c_str());
    std::printf("%s\n", coordinator.url().c_str());
    std::fflush(stdout);
    while (true) {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig != SIGHUP) break;
      try {
        const auto s = coordinator.reload(false);
        std::fprintf(
            stderr,
            "coordinator: manifest reloaded: %zu added, %zu unchanged, %zu no longer listed\n",
            s.added.size(), s.unchanged.size(), s.removed.size());
      } catch (const std::exception& e) {
        std::fprintf(stderr, "coordinator: manifest reload refused, nothing changed:\n%s\n",
                     e.what());
      }
    }
    std::fprintf(stderr, "coordinator: stopping\n");
  });
}

}  // namespace tv::cli
