#include "trainvisor/fleet/api/events.hpp"

#include <nlohmann/json.hpp>

namespace tv::fleet::api {

std::string events_hello(const std::string& read_token) {
  return nlohmann::json{{"type", "hello"}, {"read_token", read_token}}.dump();
}

std::string events_subscribe_fleet() {
  return nlohmann::json{{"type", "subscribe"}, {"fleet", true}}.dump();
}

std::string events_subscribe_job(const std::string& job, std::optional<std::int64_t> after_step,
                                 std::optional<std::uint64_t> after_seq) {
  nlohmann::json j{{"type", "subscribe"}, {"job", job}};
  if (after_step) j["after_step"] = *after_step;
  if (after_seq) j["after_seq"] = *after_seq;
  return j.dump();
}

}  // namespace tv::fleet::api
