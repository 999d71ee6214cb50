// JSON text for the parts of a JobSpec, a HostPolicy and a HostCapability that SQLite has no
// column type for. The encoding keeps every ParamValue's alternative: an int64 is a JSON
// integer, a double is a JSON number with a fraction or exponent (nlohmann writes 1.0, not 1),
// and a non-finite double, which JSON cannot spell, is {"$float": "nan" | "inf" | "-inf"}.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "trainvisor/fleet/job_spec.hpp"

namespace tv::fleet::codec {

// Encoders throw QueueError naming `what` (e.g. "job 'cnn-oracle' hyper") for a string that is
// not UTF-8; decoders throw QueueError naming `what` for text that is not what we wrote.
std::string encode_params(const plugin::Params& params, std::string_view what);
plugin::Params decode_params(std::string_view text, std::string_view what);

std::string encode_policies(const std::vector<PolicySpec>& policies, std::string_view what);
std::vector<PolicySpec> decode_policies(std::string_view text, std::string_view what);

std::string encode_strings(const std::vector<std::string>& strings, std::string_view what);
std::vector<std::string> decode_strings(std::string_view text, std::string_view what);

std::string encode_capability(const HostCapability& capability, std::string_view what);
HostCapability decode_capability(std::string_view text, std::string_view what);
std::string encode_pipeline(const PipelineTraining& pipeline, std::string_view what);
PipelineTraining decode_pipeline(std::string_view text, std::string_view what);
std::string encode_trainer(const CommandTrainer& trainer, std::string_view what);
CommandTrainer decode_trainer(std::string_view text, std::string_view what);

}  // namespace tv::fleet::codec
