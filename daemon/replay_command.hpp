// `trainvisor replay`: a manifest's pipelines over a recorded stream at simulated time, and the
// report (tv_replay's experiment.hpp and report.hpp).
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_replay_command(CLI::App& app);

}  // namespace tv::cli
