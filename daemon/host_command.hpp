// `trainvisor host`: the host side of the fleet. Today: `--print-capability`, what this host
// reports to the coordinator when it claims jobs.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_host_command(CLI::App& app);

}  // namespace tv::cli
