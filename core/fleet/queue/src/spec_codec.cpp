#include "spec_codec.hpp"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "trainvisor/fleet/command_trainer_json.hpp"
#include "trainvisor/fleet/job_queue.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/fleet/pipeline_training_json.hpp"

namespace tv::fleet::codec {
namespace {

using fleet::params_from_json;
using fleet::params_json;

using nlohmann::json;

[[noreturn]] void bad_text(std::string_view what, std::string_view why) {
  throw QueueError("job queue: stored " + std::string(what) + " is corrupt: " + std::string(why));
}

json encode_double(double value) {
  return param_value_json(value);
}

json parse(std::string_view text, std::string_view what) {
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    bad_text(what, e.what());
  }
}

std::string dump(const json& j, std::string_view what) {
  try {
    return j.dump();
  } catch (const json::exception& e) {
    // The only dump failure is a string that is not UTF-8.
    throw QueueError(std::string(what) + ": cannot store: " + e.what());
  }
}

plugin::Params params_from(const json& j, std::string_view what) {
  if (!j.is_object()) bad_text(what, "not a JSON object");
  try {
    return params_from_json(j);
  } catch (const std::invalid_argument& e) {
    bad_text(what, e.what());
  }
}

double double_from(const json& j, std::string_view what, const char* key) {
  if (j.is_number()) return j.get<double>();
  try {
    const plugin::ParamValue v = param_value_from_json(j, key);
    if (const auto* d = std::get_if<double>(&v)) return *d;
  } catch (const std::invalid_argument&) {
  }
  bad_text(what, std::string("'") + key + "' is not a number");
}

template <typename T>
T field(const json& j, const char* key, std::string_view what) {
  if (!j.contains(key)) bad_text(what, std::string("'") + key + "' is missing");
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    bad_text(what, std::string("'") + key + "': " + e.what());
  }
}

}  // namespace

std::string encode_params(const plugin::Params& params, std::string_view what) {
  return dump(params_json(params), what);
}

plugin::Params decode_params(std::string_view text, std::string_view what) {
  return params_from(parse(text, what), what);
}

std::string encode_policies(const std::vector<PolicySpec>& policies, std::string_view what) {
  json out = json::array();
  for (const auto& p : policies)
    out.push_back({{"name", p.name}, {"params", params_json(p.params)}});
  return dump(out, what);
}

std::vector<PolicySpec> decode_policies(std::string_view text, std::string_view what) {
  json j = parse(text, what);
  if (!j.is_array()) bad_text(what, "not a JSON array");
  std::vector<PolicySpec> out;
  for (const auto& item : j) {
    if (!item.is_object() || !item.contains("params")) bad_text(what, "a policy is malformed");
    out.push_back({field<std::string>(item, "name", what), params_from(item.at("params"), what)});
  }
  return out;
}

std::string encode_strings(const std::vector<std::string>& strings, std::string_view what) {
  return dump(json(strings), what);
}

std::vector<std::string> decode_strings(std::string_view text, std::string_view what) {
  json j = parse(text, what);
  if (!j.is_array()) bad_text(what, "not a JSON array");
  std::vector<std::string> out;
  for (const auto& item : j) {
    if (!item.is_string()) bad_text(what, "an entry is not a string");
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::string encode_capability(const HostCapability& c, std::string_view what) {
  json j = {{"hostname", c.hostname},
            {"cores", c.cores},
            {"ram_gib", encode_double(c.ram_gib)},
            {"cuda", c.cuda},
            {"cuda_devices", c.cuda_devices},
            {"vram_gib", encode_double(c.vram_gib)},
            {"torch_version", c.torch_version},
            {"trainvisor_version", c.trainvisor_version}};
  return dump(j, what);
}

HostCapability decode_capability(std::string_view text, std::string_view what) {
  json j = parse(text, what);
  if (!j.is_object()) bad_text(what, "not a JSON object");
  HostCapability c;
  c.hostname = field<std::string>(j, "hostname", what);
  c.cores = field<std::int64_t>(j, "cores", what);
  c.ram_gib = double_from(j.value("ram_gib", json()), what, "ram_gib");
  c.cuda = field<bool>(j, "cuda", what);
  c.cuda_devices = field<std::int64_t>(j, "cuda_devices", what);
  c.vram_gib = double_from(j.value("vram_gib", json()), what, "vram_gib");
  c.torch_version = field<std::string>(j, "torch_version", what);
  c.trainvisor_version = field<std::string>(j, "trainvisor_version", what);
  return c;
}

std::string encode_pipeline(const PipelineTraining& p, std::string_view what) {
  return dump(pipeline_training_json(p), what);
}

PipelineTraining decode_pipeline(std::string_view text, std::string_view what) {
  try {
    return pipeline_training_from_json(parse(text, what));
  } catch (const std::invalid_argument& e) {
    bad_text(what, e.what());
  }
}

std::string encode_trainer(const CommandTrainer& c, std::string_view what) {
  return dump(command_trainer_json(c), what);
}

CommandTrainer decode_trainer(std::string_view text, std::string_view what) {
  try {
    return command_trainer_from_json(parse(text, what));
  } catch (const std::invalid_argument& e) {
    bad_text(what, e.what());
  }
}

}  // namespace tv::fleet::codec
