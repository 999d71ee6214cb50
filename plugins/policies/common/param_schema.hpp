// The parameter schema side of the policy plugins: the builders and ParamReader every plugin
// kind shares (common/plugin_params.hpp, under plugins/), and the dry_run flag of every policy.
#pragma once

#include "common/plugin_params.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::policies {

using plugin_params::choice_param;
using plugin_params::flag_param;
using plugin_params::integer_param;
using plugin_params::number_param;
using plugin_params::ParamReader;

// Every policy has it, with the same contract (see DecisionBuilder).
inline plugin::ParamSpec dry_run_param() {
  return flag_param("dry_run", false,
                    "compute and report decisions without acting: writes are marked 'dry run: ' "
                    "and the job is never stopped");
}

}  // namespace tv::policies
