// The run a bundle records, read back for --replay-config: its model and parameters, seed, sample
// caps, where it stopped, and its config history (each revision's knobs and the step it applied
// from). Replaying that history, not re-running with live policies, is how a supervised run is
// reproduced: the replay's bundle is byte-identical to the recorded one.
//
// Only the bundle's JSON header is parsed (no libtorch). Called by `trainvisor train`; pure
// functions of their arguments and the file, any thread. Every failure throws BadInput with a
// message naming the bundle and the reason.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "trainvisor/plugin.hpp"
#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {

struct RecordedRun {
  std::string model;
  plugin::Params model_params;  // resolved: every parameter of the model, defaults included
  std::uint64_t seed = 0;
  // The sample caps; nullopt in a bundle written before they were recorded.
  std::optional<plugin::DataOptions> data;
  std::string stop_reason;  // the bundle's metrics: why and after how many steps it stopped
  std::int64_t steps = 0;
  // The step cap it stopped at, which the replay needs to stop at the same step (0: none); an
  // epoch cap is the max_epochs knob, which the history carries.
  std::int64_t max_steps = 0;
  std::vector<RecordedRevision> history;  // in step order, every knob checked against the schema
};

// Reads and checks `bundle`: a missing or corrupt file, no config history, a history not in step
// order (or with two revisions at one step boundary, which a replay cannot reproduce), or a knob
// of a wrong type or out of range is a BadInput.
RecordedRun read_recorded_run(const std::filesystem::path& bundle);

// Makes `options` run `run` again: model, parameters, seed, step cap, sample caps and the history
// come from the bundle. `given` names the flags the command line set ("--seed", "--param", ...):
// a value given that contradicts the bundle is a BadInput naming both values.
void apply_recorded_run(const RecordedRun& run, const std::filesystem::path& bundle,
                        const std::set<std::string>& given, TrainerOptions& options);

}  // namespace tv::trainer
