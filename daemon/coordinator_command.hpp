// `trainvisor coordinator`: the fleet's head: job queue, artifact store and HTTP API.
#pragma once

#include <CLI/CLI.hpp>

#include "trainvisor/fleet/coordinator.hpp"

namespace tv::cli {

void add_coordinator_command(CLI::App& app);

// The trainer's ModelEmbedder as CoordinatorOptions::make_embedder: triggers that read
// embeddings run the deployed model in the coordinator's process. `up` and `replay` use it too.
decltype(fleet::CoordinatorOptions::make_embedder) model_embedder_maker();

}  // namespace tv::cli
