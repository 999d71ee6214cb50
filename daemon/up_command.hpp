// `trainvisor up MANIFEST`: the embedded single-machine default. A coordinator and one host daemon
// in one process on loopback, the queue in a data directory, live progress per job in the
// terminal and a final table.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_up_command(CLI::App& app);

}  // namespace tv::cli
