// `trainvisor train`: the trainer process, one per job (the host daemon spawns it).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "trainvisor/plugin.hpp"

namespace tv::cli {

void add_train_command(CLI::App& app);

// "0.1" -> double, "3" -> int64, "true"/"false" -> bool, anything else -> string.
plugin::ParamValue parse_param_value(const std::string& text);

// Splits "key=value"; throws std::invalid_argument naming `flag` when there is no '='.
std::pair<std::string, plugin::ParamValue> parse_assignment(const std::string& text,
                                                            const std::string& flag);

}  // namespace tv::cli
