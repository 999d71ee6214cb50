#include "live_config.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/plugin_registry.hpp"
#include "trainvisor/core/supervisor.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {
namespace {

using nlohmann::json;
using plugin::ParamValue;

}  // namespace

json value_json(const ParamValue& v) {
  return std::visit([](const auto& x) { return json(x); }, v);
}

json Knobs::to_json() const {
  json j = json::object();
  for (std::size_t k = 0; k < values.size(); ++k)
    j[knobs::schema()[k].key] = value_json(values[k]);
  return j;
}

std::size_t Knobs::index(std::string_view key) {
  const auto& s = knobs::schema();
  for (std::size_t k = 0; k < s.size(); ++k) {
    if (s[k].key == key) return k;
  }
  throw std::logic_error("no knob " + std::string(key));
}

Knobs Knobs::resolve(const std::map<std::string, ParamValue>& given) {
  plugin::Params params;
  for (const auto& [k, v] : given)
    params[k] = v;
  Knobs out;
  try {
    const plugin::Params resolved = resolve_params(knobs::schema(), params, "trainer knobs");
    for (const auto& spec : knobs::schema())
      out.values.push_back(resolved.at(spec.key));
  } catch (const std::invalid_argument& e) {
    throw BadInput(e.what());
  }
  return out;
}

std::optional<shm::BlockLease> lease_of(const TrainerOptions& o) {
  if (o.lease_attempt == 0 && o.lease_digest.empty()) return std::nullopt;
  try {
    return shm::BlockLease::from_hex(o.lease_attempt, o.lease_digest);
  } catch (const shm::ShmError& e) {
    throw BadInput(std::string("--lease-digest: ") + e.what());
  }
}

LiveConfig::LiveConfig(Knobs base, const std::string& job_id, std::optional<shm::BlockLease> lease)
    : applied_(std::move(base)), lease_(std::move(lease)) {
  if (job_id.empty()) return;
  try {
    reader_.emplace(shm::ConfigBlockReader::attach(shm::block_name_for_job(job_id),
                                                   shm::ConfigBlockReader::Access::kReadWrite));
  } catch (const shm::ShmError& e) {
    throw BadInput(e.what());
  }
  std::vector<shm::SnapshotKey> keys;
  for (std::size_t k = 0; k < applied_.values.size(); ++k)
    keys.push_back({knobs::schema()[k].key, to_block_value(applied_.values[k])});
  snapshot_.emplace(reader_->snapshot(keys));
}

LiveConfig::LiveConfig(const std::vector<RecordedRevision>& history) {
  for (const RecordedRevision& r : history)
    schedule_.push_back({r.step, Knobs::resolve(r.knobs)});
  if (schedule_.empty()) throw BadInput("--replay-config: the config history is empty");
  applied_ = schedule_.front().knobs;
}

LiveConfig::Refresh LiveConfig::refresh(std::int64_t step) {
  Refresh out;
  if (!schedule_.empty()) {
    if (next_scheduled_ < schedule_.size() && schedule_[next_scheduled_].step <= step) {
      const Knobs& next = schedule_[next_scheduled_++].knobs;
      out.changed = next.values != applied_.values;
      applied_ = next;
    }
    return out;
  }
  if (!snapshot_) return out;
  snapshot_->read();
  if (snapshot_->generation() == seen_generation_) return out;
  // A truncated block reads as zeros, which are not values: block_lost() stops the trainer at
  // the next step boundary. A new generation is rare (a config write), so the fstat is cheap.
  if (reader_->faulted() || reader_->damage()) return out;
  seen_generation_ = snapshot_->generation();
  const auto& schema = knobs::schema();
  for (std::size_t k = 0; k < schema.size(); ++k) {
    const ParamValue v = from_block_value((*snapshot_)[k]);
    if (v == applied_.values[k]) continue;
    // The one range check of the knob schema (param_schema.hpp), as the hub and agent apply it.
    if (const auto error = check_param_value(schema[k], v)) {
      out.refused =
          schema[k].key + ": " + *error + "; keeping " + param_value_text(applied_.values[k]);
      continue;
    }
    applied_.values[k] = v;
    out.changed = true;
  }
  return out;
}

void LiveConfig::restore(const json& checkpoint_state) {
  try {
    const json& saved = checkpoint_state.at("knobs");
    for (std::size_t k = 0; k < knobs::schema().size(); ++k) {
      const auto& key = knobs::schema()[k].key;
      if (!saved.contains(key)) continue;
      const json& v = saved[key];
      ParamValue& slot = applied_.values[k];
      if (std::holds_alternative<double>(slot))
        slot = v.get<double>();
      else if (std::holds_alternative<std::int64_t>(slot))
        slot = v.get<std::int64_t>();
      else if (std::holds_alternative<bool>(slot))
        slot = v.get<bool>();
      else
        slot = v.get<std::string>();
    }
  } catch (const json::exception& e) {
    throw BadInput("--resume-saved-config: unreadable knobs in the checkpoint: " +
                   std::string(e.what()));
  }
}

void LiveConfig::record_revision(std::int64_t step) {
  const std::int64_t rev = applied_.i(knobs::kRevision);
  if (!history_.empty() && history_.back()["revision"] == rev) {
    history_.back()["knobs"] = applied_.to_json();
    return;
  }
  history_.push_back({{"revision", rev}, {"step", step}, {"knobs", applied_.to_json()}});
}

std::optional<shm::TelemetryWriter> LiveConfig::telemetry_writer() const {
  if (!reader_) return std::nullopt;
  try {
    return reader_->telemetry_writer();
  } catch (const shm::ShmError& e) {
    throw BadInput(e.what());
  }
}

std::optional<std::string> LiveConfig::block_lost() {
  if (!reader_) return std::nullopt;
  if (reader_->faulted()) return reader_->damage().value_or("the block faulted on access");
  const auto now = std::chrono::steady_clock::now();
  if (now >= next_size_check_) {
    next_size_check_ = now + std::chrono::seconds(1);
    if (auto why = reader_->damage()) return why;
  }
  if (!lease_) return std::nullopt;
  const std::uint64_t version = reader_->lease_version();
  if (version == own_lease_version_) return std::nullopt;
  const std::optional<shm::BlockLease> found = reader_->lease();
  if (found && *found == *lease_) {
    own_lease_version_ = version;
    return std::nullopt;
  }
  const std::string block = "the block " + reader_->name();
  if (!found) {
    return block + " is being taken over by another lease, not mine (" +
           std::to_string(lease_->attempt) + ")";
  }
  if (found->attempt != lease_->attempt) {
    return block + " belongs to attempt " + std::to_string(found->attempt) + ", not mine (" +
           std::to_string(lease_->attempt) + ")";
  }
  return block + " belongs to " + found->describe() + ", not mine (" + lease_->describe() + ")";
}

bool LiveConfig::agent_silent(std::chrono::milliseconds limit) {
  if (!reader_ || limit.count() <= 0) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_heartbeat_check_) return false;
  next_heartbeat_check_ = now + std::chrono::seconds(1);
  const std::uint64_t beat = reader_->info().heartbeat_unix_ns;
  if (beat == 0) return false;  // a writer that never beats is not watched
  const auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
  return wall - static_cast<std::int64_t>(beat) >
         std::chrono::duration_cast<std::chrono::nanoseconds>(limit).count();
}

}  // namespace tv::trainer
