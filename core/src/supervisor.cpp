#include "trainvisor/core/supervisor.hpp"

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

}  // namespace

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
  for (const auto& w : writes)
    batch.push_back({w.path, to_block_value(next[w.path])});
  batch.push_back(
      {std::string(knobs::kRevision), shm::Value::i64(static_cast<std::int64_t>(revision))});
  writer_.apply(batch);
  revision_ = revision;
  next[std::string(knobs::kRevision)] = static_cast<std::int64_t>(revision_);
  config_ = std::move(next);
  out.applied = true;
  out.revision = revision_;
  return out;
}

void BlockConfigSink::remove_block() {
  shm::ConfigBlockWriter::remove(writer_.name());
}

Supervisor::Supervisor(shm::ConfigBlockReader reader, ConfigSink& sink)
    : reader_(std::move(reader)),
      telemetry_(reader_.telemetry_reader()),
      sink_(sink),
      buffer_(512) {}

void Supervisor::add_policy(std::string name, std::unique_ptr<plugin::Policy> policy) {
  policies_.push_back({std::move(name), std::move(policy)});
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
  for (Entry& e : policies_) {
    if (e.stopped) continue;
    plugin::Decision d;
    try {
      d = e.policy->observe(history_, first_new, sink_.config());
    } catch (const std::exception& ex) {
      // A policy must not throw; if one does, it is disabled rather than allowed to loop.
      e.stopped = true;
      events.push_back({"policy:" + e.name,
                        history_.back().step,
                        {},
                        false,
                        std::string("policy threw and was disabled: ") + ex.what(),
                        {}});
      continue;
    }
    if (d.writes.empty() && !d.stop && d.stop_reason.empty()) continue;
    SupervisorEvent ev{
        "policy:" + e.name, history_.back().step, d.writes, d.stop, d.stop_reason, {}};
    if (d.stop) {
      e.stopped = true;
      const bool has_stop_write = std::any_of(d.writes.begin(), d.writes.end(), [](const auto& w) {
        return w.path == knobs::kEarlyStop;
      });
      if (!has_stop_write)
        ev.writes.push_back({std::string(knobs::kEarlyStop), true, d.stop_reason});
    }
    if (d.dry_run) {
      ev.outcome.reason = "dry run: not applied";
    } else if (!ev.writes.empty()) {
      ev.outcome = sink_.apply(ev.writes, ev.actor);
    }
    events.push_back(std::move(ev));
  }
  return events;
}

}  // namespace tv
