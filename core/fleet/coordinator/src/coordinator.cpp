#include "trainvisor/fleet/coordinator.hpp"

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "coordinator_state.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/fleet/manifest.hpp"

namespace tv::fleet {
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
    ReloadSummary out;
    const CoordinatorOptions& o = state.options;
    if (o.manifest_path.empty()) return out;
    std::vector<std::string> dirs = o.plugin_dirs;
    for (auto& d : default_plugin_dirs())
      dirs.push_back(std::move(d));
    const PluginRegistry plugins = PluginRegistry::load(dirs);
    const Manifest m = load_manifest(o.manifest_path, plugins);
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
    if (!dry_run) {
      out.report = state.queue.upsert_manifest(m.jobs);
      state.queue.upsert_hosts(m.hosts);
      // Every job's config tree starts as its manifest's hyper table, once: a reload never
      // overwrites live values.
      for (const JobSpec& j : m.jobs)
        state.hub.seed(j.id, j.hyper);
    }
    return out;
  }

  std::vector<http::Route> routes() {
    std::vector<http::Route> r;
    coordinator::add_job_routes(state, r);
    coordinator::add_artifact_routes(state, r);
    coordinator::add_config_routes(state, r);
    coordinator::add_telemetry_routes(state, r);
    coordinator::add_manifest_routes(state, r);
    return r;
  }

  void sweep_loop() {
    std::unique_lock lock(sweep_mu);
    while (!sweep_cv.wait_for(lock, state.options.sweep_every, [&] { return stopping; })) {
      lock.unlock();
      try {
        state.queue.sweep_stale();
      } catch (const std::exception& e) {
        // A busy or failing database is not a reason to stop sweeping: the next round retries.
        state.log_error(std::string("stale sweep failed (retrying): ") + e.what());
      }
      lock.lock();
    }
  }
};

Coordinator::Coordinator(CoordinatorOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->reload(false);
  impl_->server = std::make_unique<http::Server>(impl_->state.options.http, impl_->routes());
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
