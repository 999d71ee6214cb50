// The operator's commands against a coordinator: `jobs list|show|cancel|requeue|explain`,
// `workers`, `logs [-f]`, `reload [--dry-run]`, `status`, `artifacts`, `hosts enrol|revoke`,
// `pipelines list|show|triggers|deploy|rollback`. The coordinator's
// URL and the operator token come from flags or from TRAINVISOR_COORDINATOR /
// TRAINVISOR_OPERATOR_TOKEN / TRAINVISOR_CA_FILE.
#pragma once

#include <CLI/CLI.hpp>

namespace tv::cli {

void add_ops_commands(CLI::App& app);

}  // namespace tv::cli
