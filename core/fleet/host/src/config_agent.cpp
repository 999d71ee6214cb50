#include "trainvisor/fleet/config_agent.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/api/actor.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet {
namespace {

using api::StreamMessage;

// The stream asked for a resubscription (a gap): not a failure, so no backoff.
struct Resync {};

}  // namespace

std::string lease_digest_hex(const std::string& lease_token) {
  return sha256_hex("trainvisor block lease\n" + lease_token);
}

struct ConfigAgent::Impl {
  ConfigAgentOptions o;
  std::unique_ptr<BlockConfigSink> sink;  // after construction, touched by the thread only

  mutable std::mutex mu;
  plugin::ConfigView config;
  KeyWriters writers;
  std::uint64_t revision = 0;
  std::vector<std::string> frozen;
  ConfigAgentStats stats;
  std::vector<AgentRefusal> refusals;
  api::ConfigStreamReader* client = nullptr;
  std::string last_error;

  std::atomic<bool> stopping{false};
  std::condition_variable wake;
  std::thread thread;
  std::mt19937_64 rng{std::random_device{}()};

  void log(const std::string& m) {
    if (o.log) o.log(m);
  }

  void publish() {
    std::lock_guard lock(mu);
    config = sink->config();
    writers = sink->writers();
    revision = sink->revision();
  }

  void refuse(std::uint64_t rev, const std::string& actor, const std::string& reason) {
    sink->apply_at({}, actor, rev);  // the revision is taken; the values stay
    publish();
    std::lock_guard lock(mu);
    ++stats.refused;
    refusals.push_back({rev, reason});
    log("revision " + std::to_string(rev) + " refused: " + reason);
  }

  void apply(std::uint64_t rev, const std::string& actor, const plugin::ConfigView& values) {
    std::vector<plugin::ProposedWrite> writes;
    for (const auto& [path, v] : values)
      writes.push_back({path, v, actor});
    if (const auto why = frozen_refusal(actor, writes)) {
      refuse(rev, actor, *why);
      return;
    }
    const WriteOutcome out = sink->apply_at(writes, actor, rev);
    if (!out.applied) {
      refuse(rev, actor, out.reason);
      return;
    }
    publish();
    std::lock_guard lock(mu);
    ++stats.deltas;
  }

  // Why a policy may not make these writes (one lies under a frozen prefix), or nullopt.
  std::optional<std::string> frozen_refusal(const std::string& actor,
                                            const std::vector<plugin::ProposedWrite>& writes) {
    std::lock_guard lock(mu);
    for (const auto& w : writes) {
      if (auto why = api::frozen_refusal(actor, w.path, frozen)) return why;
    }
    return std::nullopt;
  }

  void set_frozen(std::vector<std::string> f) {
    std::lock_guard lock(mu);
    frozen = std::move(f);
  }

  // Reads the stream until it breaks (throws) or shows a gap (throws Resync).
  void session(api::ConfigStreamReader& stream, bool& subscribed) {
    while (!stopping.load()) {
      StreamMessage m = stream.next(o.idle_timeout);
      sink->heartbeat();
      switch (m.type) {
        case StreamMessage::Type::kSnapshot:
          subscribed = true;
          set_frozen(std::move(m.frozen));
          m.values.erase(std::string(knobs::kRevision));
          apply(m.revision, "snapshot", m.values);
          {
            std::lock_guard lock(mu);
            ++stats.snapshots;
          }
          break;
        case StreamMessage::Type::kResume:
          subscribed = true;
          set_frozen(std::move(m.frozen));
          break;
        case StreamMessage::Type::kDelta:
          if (m.revision <= sink->revision()) break;  // already applied
          if (m.revision != sink->revision() + 1) {
            log("config stream gap: revision " + std::to_string(m.revision) + " after " +
                std::to_string(sink->revision()) + "; resubscribing");
            throw Resync{};
          }
          apply(m.revision, m.actor, m.values);
          break;
        case StreamMessage::Type::kFreeze:
          note_freeze(m.prefix, m.now_frozen);
          break;
        case StreamMessage::Type::kKeepalive:
          if (m.revision > sink->revision()) {
            log("config stream gap: the coordinator sent up to revision " +
                std::to_string(m.revision) + ", the block has " + std::to_string(sink->revision()) +
                "; resubscribing");
            throw Resync{};
          }
          break;
      }
    }
  }

  void note_freeze(const std::string& prefix, bool now_frozen) {
    std::lock_guard lock(mu);
    const auto it = std::find(frozen.begin(), frozen.end(), prefix);
    if (now_frozen && it == frozen.end()) frozen.push_back(prefix);
    if (!now_frozen && it != frozen.end()) frozen.erase(it);
  }

  // Sleeps up to `d`, heartbeating; returns early when stopping.
  void pause(std::chrono::milliseconds d) {
    const auto until = std::chrono::steady_clock::now() + d;
    std::unique_lock lock(mu);
    while (!stopping.load() && std::chrono::steady_clock::now() < until) {
      wake.wait_until(
          lock, std::min(until, std::chrono::steady_clock::now() + std::chrono::milliseconds(500)));
      lock.unlock();
      sink->heartbeat();
      lock.lock();
    }
  }

  void run() {
    auto backoff = o.backoff_min;
    while (!stopping.load()) {
      sink->heartbeat();
      bool subscribed = false, resync = false;
      try {
        api::ConfigStreamReader ws(o.coordinator, o.host_credential, o.job_id, sink->revision());
        {
          std::lock_guard lock(mu);
          client = &ws;
          ++stats.connects;
          stats.connected = true;
          if (stopping.load()) ws.interrupt();
        }
        try {
          session(ws, subscribed);
        } catch (const Resync&) {
          resync = true;
          std::lock_guard lock(mu);
          ++stats.gaps;
        } catch (const std::exception& e) {
          note_error(e.what());
        }
        {
          std::lock_guard lock(mu);
          client = nullptr;
          stats.connected = false;
        }
        if (!stopping.load()) ws.close();
      } catch (const std::exception& e) {
        note_error(e.what());
      }
      if (resync) continue;
      if (subscribed) backoff = o.backoff_min;
      std::uniform_int_distribution<long> jitter(backoff.count() / 2, backoff.count());
      pause(std::chrono::milliseconds(jitter(rng)));
      backoff = std::min(backoff * 2, o.backoff_max);
    }
  }

  void note_error(const std::string& what) {
    if (stopping.load() || what == last_error) return;
    last_error = what;
    log("config stream: " + what + "; reconnecting with backoff");
  }
};

ConfigAgent::ConfigAgent(ConfigAgentOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->o = std::move(options);
  shm::WriterOptions wo;
  if (impl_->o.lease_attempt != 0 || !impl_->o.lease_digest.empty())
    wo.lease = shm::BlockLease::from_hex(impl_->o.lease_attempt, impl_->o.lease_digest);
  impl_->sink = BlockConfigSink::adopt_or_create(impl_->o.job_id, impl_->o.initial, wo);
  impl_->stats.adopted_block = impl_->sink->adopted();
  if (const shm::RepairReport& r = impl_->sink->repair_report(); r.superseded) {
    impl_->log("block " + impl_->sink->block_name() + " belonged to " +
               (r.previous ? r.previous->describe() : "a lease being stamped") + ": stamped with " +
               wo.lease.describe() + " (its trainer stops) and replaced by a fresh block");
  }
  impl_->publish();
  impl_->thread = std::thread([this] { impl_->run(); });
}

ConfigAgent::~ConfigAgent() {
  stop();
}

void ConfigAgent::stop() {
  if (impl_->stopping.exchange(true)) {
    if (impl_->thread.joinable()) impl_->thread.join();
    return;
  }
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->client) impl_->client->interrupt();
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void ConfigAgent::remove_block() {
  stop();
  impl_->sink->remove_block();
}

std::uint64_t ConfigAgent::revision() const {
  std::lock_guard lock(impl_->mu);
  return impl_->revision;
}

plugin::ConfigView ConfigAgent::config() const {
  std::lock_guard lock(impl_->mu);
  return impl_->config;
}

KeyWriters ConfigAgent::writers() const {
  std::lock_guard lock(impl_->mu);
  return impl_->writers;
}

std::vector<std::string> ConfigAgent::frozen() const {
  std::lock_guard lock(impl_->mu);
  return impl_->frozen;
}

ConfigAgentStats ConfigAgent::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

std::vector<AgentRefusal> ConfigAgent::take_refusals() {
  std::lock_guard lock(impl_->mu);
  return std::exchange(impl_->refusals, {});
}

const std::string& ConfigAgent::block_name() const {
  return impl_->sink->block_name();
}

std::optional<std::string> ConfigAgent::block_damage() const {
  return impl_->sink->damage();
}

}  // namespace tv::fleet
