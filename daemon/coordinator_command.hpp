// `trainvisor coordinator`: the fleet's head: job queue, artifact store and HTTP API.
#pragma once

#include <CLI/CLI.hpp>

#include "trainvisor/fleet/coordinator.hpp"

namespace tv::cli {

void add_coordinator_command(CLI::App& app);

// Gives `o` the trainer's ModelEmbedder: triggers that read embeddings run the deployed model
// in the coordinator's process. `trainvisor up` uses it too.
void use_model_embedder(fleet::CoordinatorOptions& o);

}  // namespace tv::cli
