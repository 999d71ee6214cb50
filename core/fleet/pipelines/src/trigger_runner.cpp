#include "trainvisor/fleet/pipelines/trigger_runner.hpp"

#include <time.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/pipelines/embedder.hpp"
#include "trainvisor/fleet/pipelines/pipeline_store.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"
#include "trainvisor/fleet/pipelines/training_plan.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::pipelines {
namespace {

// What a trigger's state depends on: the plugin, its parameters, the stream's shape and what
// it reads of each sample.
std::string trigger_key(const PipelineSpec& spec) {
  nlohmann::json j = {{"trigger", spec.trigger},
                      {"params", params_json(spec.trigger_params)},
                      {"shape", spec.stream.sample_shape}};
  // Only when not raw, so that the keys of pipelines from before embeddings existed stand.
  if (spec.trigger_features != TriggerFeatures::kRaw)
    j["features"] = to_string(spec.trigger_features);
  return sha256_hex(j.dump());
}

std::string stats_json(const plugin::TriggerEvaluation& e) {
  nlohmann::json j = nlohmann::json::object();
  for (const plugin::TriggerStat& s : e.stats)
    j[s.name] = param_value_json(s.value);
  return j.dump();
}

}  // namespace

// One pipeline as the runner holds it. Replaced as a whole by set_pipelines; the runner thread
// keeps the one it is working on alive through its shared_ptr.
struct Entry {
  PipelineSpec spec;
  std::string key;
  std::shared_ptr<const HostTriggerServices> services;  // outlives `trigger`
  std::shared_ptr<Embedder> embedder;                   // runner thread only
  std::unique_ptr<plugin::Trigger> trigger;             // runner thread only
  std::string features_model;                           // runner thread only (embeddings)
  std::atomic<std::int64_t> trigger_cpu_ns{0};          // spent in observe(), embedding included
  std::atomic<std::int64_t> trigger_wall_ns{0};
  std::optional<PipelineCursor> cursor;  // runner thread only
  // The stream's end when the manifest named the pipeline: where a new cursor starts (samples
  // stored before are the initial pass's), whenever the runner thread gets to it.
  std::int64_t start_seq = 0, start_sample = 0;
  std::string error;  // guarded by the runner's mutex
};

struct TriggerRunner::Impl {
  SegmentStore& segments;
  PipelineStore& store;
  RunnerHooks hooks;

  mutable std::mutex mu;
  std::condition_variable wake, idle;
  std::map<std::string, std::shared_ptr<Entry>> entries;  // guarded by mu
  std::deque<std::string> dirty;                          // guarded by mu
  // Batches just ingested, by segment digest, oldest first (TriggerRunner::notify).
  std::deque<std::pair<std::string, std::shared_ptr<const SampleBatchData>>> held;  // mu
  std::size_t held_bytes = 0;                                                       // mu
  bool busy = false, stopping = false;                                              // guarded by mu
  std::thread thread;

  Impl(SegmentStore& s, PipelineStore& p, RunnerHooks h)
      : segments(s), store(p), hooks(std::move(h)) {
    if (!hooks.log) hooks.log = [](const std::string&) {};
    thread = std::thread([this] { run(); });
  }

  void mark(const std::string& name) {  // mu held
    if (std::find(dirty.begin(), dirty.end(), name) == dirty.end()) dirty.push_back(name);
  }

  void run() {
    std::unique_lock lock(mu);
    for (;;) {
      wake.wait(lock, [&] { return stopping || !dirty.empty(); });
      if (stopping) return;
      const std::string name = dirty.front();
      dirty.pop_front();
      const auto it = entries.find(name);
      if (it == entries.end() || !it->second->error.empty()) {
        if (dirty.empty()) idle.notify_all();
        continue;
      }
      std::shared_ptr<Entry> entry = it->second;
      busy = true;
      lock.unlock();
      std::string error;
      try {
        step(*entry);
      } catch (const std::exception& e) {
        error = e.what();
      }
      // Outside the lock: the log may be anything the coordinator's owner gave it.
      if (!error.empty()) hooks.log("pipeline '" + name + "' stopped: " + error);
      lock.lock();
      busy = false;
      if (!error.empty()) entry->error = error;
      if (dirty.empty()) idle.notify_all();
    }
  }

  void step(Entry& e) {
    if (!e.trigger) begin(e);
    read_new_segments(e);
  }

  static std::unique_ptr<plugin::Trigger> make_trigger(const Entry& e) {
    std::string error;
    auto trigger = e.services->create_typed(e.spec.trigger, e.spec.trigger_params, error);
    if (!trigger) throw std::runtime_error(error);
    return trigger;
  }

  // Makes the trigger, starts or resumes the cursor, rebuilds the trigger's state, and enqueues
  // again the trainings a crash may have left out of the queue.
  void begin(Entry& e) {
    if (hooks.preflight) {
      if (const std::optional<std::string> why = hooks.preflight(e.spec))
        throw std::runtime_error(*why);
    }
    auto trigger = make_trigger(e);
    const std::vector<SegmentInfo> all = segments.segments(e.spec.name);
    const std::int64_t end_seq = static_cast<std::int64_t>(all.size());
    const bool replay = e.spec.initial_pass == InitialPass::kReplay;
    std::optional<PlannedTraining> initial;
    const std::optional<PipelineCursor> before = store.cursor(e.spec.name);
    if (e.spec.initial_pass == InitialPass::kTrain && e.start_sample > 0 &&
        (!before || before->trigger_key != e.key)) {
      const Firing f{before ? before->triggers : 0, e.start_sample,
                     all[static_cast<std::size_t>(e.start_seq - 1)].last_time_ns,
                     "initial pass: the " + std::to_string(e.start_sample) +
                         " samples present when the pipeline started",
                     "{}"};
      initial = plan(e, f, all);
    }
    e.cursor =
        store.start(e.spec.name, e.key, replay ? 0 : e.start_seq, replay ? 0 : e.start_sample,
                    initial ? std::optional<TriggerRecord>(initial->record) : std::nullopt);
    const std::int64_t from = embeddings(e) ? resume_features(e) : e.cursor->origin_seq;
    for (std::int64_t seq = from; seq < e.cursor->next_seq && seq < end_seq; ++seq) {
      const SampleBatchData batch = segments.read(all[static_cast<std::size_t>(seq)].digest);
      plugin::TriggerDecision ignored;
      observe(e, *trigger, batch, seq, ignored);
    }
    e.trigger = std::move(trigger);
    requeue_missing(e, all);
    hooks.log("pipeline '" + e.spec.name + "': trigger '" + e.spec.trigger +
              "' reads from segment " + std::to_string(e.cursor->next_seq) + " (" +
              std::to_string(e.cursor->triggers) + " firings so far)");
  }

  static bool embeddings(const Entry& e) {
    return e.spec.trigger_features == TriggerFeatures::kEmbeddings;
  }

  // Hands `batch` (segment `seq`) to `trigger`: as the model in effect embeds it, when the
  // trigger reads embeddings.
  static std::int64_t thread_cpu_ns() {
    timespec t{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return std::int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec;
  }

  static void observe(Entry& e, plugin::Trigger& trigger, const SampleBatchData& batch,
                      std::int64_t seq, plugin::TriggerDecision& decision) {
    const std::int64_t started = thread_cpu_ns();
    const auto wall = std::chrono::steady_clock::now();
    const auto count = [&] {
      e.trigger_cpu_ns += thread_cpu_ns() - started;
      e.trigger_wall_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                               std::chrono::steady_clock::now() - wall)
                               .count();
    };
    try {
      observe_features(e, trigger, batch, seq, decision);
    } catch (...) {
      count();
      throw;
    }
    count();
  }

  static void observe_features(Entry& e, plugin::Trigger& trigger, const SampleBatchData& batch,
                               std::int64_t seq, plugin::TriggerDecision& decision) {
    std::string error;
    bool ok = false;
    if (!embeddings(e)) {
      ok = trigger.observe(batch.view(), decision, error);
    } else {
      if (!e.embedder) {
        throw std::runtime_error(
            "its trigger reads embeddings (features = \"embeddings\"), and this coordinator has "
            "no model runtime to embed samples with");
      }
      const SampleBatchData embedded = e.embedder->embed(e.spec, e.features_model, batch);
      ok = trigger.observe(embedded.view(), decision, error);
    }
    if (!ok) throw std::runtime_error("segment " + std::to_string(seq) + ": " + error);
  }

  static std::string model_name(const Entry& e, const std::string& digest) {
    return digest.empty()
               ? "the initial model drawn from seed " + std::to_string(e.spec.training.seed)
               : "model " + digest.substr(0, 12);
  }

  // The model whose embeddings the trigger reads now: the one deployed under the pipeline's
  // alias, else its initial model ("" when drawn from its seed).
  std::string model_in_effect(const Entry& e) {
    if (const auto a = store.alias(e.spec.deployment.alias)) return a->digest;
    const InitialModel& m = e.spec.initial_model;
    if (m.kind == InitialModelKind::kArtifact) return m.ref;
    if (m.kind == InitialModelKind::kPipeline) {
      std::lock_guard lock(mu);
      const auto it = entries.find(m.ref);
      if (it != entries.end()) {
        if (const auto a = store.alias(it->second->spec.deployment.alias)) return a->digest;
      }
    }
    return "";
  }

  // Where a trigger reading embeddings rebuilds its state from at start: where the model in
  // effect began, when it is the one recorded; else the cursor, afresh.
  std::int64_t resume_features(Entry& e) {
    e.features_model = model_in_effect(e);
    const std::optional<FeatureModel> rec = store.feature_model(e.spec.name);
    if (rec && rec->trigger_key == e.key && rec->model == e.features_model &&
        rec->origin_seq <= e.cursor->next_seq) {
      return std::max(rec->origin_seq, e.cursor->origin_seq);
    }
    store.set_feature_model(e.spec.name, {e.key, e.features_model, e.cursor->next_seq});
    if (rec && rec->trigger_key == e.key) {
      hooks.log("pipeline '" + e.spec.name + "': the model in effect changed while stopped, to " +
                model_name(e, e.features_model) + "; the trigger starts afresh on its embeddings");
    }
    return e.cursor->next_seq;
  }

  // Before segment `seq`: a trigger reading embeddings starts afresh when the model in effect
  // changed since it began.
  void follow_model(Entry& e, std::int64_t seq) {
    std::string now = model_in_effect(e);
    if (now == e.features_model) return;
    e.trigger = make_trigger(e);
    store.set_feature_model(e.spec.name, {e.key, now, seq});
    hooks.log("pipeline '" + e.spec.name + "': the trigger starts afresh at segment " +
              std::to_string(seq) + " on the embeddings of " + model_name(e, now) + " (was " +
              model_name(e, e.features_model) + ")");
    e.features_model = std::move(now);
  }

  void requeue_missing(Entry& e, const std::vector<SegmentInfo>& all) {
    for (const TriggerRecord& r : store.training()) {
      if (r.pipeline != e.spec.name || hooks.has_job(r.job_id)) continue;
      const Firing f{r.index, r.end_sample, r.time_ns, r.reason, r.stats_json};
      // A finetune's window began where the firing before it ended.
      PlannedTraining p = plan_with(e, f, all, r.initial_weights, r.window_begin);
      if (p.job.id != r.job_id) {
        hooks.log("pipeline '" + e.spec.name + "': firing " + std::to_string(r.index) +
                  "'s job is not in the queue and the manifest changed since; it is not enqueued");
        continue;
      }
      hooks.enqueue({p.job});
    }
  }

  // The weights a new training starts from.
  std::string initial_weights(const Entry& e) const {
    const PipelineSpec& s = e.spec;
    std::string initial;
    if (s.initial_model.kind == InitialModelKind::kArtifact) initial = s.initial_model.ref;
    if (s.initial_model.kind == InitialModelKind::kPipeline) {
      for (const auto& [name, other] : entries) {
        if (name != s.initial_model.ref) continue;
        if (auto a = store.alias(other->spec.deployment.alias)) initial = a->digest;
      }
    }
    if (s.strategy.kind == StrategyKind::kFinetune) {
      const std::vector<TriggerRecord> done = store.triggers(s.name);
      for (auto it = done.rbegin(); it != done.rend(); ++it) {
        if (!it->model.empty()) {
          initial = it->model;
          break;
        }
      }
    }
    return initial;
  }

  PlannedTraining plan_with(const Entry& e, const Firing& f, const std::vector<SegmentInfo>& all,
                            const std::string& initial, std::int64_t previous_end) const {
    PlanInputs in;
    in.spec = &e.spec;
    in.firing = f;
    in.previous_end = previous_end;
    in.origin_sample = e.cursor ? origin_sample(*e.cursor, all) : 0;
    in.segments = &all;
    in.initial_weights = initial;
    return plan_training(in);
  }

  static std::int64_t origin_sample(const PipelineCursor& c, const std::vector<SegmentInfo>& all) {
    const auto i = static_cast<std::size_t>(c.origin_seq);
    return i < all.size() ? all[i].first_sample : c.end_sample;
  }

  // `previous_end`: where the firing before this one ended; -1 to look it up in the store.
  PlannedTraining plan(const Entry& e, const Firing& f, const std::vector<SegmentInfo>& all,
                       std::int64_t previous_end = -1) {
    std::unique_lock lock(mu);  // initial_weights reads `entries`
    const std::string initial = initial_weights(e);
    lock.unlock();
    if (previous_end < 0) {
      const std::vector<TriggerRecord> before = store.triggers(e.spec.name);
      previous_end = before.empty() ? 0 : before.back().end_sample;
    }
    return plan_with(e, f, all, initial, previous_end);
  }

  // The segment's batch: the one ingest handed over, else read back from its file.
  std::shared_ptr<const SampleBatchData> batch_of(const SegmentInfo& seg) {
    {
      std::lock_guard lock(mu);
      for (auto it = held.begin(); it != held.end(); ++it) {
        if (it->first != seg.digest) continue;
        std::shared_ptr<const SampleBatchData> b = it->second;
        held_bytes -= b->features.size() * sizeof(float);
        held.erase(it);
        return b;
      }
    }
    return std::make_shared<const SampleBatchData>(segments.read(seg.digest));
  }

  // One segment at a time from the cursor; the whole stream's index is read only when a firing
  // needs its window, not for every batch ingested.
  void read_new_segments(Entry& e) {
    std::optional<std::vector<SegmentInfo>> all;
    for (;;) {
      const std::vector<SegmentInfo> next = segments.segments(e.spec.name, e.cursor->next_seq, 1);
      if (next.empty()) return;
      const SegmentInfo& seg = next.front();
      const std::shared_ptr<const SampleBatchData> held_batch = batch_of(seg);
      if (embeddings(e)) follow_model(e, seg.seq);
      plugin::TriggerDecision decision;
      observe(e, *e.trigger, *held_batch, seg.seq, decision);
      std::vector<TriggerRecord> records;
      std::vector<JobSpec> jobs;
      std::int64_t previous_end = -1;
      for (const plugin::TriggerEvaluation& ev : decision.evaluations) {
        if (!ev.fired) continue;
        const Firing f{e.cursor->triggers + static_cast<std::int64_t>(records.size()),
                       seg.first_sample + static_cast<std::int64_t>(ev.row) + 1, ev.time_ns,
                       ev.reason, stats_json(ev)};
        if (!all || static_cast<std::int64_t>(all->size()) <= seg.seq)
          all = segments.segments(e.spec.name);
        // A second firing in one segment follows the first, which is not stored yet.
        PlannedTraining p = plan(e, f, *all, previous_end);
        previous_end = f.end_sample;
        records.push_back(p.record);
        jobs.push_back(std::move(p.job));
      }
      store.advance(e.spec.name, seg.seq, seg.rows, records);
      e.cursor->next_seq = seg.seq + 1;
      e.cursor->end_sample += seg.rows;
      e.cursor->triggers += static_cast<std::int64_t>(records.size());
      if (!jobs.empty()) hooks.enqueue(jobs);
      for (const TriggerRecord& r : records) {
        hooks.log("pipeline '" + e.spec.name + "': firing " + std::to_string(r.index) +
                  " at sample " + std::to_string(r.end_sample) + " (" + r.reason + "): job " +
                  r.job_id.substr(0, 12));
      }
    }
  }
};

TriggerRunner::TriggerRunner(SegmentStore& segments, PipelineStore& store, RunnerHooks hooks)
    : impl_(std::make_unique<Impl>(segments, store, std::move(hooks))) {}

TriggerRunner::~TriggerRunner() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  impl_->thread.join();
}

void TriggerRunner::set_pipelines(std::vector<PipelineSpec> pipelines,
                                  std::shared_ptr<const HostTriggerServices> services,
                                  std::shared_ptr<Embedder> embedder) {
  std::lock_guard lock(impl_->mu);
  std::map<std::string, std::shared_ptr<Entry>> next;
  for (PipelineSpec& spec : pipelines) {
    auto e = std::make_shared<Entry>();
    e->key = trigger_key(spec);
    e->spec = std::move(spec);
    e->services = services;
    e->embedder = embedder;
    // Read now, not when the runner thread first gets to the pipeline: what is ingested after
    // the manifest named it is the trigger's to see.
    if (const std::optional<SegmentInfo> last = impl_->segments.last(e->spec.name)) {
      e->start_seq = last->seq + 1;
      e->start_sample = last->first_sample + last->rows;
    }
    next[e->spec.name] = std::move(e);
  }
  impl_->entries = std::move(next);
  impl_->dirty.clear();
  for (const auto& [name, e] : impl_->entries)
    impl_->mark(name);
  impl_->wake.notify_all();
}

std::optional<PipelineSpec> TriggerRunner::pipeline(const std::string& name) const {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->entries.find(name);
  if (it == impl_->entries.end()) return std::nullopt;
  return it->second->spec;
}

std::vector<std::string> TriggerRunner::names() const {
  std::lock_guard lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [name, e] : impl_->entries)
    out.push_back(name);
  return out;
}

void TriggerRunner::notify(const std::string& pipeline,
                           std::shared_ptr<const SampleBatchData> batch,
                           const std::string& digest) {
  std::lock_guard lock(impl_->mu);
  if (!impl_->entries.count(pipeline)) return;
  if (batch && !digest.empty()) {
    impl_->held_bytes += batch->features.size() * sizeof(float);
    impl_->held.emplace_back(digest, std::move(batch));
    while (impl_->held_bytes > kHeldBytes) {
      impl_->held_bytes -= impl_->held.front().second->features.size() * sizeof(float);
      impl_->held.pop_front();
    }
  }
  impl_->mark(pipeline);
  impl_->wake.notify_all();
}

void TriggerRunner::drain() {
  std::unique_lock lock(impl_->mu);
  for (const auto& [name, e] : impl_->entries)
    impl_->mark(name);
  impl_->wake.notify_all();
  impl_->idle.wait(lock, [&] { return impl_->stopping || (impl_->dirty.empty() && !impl_->busy); });
}

std::vector<PipelineStatus> TriggerRunner::status() const {
  struct Named {
    std::string name, error;
    bool embeddings = false;
    std::int64_t cpu_ns = 0, wall_ns = 0;
  };
  std::vector<Named> names;
  {
    std::lock_guard lock(impl_->mu);
    for (const auto& [name, e] : impl_->entries)
      names.push_back({name, e->error, Impl::embeddings(*e), e->trigger_cpu_ns.load(),
                       e->trigger_wall_ns.load()});
  }
  std::vector<PipelineStatus> out;
  for (const auto& [name, error, embeddings, cpu_ns, wall_ns] : names) {
    PipelineStatus s;
    s.name = name;
    s.state = error.empty() ? "running" : "stopped";
    s.error = error;
    s.trigger_cpu_s = static_cast<double>(cpu_ns) * 1e-9;
    s.trigger_wall_s = static_cast<double>(wall_ns) * 1e-9;
    if (const auto c = impl_->store.cursor(name)) {
      s.next_seq = c->next_seq;
      s.end_sample = c->end_sample;
      s.triggers = c->triggers;
    }
    if (embeddings) {
      if (const auto f = impl_->store.feature_model(name)) {
        s.features_model = f->model;
        s.features_since_seq = f->origin_seq;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace tv::fleet::pipelines
