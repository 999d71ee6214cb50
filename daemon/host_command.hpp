// `trainvisor host`: the host daemon (claims and runs jobs from a coordinator), or, with
// --print-capability, what this host reports when it claims.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace tv::cli {

void add_host_command(CLI::App& app);

// `trainvisor trainer-exec --exit-code-file F -- COMMAND...`: how a host runs a command job's
// trainer (trainvisor/fleet/trainer_process.hpp, run_trainer_command). Not for people.
void add_trainer_exec_command(CLI::App& app);

// Where a command job's trainer finds the Python trainer API beside this binary: the build
// tree's package folder when this binary runs from a build tree, else "" (an installed package
// is on Python's own path).
std::string python_package_path();

}  // namespace tv::cli
