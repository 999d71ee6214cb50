// The names of the files in a job's folder (work_dir/<job id>/ on a host, --out for
// `trainvisor local`), shared by the trainer that writes them and the host daemon that reads
// them. Paths only: nothing here touches the disk, and any thread may use it.
#pragma once

#include <filesystem>

namespace tv {

struct JobFolder {
  std::filesystem::path root;

  // The trained model, written by a trainer that completed or stopped early; what is uploaded.
  std::filesystem::path bundle() const { return root / "bundle.tvb"; }
  // A pipeline training's scores of the new model and the deployed one on the same evaluation
  // data, written beside the bundle (trainvisor/trainer/trainer.hpp, StreamData).
  std::filesystem::path evaluation() const { return root / "evaluation.json"; }
  // The latest checkpoint (a folder, replaced whole), and the file that says it is complete.
  std::filesystem::path checkpoint() const { return root / "checkpoint"; }
  std::filesystem::path checkpoint_state() const { return checkpoint() / "state.json"; }
  // Where the next checkpoint is written before it takes the place of checkpoint().
  std::filesystem::path checkpoint_staging() const { return root / "checkpoint.tmp"; }
  // The trainer's exit code, for a host daemon that restarted and is not the trainer's parent.
  std::filesystem::path exit_code() const { return root / "exit_code"; }
  // The trainer's stdout and stderr when a host daemon runs it.
  std::filesystem::path log() const { return root / "trainer.log"; }
  // What a restarted host daemon needs to adopt the trainer (its lease, pid and spec).
  std::filesystem::path holder() const { return root / "holder.json"; }

  // The file a writer fills before renaming it over `file`, so that readers see all or nothing.
  static std::filesystem::path staging(const std::filesystem::path& file) {
    std::filesystem::path p = file;
    p += ".tmp";
    return p;
  }
};

}  // namespace tv
