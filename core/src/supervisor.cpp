#include "trainvisor/core/supervisor.hpp"

#include <algorithm>
#include <stdexcept>

#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/telemetry_point.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/shm/block_name.hpp"

namespace tv {
namespace {

std::vector<shm::Entry> to_entries(const plugin::ConfigView& config, std::uint64_t revision) {
  std::vector<shm::Entry> out;
  for (const auto& [k, v] : config) {
    if (k != knobs::kRevision) out.push_back({k, to_block_value(v)});
  }
  out.push_back(
      {std::string(knobs::kRevision), shm::Value::i64(static_cast<std::int64_t>(revision))});
  return out;
}

plugin::ConfigView complete(const plugin::ConfigView& initial) {
  plugin::Params given(initial.begin(), initial.end());
  given.erase(std::string(knobs::kRevision));
  const plugin::Params all = resolve_params(knobs::schema(), given, "config");
  return plugin::ConfigView(all.begin(), all.end());
}

bool is_human_actor(const std::string& actor) {
  return actor.rfind("human:", 0) == 0;
}

std::string plural(std::int64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

}  // namespace

std::vector<plugin::ParamSpec> human_grace_params() {
  plugin::ParamSpec evals;
  evals.key = kHumanGraceEvalsKey;
  evals.type = plugin::ParamType::kInt64;
  evals.default_value = HumanGrace{}.evals;
  evals.min = 0;
  evals.max = 1'000'000;
  evals.help =
      "after a human writes a key, this policy leaves it alone through this many evaluations "
      "run with the human's value";
  plugin::ParamSpec steps = evals;
  steps.key = kHumanGraceStepsKey;
  steps.default_value = HumanGrace{}.steps;
  steps.max = 1'000'000'000;
  steps.help =
      "after a human writes a key, this policy leaves it alone for at most this many training "
      "steps run with the human's value";
  return {evals, steps};
}

HumanGrace take_human_grace(plugin::Params& params) {
  HumanGrace grace;
  for (auto [key, field] : {std::pair{kHumanGraceEvalsKey, &grace.evals},
                            std::pair{kHumanGraceStepsKey, &grace.steps}}) {
    const auto it = params.find(key);
    if (it == params.end()) continue;
    if (const auto* v = std::get_if<std::int64_t>(&it->second)) *field = *v;
    params.erase(it);
  }
  return grace;
}

shm::Value to_block_value(const plugin::ParamValue& v) {
  return std::visit(
      [](const auto& x) -> shm::Value {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, double>)
          return shm::Value::f64(x);
        else if constexpr (std::is_same_v<T, std::int64_t>)
          return shm::Value::i64(x);
        else if constexpr (std::is_same_v<T, bool>)
          return shm::Value::boolean(x);
        else
          return shm::Value::string(x);
      },
      v);
}

plugin::ParamValue from_block_value(const shm::Value& v) {
  switch (v.type()) {
    case shm::ValueType::kFloat64:
      return v.as_f64();
    case shm::ValueType::kInt64:
      return v.as_i64();
    case shm::ValueType::kBool:
      return v.as_bool();
    case shm::ValueType::kString:
    case shm::ValueType::kNone:
      break;
  }
  return std::string(v.as_string());
}

BlockConfigSink::BlockConfigSink(const std::string& job_id, const plugin::ConfigView& initial,
                                 const shm::WriterOptions& options)
    : config_(complete(initial)),
      writer_(shm::ConfigBlockWriter::open_or_create(shm::block_name_for_job(job_id), options,
                                                     to_entries(config_, 1))) {
  config_[std::string(knobs::kRevision)] = std::int64_t{1};
}

BlockConfigSink::BlockConfigSink(const std::string& job_id, plugin::ConfigView config,
                                 std::uint64_t revision, const shm::WriterOptions& options)
    : config_(std::move(config)),
      revision_(revision),
      writer_(shm::ConfigBlockWriter::open_or_create(shm::block_name_for_job(job_id), options,
                                                     to_entries(config_, revision))),
      adopted_(writer_.repair_report().took_over) {
  config_[std::string(knobs::kRevision)] = static_cast<std::int64_t>(revision_);
}

std::unique_ptr<BlockConfigSink> BlockConfigSink::adopt_or_create(
    const std::string& job_id, const plugin::ConfigView& initial,
    const shm::WriterOptions& options) {
  std::optional<shm::ConfigBlockReader> existing;
  try {
    existing.emplace(shm::ConfigBlockReader::attach(shm::block_name_for_job(job_id)));
  } catch (const shm::ShmError&) {
    // No usable block: a fresh one is made from `initial`.
  }
  // Another lease's block is not resumed from: the writer replaces it with a fresh one.
  if (existing && existing->lease() != options.lease) existing.reset();
  if (!existing) return std::make_unique<BlockConfigSink>(job_id, initial, options);
  plugin::ConfigView config = complete(initial);
  std::uint64_t revision = 1;
  for (const shm::KeyEntry& e : existing->entries()) {
    if (!e.consistent) continue;  // its source value (initial) is written back instead
    if (e.path == knobs::kRevision) {
      revision = static_cast<std::uint64_t>(e.value.as_i64());
    } else if (knobs::find(e.path)) {
      config[e.path] = from_block_value(e.value);
    }
  }
  return std::unique_ptr<BlockConfigSink>(
      new BlockConfigSink(job_id, std::move(config), revision, options));
}

WriteOutcome BlockConfigSink::apply(const std::vector<plugin::ProposedWrite>& writes,
                                    const std::string& actor) {
  if (writes.empty()) {
    WriteOutcome out;
    out.reason = "no writes";
    return out;
  }
  return apply_at(writes, actor, revision_ + 1);
}

WriteOutcome BlockConfigSink::apply_at(const std::vector<plugin::ProposedWrite>& writes,
                                       const std::string& actor, std::uint64_t revision) {
  WriteOutcome out;
  plugin::ConfigView next = config_;
  for (const auto& w : writes) {
    if (w.path == knobs::kRevision) {
      out.reason = actor + ": " + w.path + " is written by the config agent only";
      return out;
    }
    if (const auto why = knobs::check(w.path, w.value)) {
      out.reason = actor + ": " + *why;
      return out;
    }
    next[w.path] = as_declared_type(*knobs::find(w.path), w.value);
  }
  std::vector<shm::Entry> batch;
  for (const auto& w : writes) {
    batch.push_back({w.path, to_block_value(next[w.path])});
    // A resync restates values: who wrote an unchanged one is still known.
    const auto old = config_.find(w.path);
    const bool restated =
        actor == "snapshot" && old != config_.end() && old->second == next[w.path];
    if (!restated) writers_[w.path] = {actor, revision, next[w.path]};
  }
  batch.push_back(
      {std::string(knobs::kRevision), shm::Value::i64(static_cast<std::int64_t>(revision))});
  writer_.apply(batch);
  revision_ = revision;
  next[std::string(knobs::kRevision)] = static_cast<std::int64_t>(revision_);
  config_ = std::move(next);
  out.applied = true;
  out.fate = plugin::WriteFate::kApplied;
  out.revision = revision_;
  return out;
}

void BlockConfigSink::remove_block() {
  writer_.remove_own();
}

Supervisor::Supervisor(shm::ConfigBlockReader reader, ConfigSink& sink)
    : reader_(std::move(reader)),
      telemetry_(reader_.telemetry_reader()),
      sink_(sink),
      buffer_(512) {}

void Supervisor::add_policy(std::string name, std::unique_ptr<plugin::Policy> policy,
                            HumanGrace grace) {
  policies_.push_back({std::move(name), std::move(policy), grace});
}

void Supervisor::track_human_writes(std::size_t first_new) {
  for (const auto& [path, writer] : sink_.writers()) {
    if (!is_human_actor(writer.actor)) continue;
    HumanWriteProgress& p = human_writes_[path];
    if (p.revision != writer.revision) p = {writer.revision, std::nullopt, 0};
    for (std::size_t i = first_new; i < history_.size(); ++i) {
      const plugin::TelemetryPoint& point = history_[i];
      if (point.config_revision < p.revision) continue;
      if (!p.since_step) p.since_step = point.step;
      if (point.flags & plugin::kTelemetryEval) ++p.evals;
    }
  }
}

std::vector<plugin::HumanHold> Supervisor::holds(const HumanGrace& grace) const {
  std::vector<plugin::HumanHold> out;
  for (const auto& [path, writer] : sink_.writers()) {
    const auto progress = human_writes_.find(path);
    if (!is_human_actor(writer.actor) || progress == human_writes_.end()) continue;
    const HumanWriteProgress& p = progress->second;
    plugin::HumanHold hold{path, writer.actor, writer.revision, writer.value, p.since_step, ""};
    if (!p.since_step) {
      hold.until = "until the trainer has run " + plural(grace.evals, "evaluation") + " or " +
                   plural(grace.steps, "step") + " with it";
      out.push_back(std::move(hold));
      continue;
    }
    const std::uint64_t end_step = *p.since_step + static_cast<std::uint64_t>(grace.steps);
    // Decisions made on the first `grace.evals` evaluations with the human's value are held.
    if (p.evals > grace.evals || history_.back().step >= end_step) continue;
    const std::int64_t more = grace.evals - p.evals;  // held evaluations still to come
    hold.until = (more == 0 ? std::string("until the next evaluation")
                            : "for " + plural(more, "more evaluation")) +
                 " or until step " + std::to_string(end_step);
    out.push_back(std::move(hold));
  }
  return out;
}

void Supervisor::settle(SupervisorEvent& ev, bool dry_run,
                        const std::vector<plugin::HumanHold>& holds) {
  std::vector<plugin::ProposedWrite> sent;
  std::vector<std::string> refusals;
  for (const plugin::ProposedWrite& w : ev.writes) {
    const auto hold = std::find_if(holds.begin(), holds.end(),
                                   [&](const plugin::HumanHold& h) { return h.path == w.path; });
    if (dry_run) {
      ev.results.push_back({w.path, plugin::WriteFate::kDryRun, 0, "dry run: not applied"});
    } else if (hold != holds.end()) {
      const std::string why = w.path + " held by " + hold->actor + "'s write of revision " +
                              std::to_string(hold->revision) + " (" +
                              param_value_text(hold->value) + ") " + hold->until;
      ev.results.push_back({w.path, plugin::WriteFate::kHeld, 0, why});
      refusals.push_back(why);
    } else {
      sent.push_back(w);
    }
  }
  if (dry_run) {
    ev.outcome.reason = "dry run: not applied";
    ev.outcome.fate = plugin::WriteFate::kDryRun;
    return;
  }
  if (!sent.empty()) {
    const WriteOutcome out = sink_.apply(sent, ev.actor);
    for (const plugin::ProposedWrite& w : sent)
      ev.results.push_back({w.path, out.fate, out.revision, out.reason});
    if (!out.reason.empty()) refusals.insert(refusals.begin(), out.reason);
    ev.outcome = out;
  } else {
    ev.outcome.fate = plugin::WriteFate::kHeld;
  }
  ev.outcome.reason.clear();
  for (const std::string& r : refusals)
    ev.outcome.reason += (ev.outcome.reason.empty() ? "" : "; ") + r;
}

bool Supervisor::run(Entry& e, std::size_t first_new, SupervisorEvent& ev) {
  ev.actor = "policy:" + e.name;
  ev.step = history_.back().step;
  const std::vector<plugin::HumanHold> held = holds(e.grace);
  plugin::Decision d;
  try {
    d = e.policy->observe({history_, first_new, sink_.config(), held});
  } catch (const std::exception& ex) {
    // A policy must not throw; if one does, it is disabled rather than allowed to loop.
    e.stopped = true;
    ev.stop_reason = std::string("policy threw and was disabled: ") + ex.what();
    return true;
  }
  if (d.writes.empty() && !d.stop && d.stop_reason.empty() && d.note.empty()) return false;
  ev.writes = d.writes;
  ev.stop = d.stop;
  ev.stop_reason = d.stop_reason;
  ev.note = d.note;
  if (d.stop) {
    const bool has_stop_write = std::any_of(d.writes.begin(), d.writes.end(), [](const auto& w) {
      return w.path == knobs::kEarlyStop;
    });
    if (!has_stop_write) ev.writes.push_back({std::string(knobs::kEarlyStop), true, d.stop_reason});
  }
  if (ev.writes.empty()) return true;
  settle(ev, d.dry_run, held);
  plugin::DecisionOutcome told{ev.results};
  // A stop that was refused (a human holds early_stop) leaves the policy running.
  if (d.stop && told.accepted(std::string(knobs::kEarlyStop))) e.stopped = true;
  try {
    e.policy->outcome(told);
  } catch (const std::exception& ex) {
    e.stopped = true;
    ev.stop_reason = std::string("policy threw and was disabled: ") + ex.what();
  }
  return true;
}

std::vector<SupervisorEvent> Supervisor::poll() {
  if (history_.size() >= 2 * kHistoryKeep) {
    const std::size_t drop = history_.size() - kHistoryKeep;
    history_.erase(history_.begin(), history_.begin() + static_cast<std::ptrdiff_t>(drop));
    dropped_ += drop;
  }
  const std::size_t first_new = history_.size();
  while (true) {
    const shm::PollResult r = telemetry_.poll(buffer_);
    missed_ += r.missed;
    for (std::size_t i = 0; i < r.count; ++i)
      history_.push_back(to_telemetry_point(buffer_[i]));
    if (r.count < buffer_.size()) break;
  }
  std::vector<SupervisorEvent> events;
  if (history_.size() == first_new) return events;
  track_human_writes(first_new);
  for (Entry& e : policies_) {
    if (e.stopped) continue;
    SupervisorEvent ev;
    if (run(e, first_new, ev)) events.push_back(std::move(ev));
  }
  return events;
}

}  // namespace tv
