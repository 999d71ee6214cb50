// Who writes a job's config, and the freeze rule, as the coordinator's hub and a host's config
// agent both apply it. An actor travels as text: "human:NAME" (an operator, with the operator
// token), "policy:NAME" (a policy plugin or supervisor, with the worker token) or "api".
// Precedence: a freeze holds policies only; a human's write under a frozen prefix is accepted.
//
// Pure functions and values: safe from any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tv::fleet::api {

struct Actor {
  enum class Kind { kHuman, kPolicy, kApi };
  Kind kind = Kind::kApi;
  std::string name;  // empty for kApi

  static Actor human(std::string name);
  static Actor policy(std::string name);
  // "human:NAME", "policy:NAME" (NAME not empty) or "api"; nullopt for anything else.
  static std::optional<Actor> parse(std::string_view text);

  std::string str() const;
  bool is_human() const { return kind == Kind::kHuman; }
  bool is_policy() const { return kind == Kind::kPolicy; }
};

// Why `name` cannot follow "policy:" when a policy writes with the worker token, or nullopt: a
// policy's name follows the plugin names' rule (1 to 64 of a-z, 0-9, '_', '-'), so that it reads
// the same in the config log, a terminal and a URL whoever runs the policy.
std::optional<std::string> policy_name_problem(std::string_view name);

// True when `path` is `prefix` or lies under it ("a/b/c" is under "a/b", "a/bc" is not).
bool path_under(std::string_view path, std::string_view prefix);

// Why `actor` (text) may not write `path` while `frozen` prefixes are frozen, or nullopt: only a
// policy is held by a freeze.
std::optional<std::string> frozen_refusal(std::string_view actor, const std::string& path,
                                          const std::vector<std::string>& frozen);

}  // namespace tv::fleet::api
