// `trainvisor coordinator`: the fleet's head: job queue, artifact store and HTTP API.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_coordinator_command(CLI::App& app);

}  // namespace tv::cli
