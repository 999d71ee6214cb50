// `trainvisor shm ...`: look into a job's shared-memory block.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

// Adds `shm inspect NAME [-o json]` to `app`.
void add_shm_commands(CLI::App& app);

}  // namespace tv::cli
