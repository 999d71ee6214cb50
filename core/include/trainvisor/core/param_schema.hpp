// Checks values against a parameter schema (plugin::ParamSpec): plugin parameters, the trainer's
// knobs and manifest entries all go through the one check here, so a value is refused for the
// same reason with the same words wherever it arrives.
//
// Error style of core: an expected failure (a value that does not fit, an unknown key) is a
// returned value, std::optional<std::string> holding the reason; resolve_params, which
// completes a whole set of parameters for a caller that cannot go on without them, throws
// std::invalid_argument. Broken invariants throw.
//
// Pure functions: any thread may call them.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/plugin.hpp"

namespace tv {

// Why `value` does not fit `spec`: a wrong type ("expects float64, got true"), a number that is
// not finite, below the minimum or above the maximum, a string not among the allowed values.
// Nothing when it fits. An int64 for a float64 parameter is a wrong type here: pass the value
// through as_declared_type first where that is accepted.
std::optional<std::string> check_param_value(const plugin::ParamSpec& spec,
                                             const plugin::ParamValue& value);

// `value` as `spec` declares it: an int64 given for a float64 parameter becomes that double;
// anything else is returned as it is.
plugin::ParamValue as_declared_type(const plugin::ParamSpec& spec, const plugin::ParamValue& value);

// Completes `given` with the schema's defaults and checks every value: an unknown key (with a
// did-you-mean), a wrong type, a number out of range, a string not allowed. An int64 value is
// accepted for a float64 parameter. Throws std::invalid_argument with `what` (e.g.
// "policy 'plateau'") in the message.
plugin::Params resolve_params(const std::vector<plugin::ParamSpec>& schema,
                              const plugin::Params& given, std::string_view what);

// The closest of `candidates` to `word` by edit distance, or "" when none is close.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

std::string_view kind_name(plugin::Kind kind) noexcept;
std::string_view param_type_name(plugin::ParamType type) noexcept;
std::string param_value_text(const plugin::ParamValue& v);

}  // namespace tv
