#include "trainvisor/fleet/coordinator.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include "coordinator_state.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/drift/drift_statistics.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/fleet/pipelines/embedder.hpp"
#include "trainvisor/fleet/store/store_error.hpp"

namespace tv::fleet {
namespace {

// The plugins a manifest was validated against, kept for its pipelines' triggers and embedder
// (both hold the registry; a trigger keeps them alive, see TriggerRunner::set_pipelines).
struct TriggerHost {
  explicit TriggerHost(PluginRegistry r)
      : registry(std::move(r)), services(registry, drift::drift_statistics()) {}
  PluginRegistry registry;
  HostTriggerServices services;
  std::shared_ptr<pipelines::Embedder> embedder;  // made when the manifest is applied
};

struct LoadedManifest {
  Manifest manifest;
  std::shared_ptr<TriggerHost> host;
  std::shared_ptr<const HostTriggerServices> triggers;
};

// The options' manifest, validated against the plugins; nullopt when there is none. Throws
// ManifestError.
std::optional<LoadedManifest> load_validated(const CoordinatorOptions& o) {
  if (o.manifest_path.empty()) return std::nullopt;
  std::vector<std::string> dirs = o.plugin_dirs;
  for (auto& d : default_plugin_dirs())
    dirs.push_back(std::move(d));
  auto host = std::make_shared<TriggerHost>(PluginRegistry::load(dirs));
  Manifest m = load_manifest(o.manifest_path, host->registry, &host->services);
  return LoadedManifest{std::move(m), host,
                        std::shared_ptr<const HostTriggerServices>(host, &host->services)};
}

// A full disk is the operator's to fix, not a fault of the server: every route answers it with
// 507 naming what could not be written and where; the store rolled the write back, reads go on,
// and the same write succeeds once space is freed. The log says so once a minute at most: the
// log may well be on the full disk too.
std::vector<http::Route> answering_disk_full(std::vector<http::Route> routes,
                                             const coordinator::CoordinatorState& state) {
  auto last_logged = std::make_shared<std::atomic<std::int64_t>>(-60);
  for (http::Route& r : routes) {
    r.handler = [h = std::move(r.handler), &state, last_logged](http::Request& req,
                                                                http::BodyStream* body) {
      try {
        return h(req, body);
      } catch (const store::StorageFull& e) {
        const std::string why = "disk full: " + e.owner() + " writing " + req.method + " " +
                                req.path + " (" + e.path() +
                                "); writes succeed again once space is freed, reads go on";
        const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count();
        std::int64_t last = last_logged->load();
        if (now - last >= 60 && last_logged->compare_exchange_strong(last, now))
          state.log_error(why + " (" + e.what() + ")");
        return http::Response::error(507, why);
      }
    };
  }
  return routes;
}

}  // namespace

std::string random_token() {
  unsigned char b[16];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("no random bytes for a token");
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 15];
  }
  return s;
}

struct Coordinator::Impl {
  coordinator::CoordinatorState state;
  std::mutex reload_mu;
  std::unique_ptr<http::Server> server;
  std::thread sweeper;
  std::mutex sweep_mu;
  std::condition_variable sweep_cv;
  bool stopping = false;

  explicit Impl(CoordinatorOptions o)
      : state(std::move(o), [this](bool dry_run) { return reload(dry_run); }) {}

  ReloadSummary reload(bool dry_run) {
    std::lock_guard lock(reload_mu);
    const std::optional<LoadedManifest> m = load_validated(state.options);
    return m ? apply(*m, dry_run) : ReloadSummary{};
  }

  // What `m` changes in the queue; written unless a dry run. The caller holds reload_mu (or is
  // the constructor, before the server starts).
  ReloadSummary apply(const LoadedManifest& loaded, bool dry_run) {
    const Manifest& m = loaded.manifest;
    ReloadSummary out;
    std::set<std::string> ids;
    const std::vector<JobRow> queued = state.queue.list();
    for (const JobSpec& j : m.jobs) {
      ids.insert(j.id);
      if (state.queue.get(j.id)) {
        out.unchanged.push_back(j.name);
        continue;
      }
      out.added.push_back(j.name);
      api::ReplacedJob replaced{j.name, j.id, {}};
      for (const JobRow& r : queued) {
        if (r.spec.name == j.name) replaced.replaces.push_back(r.spec.id);
      }
      if (!replaced.replaces.empty()) out.replaced.push_back(std::move(replaced));
    }
    for (const JobRow& r : queued) {
      if (!ids.count(r.spec.id)) out.removed.push_back(r.spec.name);
    }
    std::set<std::string> workers;
    for (const WorkerRow& w : state.queue.workers())
      workers.insert(w.name);
    out.warnings = manifest_warnings(m, workers);
    if (!dry_run) {
      store_shipped(m);
      out.report = state.queue.upsert_manifest(m.jobs);
      state.queue.upsert_hosts(m.hosts);
      // Every job's config tree starts as its manifest's hyper table, once: a reload never
      // overwrites live values.
      for (const JobSpec& j : m.jobs)
        state.hub.seed(j.id, j.hyper);
      state.runner->set_pipelines(m.pipelines, loaded.triggers, embedder(loaded));
    }
    return out;
  }

  // Each command job's shipped working directory, stored under the job before the job is queued,
  // so that no host claims a job whose files it cannot fetch. Throws naming the job.
  void store_shipped(const Manifest& m) {
    for (const JobSpec& j : m.jobs) {
      if (!j.command || j.command->workdir.empty()) continue;
      const auto shipped = std::find_if(
          m.shipped.begin(), m.shipped.end(),
          [&](const Manifest::ShippedFolder& s) { return s.digest == j.command->workdir; });
      if (shipped == m.shipped.end()) continue;  // a Manifest made in code, not loaded
      const std::string what = "job '" + j.name + "': workdir " + shipped->folder;
      if (!state.artifacts)
        throw std::runtime_error(what + ": the coordinator has no artifact store to ship it from");
      auto up = state.artifacts->begin_upload(shipped->digest, shipped->archive.size(), j.id,
                                              "workdir.tar");
      if (!up) throw std::runtime_error(what + ": " + up.error().message);
      const auto* bytes = reinterpret_cast<const std::byte*>(shipped->archive.data());
      if (auto w = up.value().write({bytes, shipped->archive.size()}); !w)
        throw std::runtime_error(what + ": " + w.error().message);
      if (auto c = up.value().commit(); !c)
        throw std::runtime_error(what + ": " + c.error().message);
    }
  }

  // The embedder of `loaded`'s pipelines, which keeps its plugins alive; null when the options
  // give no way to make one.
  std::shared_ptr<pipelines::Embedder> embedder(const LoadedManifest& loaded) {
    const CoordinatorOptions& o = state.options;
    if (!o.make_embedder || !state.artifacts) return nullptr;
    TriggerHost& host = *loaded.host;
    if (!host.embedder) {
      const ArtifactStore* store = &*state.artifacts;
      host.embedder = o.make_embedder(host.registry, [store](const std::string& digest) {
        const std::optional<ObjectInfo> info = store->stat(digest);
        if (!info) throw std::runtime_error("no artifact " + digest + " in the store");
        return info->path;
      });
    }
    return std::shared_ptr<pipelines::Embedder>(loaded.host, host.embedder.get());
  }

  std::vector<http::Route> routes() {
    std::vector<http::Route> r;
    coordinator::add_job_routes(state, r);
    coordinator::add_artifact_routes(state, r);
    coordinator::add_config_routes(state, r);
    coordinator::add_telemetry_routes(state, r);
    coordinator::add_log_routes(state, r);
    coordinator::add_knob_routes(state, r);
    coordinator::add_manifest_routes(state, r);
    coordinator::add_host_routes(state, r);
    coordinator::add_pipeline_routes(state, r);
    coordinator::add_event_routes(state, r);
    coordinator::add_web_routes(state, r);
    coordinator::add_metrics_routes(state, r);
    return answering_disk_full(std::move(r), state);
  }

  void sweep_loop() {
    std::unique_lock lock(sweep_mu);
    while (!sweep_cv.wait_for(lock, state.options.sweep_every, [&] { return stopping; })) {
      lock.unlock();
      try {
        const std::size_t lost = state.queue.sweep_stale().size();
        state.metrics.stale_sweeps.inc();
        state.metrics.swept_leases.inc(lost);
      } catch (const std::exception& e) {
        // A busy or failing database is not a reason to stop sweeping: the next round retries.
        state.log_error(std::string("stale sweep failed (retrying): ") + e.what());
      }
      try {
        coordinator::settle_trainings(state);
      } catch (const std::exception& e) {
        state.log_error(std::string("settling pipeline trainings failed (retrying): ") + e.what());
      }
      lock.lock();
    }
  }
};

Coordinator::Coordinator(CoordinatorOptions options) {
  // Validated before the data directory is opened: a bad manifest leaves nothing behind.
  const std::optional<LoadedManifest> manifest = load_validated(options);
  for (auto& h : coordinator::security_headers())
    options.http.response_headers.push_back(std::move(h));
  impl_ = std::make_unique<Impl>(std::move(options));
  if (manifest) {
    for (const std::string& w : impl_->apply(*manifest, false).warnings)
      impl_->state.log_error("manifest " + w);
  }
  http::ServerOptions http = impl_->state.options.http;
  // The options' own observer (if any) still sees every request.
  http.on_request = [m = &impl_->state.metrics,
                     theirs = std::move(http.on_request)](const http::RequestObservation& r) {
    m->observe_request(r);
    if (theirs) theirs(r);
  };
  impl_->server = std::make_unique<http::Server>(std::move(http), impl_->routes());
  impl_->sweeper = std::thread([this] { impl_->sweep_loop(); });
}

Coordinator::~Coordinator() {
  stop();
}

std::uint16_t Coordinator::port() const {
  return impl_->server->port();
}

std::string Coordinator::url() const {
  const bool tls = !impl_->state.options.http.tls_cert_file.empty();
  return std::string(tls ? "https://" : "http://") + impl_->state.options.http.bind + ":" +
         std::to_string(port());
}

ReloadSummary Coordinator::reload(bool dry_run) {
  return impl_->reload(dry_run);
}

void Coordinator::stop() {
  {
    std::lock_guard lock(impl_->sweep_mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  impl_->sweep_cv.notify_all();
  if (impl_->sweeper.joinable()) impl_->sweeper.join();
  if (impl_->server) impl_->server->stop();
}

}  // namespace tv::fleet
