// A pipeline training's inputs on the host: its segments and bundles fetched from the coordinator
// by digest into a cache shared by the host's jobs (a file already there with the right digest
// is not fetched again; a download is checked against its digest before it is used), with the
// model the pipeline deploys now as the baseline the new one is evaluated beside, and the
// trainer's arguments naming them. Private to tv_host.
#pragma once

#include <string>

#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/job_spec.hpp"
#include "trainvisor/fleet/trainer_process.hpp"

namespace tv::fleet {

// Throws std::runtime_error naming the input and why (refused, wrong digest) on failure.
TrainerCommand::StreamArgs fetch_stream_inputs(api::CoordinatorClient& client,
                                               const PipelineTraining& pipeline,
                                               const std::string& cache_dir);

// One artifact by digest (a command job's working directory), through the same cache
// (cache_dir/artifacts/DIGEST); its path. Throws as above, `what` naming it.
std::string fetch_artifact(api::CoordinatorClient& client, const std::string& digest,
                           const std::string& what, const std::string& cache_dir);

}  // namespace tv::fleet
