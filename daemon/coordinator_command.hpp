// `trainvisor coordinator`: the fleet's head: job queue, artifact store and HTTP API.
#pragma once

#include <CLI/CLI.hpp>

#include "trainvisor/fleet/coordinator.hpp"

namespace tv::cli {

void add_coordinator_command(CLI::App& app);

// The trainer's ModelEmbedder as CoordinatorOptions::make_embedder: triggers that read
// embeddings run the deployed model in the coordinator's process. `up` and `replay` use it too.
decltype(fleet::CoordinatorOptions::make_embedder) model_embedder_maker();

// The dashboard's bundle beside the running binary: BUILD/web for BUILD/bin/trainvisor, else
// PREFIX/share/trainvisor/web for PREFIX/bin/trainvisor; empty when neither has an index.html
// (the coordinator then answers / with "the dashboard is not built"). `up` uses it too.
std::string default_web_root();

}  // namespace tv::cli
