// The exit codes of `trainvisor train`: what the trainer returns and what whoever spawned it (the
// host daemon, `trainvisor local`) reads back. Defined once here because the trainer (libtorch)
// and the host (no libtorch) share no other library; how the host classes each code is
// trainvisor/fleet/trainer_process.hpp's job. Constants only: any thread may use them.
#pragma once

namespace tv {

enum class TrainerExitCode : int {
  kCompleted = 0,     // reached max_epochs or the step cap; the bundle is written
  kFailed = 1,        // the trainer's own failure
  kBadInput = 2,      // unknown model, bad parameters, missing or corrupt data, no block
  kEarlyStopped = 3,  // training/control/early_stop became true; the bundle is written
  kInterrupted = 4,   // SIGTERM, or its config agent went silent: a checkpoint was written
};

constexpr int exit_status(TrainerExitCode code) {
  return static_cast<int>(code);
}

}  // namespace tv
