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

// `--max-epochs N` of `train` and `local`: the number of epochs to train, which sets the knob
// training/control/max_epochs in `knobs` (the values of `knob_flag`, "--knob" or "--set").
// Throws std::invalid_argument naming both flags when `knobs` gives the knob another value.
// 0 (not given) leaves `knobs` as they are.
void set_max_epochs(std::int64_t max_epochs, const std::string& knob_flag,
                    plugin::ConfigView& knobs);

// The --help text of --max-epochs, with the knob's default.
std::string max_epochs_help();

}  // namespace tv::cli
