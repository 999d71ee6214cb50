// `trainvisor local`: one job on this host without a coordinator. The command is the job's config
// agent (the block's writer) and supervisor, and spawns `trainvisor train` for it.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_local_command(CLI::App& app);

}  // namespace tv::cli
