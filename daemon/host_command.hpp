// `trainvisor host`: the host daemon (claims and runs jobs from a coordinator), or, with
// --print-capability, what this host reports when it claims.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_host_command(CLI::App& app);

}  // namespace tv::cli
