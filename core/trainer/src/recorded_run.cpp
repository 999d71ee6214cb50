#include "trainvisor/trainer/recorded_run.hpp"

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bundle_file.hpp"
#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/trainer_knobs.hpp"
#include "trainvisor/fleet/param_json.hpp"

namespace tv::trainer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

BadInput bad_bundle(const fs::path& bundle, const std::string& reason) {
  return BadInput("--replay-config " + bundle.string() + ": " + reason);
}

// One entry of the config history, every knob of the schema present, of its type and in range.
RecordedRevision read_revision(const json& e, std::size_t index, const fs::path& bundle) {
  if (!e.is_object() || !e.contains("revision") || !e["revision"].is_number_integer() ||
      !e.contains("step") || !e["step"].is_number_integer() || !e.contains("knobs") ||
      !e["knobs"].is_object()) {
    throw bad_bundle(bundle, "config_history[" + std::to_string(index) +
                                 "] is not {revision, step, knobs}: " + e.dump());
  }
  RecordedRevision r{e["revision"].get<std::int64_t>(), e["step"].get<std::int64_t>(), {}};
  const std::string which =
      "revision " + std::to_string(r.revision) + " (from step " + std::to_string(r.step) + ")";
  const json& given = e["knobs"];
  for (const auto& item : given.items()) {
    if (knobs::find(item.key()) == nullptr)
      throw bad_bundle(bundle, which + ": '" + item.key() + "' is not a trainer knob");
  }
  for (const plugin::ParamSpec& spec : knobs::schema()) {
    if (!given.contains(spec.key))
      throw bad_bundle(bundle, which + ": knob " + spec.key + " is missing");
    plugin::ParamValue v;
    try {
      v = as_declared_type(spec, fleet::param_value_from_json(given[spec.key], spec.key));
    } catch (const std::invalid_argument& x) {
      throw bad_bundle(bundle, which + ": " + x.what());
    }
    if (const auto why = check_param_value(spec, v))
      throw bad_bundle(bundle, which + ": knob " + spec.key + ": " + *why);
    r.knobs[spec.key] = std::move(v);
  }
  if (std::get<std::int64_t>(r.knobs.at(std::string(knobs::kRevision))) != r.revision) {
    throw bad_bundle(bundle, which + ": its knob " + std::string(knobs::kRevision) + " is " +
                                 param_value_text(r.knobs.at(std::string(knobs::kRevision))));
  }
  return r;
}

// The trainer takes at most one revision per step boundary, plus the one it starts on: a history
// must start at step 0 and move forward, with two revisions at one step only at step 0.
void check_step_order(const std::vector<RecordedRevision>& h, const fs::path& bundle) {
  if (h.front().step != 0) {
    throw bad_bundle(
        bundle, "its config history starts at step " + std::to_string(h.front().step) + ", not 0");
  }
  for (std::size_t i = 1; i < h.size(); ++i) {
    const RecordedRevision& prev = h[i - 1];
    const RecordedRevision& cur = h[i];
    const std::string names = "revision " + std::to_string(cur.revision) + " (from step " +
                              std::to_string(cur.step) + ") follows revision " +
                              std::to_string(prev.revision) + " (from step " +
                              std::to_string(prev.step) + ")";
    if (cur.step < prev.step)
      throw bad_bundle(bundle, "its config history is not in step order: " + names);
    if (cur.step == prev.step && !(i == 1 && cur.step == 0)) {
      throw bad_bundle(bundle, "its config history has two revisions at one step boundary: " +
                                   names + "; a run applies at most one per step");
    }
  }
}

bool same_value(const plugin::ParamValue& a, const plugin::ParamValue& b) {
  const auto number = [](const plugin::ParamValue& v) -> std::optional<double> {
    if (const auto* d = std::get_if<double>(&v)) return *d;
    if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
    return std::nullopt;
  };
  if (number(a) && number(b)) return *number(a) == *number(b);
  return a == b;
}

}  // namespace

RecordedRun read_recorded_run(const fs::path& bundle) {
  const json header = read_bundle_file(bundle, "--replay-config").header;
  RecordedRun run;
  try {
    if (header.value("format", "") != "trainvisor-bundle-1")
      throw bad_bundle(bundle, "unknown format " + header.value("format", json("none")).dump());
    run.model = header.at("model").get<std::string>();
    run.model_params = fleet::params_from_json(header.at("model_params"));
    run.seed = header.at("seed").get<std::uint64_t>();
    if (header.contains("data")) {
      plugin::DataOptions d;
      d.max_train_samples = header["data"].at("max_train_samples").get<std::int64_t>();
      d.max_val_samples = header["data"].at("max_val_samples").get<std::int64_t>();
      run.data = d;
    }
    const json& metrics = header.at("metrics");
    run.stop_reason = metrics.at("stop_reason").get<std::string>();
    run.steps = metrics.at("steps").get<std::int64_t>();
    if (run.stop_reason == "step cap") run.max_steps = run.steps;
  } catch (const json::exception& e) {
    throw bad_bundle(bundle, std::string("corrupt header: ") + e.what());
  } catch (const std::invalid_argument& e) {
    throw bad_bundle(bundle, std::string("corrupt header: model_params: ") + e.what());
  }
  const json history = header.value("config_history", json());
  if (!history.is_array() || history.empty())
    throw bad_bundle(bundle, "it records no config history, so there is nothing to replay");
  for (std::size_t i = 0; i < history.size(); ++i)
    run.history.push_back(read_revision(history[i], i, bundle));
  check_step_order(run.history, bundle);
  return run;
}

void apply_recorded_run(const RecordedRun& run, const fs::path& bundle,
                        const std::set<std::string>& given, TrainerOptions& o) {
  const auto agree = [&](const std::string& flag, bool same, const std::string& value,
                         const std::string& recorded) {
    if (given.count(flag) != 0 && !same) {
      throw bad_bundle(bundle,
                       flag + " " + value + " contradicts the bundle, which records " + recorded);
    }
  };
  agree("--model", o.model == run.model, o.model, "model " + run.model);
  for (const auto& [key, value] : o.model_params) {
    const auto it = run.model_params.find(key);
    agree("--param", it != run.model_params.end() && same_value(value, it->second),
          key + "=" + param_value_text(value),
          it == run.model_params.end() ? "no parameter '" + key + "' for model " + run.model
                                       : key + "=" + param_value_text(it->second));
  }
  agree("--seed", o.seed == run.seed, std::to_string(o.seed), "seed " + std::to_string(run.seed));
  const std::string stopped =
      "its run stopped (" + run.stop_reason + ") after " + std::to_string(run.steps) + " steps";
  agree("--steps", o.max_steps == run.max_steps, std::to_string(o.max_steps),
        (run.max_steps > 0 ? "a step cap of " + std::to_string(run.max_steps) : "no step cap (0)") +
            ": " + stopped);
  // --max-epochs sets the knob, which the history records from the first revision on.
  if (const auto it = o.knobs.find(knobs::kMaxEpochs); it != o.knobs.end()) {
    const plugin::ParamValue& recorded = run.history.front().knobs.at(knobs::kMaxEpochs);
    agree("--max-epochs", same_value(it->second, recorded), param_value_text(it->second),
          std::string(knobs::kMaxEpochs) + "=" + param_value_text(recorded) + " at step 0");
  }
  if (run.data) {
    agree("--max-train-samples", o.data.max_train_samples == run.data->max_train_samples,
          std::to_string(o.data.max_train_samples),
          "max_train_samples " + std::to_string(run.data->max_train_samples));
    agree("--max-val-samples", o.data.max_val_samples == run.data->max_val_samples,
          std::to_string(o.data.max_val_samples),
          "max_val_samples " + std::to_string(run.data->max_val_samples));
    o.data.max_train_samples = run.data->max_train_samples;
    o.data.max_val_samples = run.data->max_val_samples;
  }
  if (!o.out_dir.empty()) {
    std::error_code ec;
    if (fs::equivalent(JobFolder{o.out_dir}.bundle(), bundle, ec)) {
      throw bad_bundle(bundle, "--out " + o.out_dir +
                                   " holds this very bundle, which the replay would overwrite");
    }
  }
  o.model = run.model;
  o.model_params = run.model_params;
  o.seed = run.seed;
  o.max_steps = run.max_steps;
  o.replay = run.history;
}

}  // namespace tv::trainer
