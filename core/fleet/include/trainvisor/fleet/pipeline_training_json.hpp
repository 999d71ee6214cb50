// PipelineTraining (job_spec.hpp) as JSON, one encoding for the job id's canonical spec, the
// queue's column and the wire: keys in bytewise order (nlohmann's object is a std::map), the
// holdout as a number. Decoding throws std::invalid_argument naming the field.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "trainvisor/fleet/job_spec.hpp"

namespace tv::fleet {

inline nlohmann::json pipeline_training_json(const PipelineTraining& p) {
  return {{"epochs", p.epochs},
          {"eval_set", p.eval_set},
          {"holdout", p.holdout},
          {"initial_weights", p.initial_weights},
          {"num_classes", p.num_classes},
          {"pipeline", p.pipeline},
          {"sample_shape", p.sample_shape},
          {"segments", p.segments},
          {"segments_first_sample", p.segments_first_sample},
          {"trigger", p.trigger},
          {"window_begin", p.window_begin},
          {"window_end", p.window_end}};
}

inline PipelineTraining pipeline_training_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("pipeline: not a JSON object");
  auto field = [&j](const char* key) -> const nlohmann::json& {
    if (!j.contains(key)) throw std::invalid_argument(std::string("pipeline.") + key + ": missing");
    return j.at(key);
  };
  try {
    PipelineTraining p;
    p.epochs = field("epochs").get<std::int64_t>();
    p.eval_set = field("eval_set").get<std::string>();
    p.holdout = field("holdout").get<double>();
    p.initial_weights = field("initial_weights").get<std::string>();
    p.num_classes = field("num_classes").get<std::int64_t>();
    p.pipeline = field("pipeline").get<std::string>();
    p.sample_shape = field("sample_shape").get<std::vector<std::int64_t>>();
    p.segments = field("segments").get<std::vector<std::string>>();
    p.segments_first_sample = field("segments_first_sample").get<std::int64_t>();
    p.trigger = field("trigger").get<std::int64_t>();
    p.window_begin = field("window_begin").get<std::int64_t>();
    p.window_end = field("window_end").get<std::int64_t>();
    if (p.window_begin < 0 || p.window_end < p.window_begin || p.epochs < 0 ||
        !(p.holdout >= 0 && p.holdout < 1) || p.num_classes < 0) {
      throw std::invalid_argument("pipeline: window, epochs, holdout or num_classes out of range");
    }
    return p;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("pipeline: ") + e.what());
  }
}

}  // namespace tv::fleet
