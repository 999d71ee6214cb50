#include "trainvisor/fleet/api/actor.hpp"

#include <algorithm>

namespace tv::fleet::api {
namespace {

constexpr std::string_view kHumanPrefix = "human:";
constexpr std::string_view kPolicyPrefix = "policy:";

}  // namespace

Actor Actor::human(std::string name) {
  return {Kind::kHuman, std::move(name)};
}

Actor Actor::policy(std::string name) {
  return {Kind::kPolicy, std::move(name)};
}

std::optional<Actor> Actor::parse(std::string_view text) {
  if (text == "api") return Actor{};
  for (const auto& [prefix, kind] :
       {std::pair{kHumanPrefix, Kind::kHuman}, std::pair{kPolicyPrefix, Kind::kPolicy}}) {
    if (text.size() > prefix.size() && text.substr(0, prefix.size()) == prefix)
      return Actor{kind, std::string(text.substr(prefix.size()))};
  }
  return std::nullopt;
}

std::string Actor::str() const {
  switch (kind) {
    case Kind::kHuman:
      return std::string(kHumanPrefix) + name;
    case Kind::kPolicy:
      return std::string(kPolicyPrefix) + name;
    case Kind::kApi:
      break;
  }
  return "api";
}

std::optional<std::string> policy_name_problem(std::string_view name) {
  constexpr std::size_t kMaxPolicyNameBytes = 64;
  const auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  };
  if (!name.empty() && name.size() <= kMaxPolicyNameBytes &&
      std::all_of(name.begin(), name.end(), ok))
    return std::nullopt;
  // Quoted shortened, bytes outside printable ASCII as '?': the message may reach a terminal.
  std::string shown(name.substr(0, kMaxPolicyNameBytes));
  for (char& c : shown) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return "policy name '" + shown + (name.size() > kMaxPolicyNameBytes ? "...'" : "'") +
         " is not 1 to " + std::to_string(kMaxPolicyNameBytes) +
         " of a-z, 0-9, '_' or '-' (a plugin's name rule)";
}

bool path_under(std::string_view path, std::string_view prefix) {
  return path == prefix || (path.size() > prefix.size() &&
                            path.substr(0, prefix.size()) == prefix && path[prefix.size()] == '/');
}

std::optional<std::string> frozen_refusal(std::string_view actor, const std::string& path,
                                          const std::vector<std::string>& frozen) {
  const auto who = Actor::parse(actor);
  if (!who || !who->is_policy()) return std::nullopt;
  for (const std::string& prefix : frozen) {
    if (path_under(path, prefix))
      return path + " is under the frozen prefix " + prefix + "; " + std::string(actor) +
             " may not write it";
  }
  return std::nullopt;
}

}  // namespace tv::fleet::api
