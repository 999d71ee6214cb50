#include "ops_command.hpp"

#include "ops_connection.hpp"

namespace tv::cli {

void add_ops_commands(CLI::App& app) {
  add_job_commands(app);
  add_manifest_commands(app);
  add_artifact_commands(app);
  add_config_commands(app);
  add_host_commands(app);
  add_logs_command(app);
  add_pipeline_commands(app);
}

}  // namespace tv::cli
