// CommandTrainer (job_spec.hpp) as JSON, one encoding for the job id's canonical spec, the
// queue's column and the wire: {"argv":[...],"host_workdir":"...","workdir":"<digest>"}.
// Decoding checks what a host will run: throws std::invalid_argument naming the field.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

#include "trainvisor/fleet/job_spec.hpp"

namespace tv::fleet {

inline nlohmann::json command_trainer_json(const CommandTrainer& c) {
  return {{"argv", c.argv}, {"host_workdir", c.host_workdir}, {"workdir", c.workdir}};
}

inline CommandTrainer command_trainer_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("trainer: not a JSON object");
  try {
    CommandTrainer c;
    c.argv = j.at("argv").get<std::vector<std::string>>();
    c.host_workdir = j.at("host_workdir").get<std::string>();
    c.workdir = j.at("workdir").get<std::string>();
    constexpr std::size_t max_args = CommandTrainer::kMaxArgs;
    constexpr std::size_t max_bytes = CommandTrainer::kMaxArgBytes;
    if (c.argv.empty() || c.argv.size() > max_args)
      throw std::invalid_argument("trainer.argv: 1 to " + std::to_string(max_args) + " arguments");
    for (const std::string& a : c.argv) {
      if (a.empty() || a.size() > max_bytes || a.find('\0') != std::string::npos)
        throw std::invalid_argument("trainer.argv: an argument is empty, over " +
                                    std::to_string(max_bytes) + " bytes or has NUL");
    }
    if (!c.workdir.empty() &&
        (c.workdir.size() != 64 ||
         c.workdir.find_first_not_of("0123456789abcdef") != std::string::npos))
      throw std::invalid_argument("trainer.workdir: not a sha256 digest");
    if (!c.host_workdir.empty() && c.host_workdir[0] != '/')
      throw std::invalid_argument("trainer.host_workdir: not an absolute path");
    return c;
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("trainer: ") + e.what());
  }
}

}  // namespace tv::fleet
