// How the protocol's messages become JSON: each message type has nlohmann's to_json/from_json
// pair (found by ADL), so `nlohmann::json(message)` encodes and `j.get<Message>()` decodes.
// A type whose JSON is its fields, one key each, uses NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE; the
// others declare the pair with TV_API_JSON and define it in src/.
//
// Decoding a request throws std::invalid_argument naming the field that is missing or empty, or
// nlohmann::json::exception for a value of the wrong JSON type: the server answers 400 with that
// text. Decoding a reply throws the same for a coordinator that does not speak this protocol.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#define TV_API_JSON(Type)                               \
  void to_json(nlohmann::json& j, const Type& message); \
  void from_json(const nlohmann::json& j, Type& message)

namespace tv::fleet::api {

// A non-empty string field of a request body; throws std::invalid_argument naming it.
std::string required_string(const nlohmann::json& body, const char* key);

}  // namespace tv::fleet::api
