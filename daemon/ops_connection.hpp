// What every operator command shares: the connection flags, the typed coordinator client built
// from them, a job named by id, id prefix or name, and text-or-JSON output. The coordinator's URL
// and the tokens come from flags or from TRAINVISOR_COORDINATOR / TRAINVISOR_OPERATOR_TOKEN /
// TRAINVISOR_READ_TOKEN / TRAINVISOR_CA_FILE (reads send whichever token is given, for a
// coordinator whose reads are not public); the operator's name from TRAINVISOR_OPERATOR_NAME or
// USER.
//
// Errors: a refusal from the coordinator throws std::invalid_argument with its reason (and an
// invalid manifest's diagnostics, one per line); an unreachable coordinator std::runtime_error.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "secret_flags.hpp"
#include "terminal_text.hpp"
#include "trainvisor/fleet/api/coordinator_client.hpp"

namespace tv::cli {

struct OpsFlags {
  std::string url;
  SecretFlag token{"--operator-token", "TRAINVISOR_OPERATOR_TOKEN"};
  SecretFlag read_token{"--read-token", "TRAINVISOR_READ_TOKEN"};
  std::string ca_file;
  std::string output = "text";
  std::string job;  // JOB: id, unique id prefix or name
};

// The flags every operator command takes: the coordinator's (below) and -o.
void add_connection_flags(CLI::App& cmd, OpsFlags& f);
// --coordinator, the tokens and --ca-file alone, for a command with an output flag of its own.
void add_coordinator_flags(CLI::App& cmd, OpsFlags& f);
// Whether a coordinator was named (flag or TRAINVISOR_COORDINATOR), not just the default.
bool coordinator_configured(const OpsFlags& f);

class OpsConnection {
 public:
  explicit OpsConnection(const OpsFlags& f);

  fleet::api::CoordinatorClient& client() { return client_; }
  // Throws std::invalid_argument when no operator token was given.
  fleet::api::CoordinatorClient& operator_client();
  // A job by full id, name or unique id prefix, as the coordinator resolves it; throws
  // std::invalid_argument naming it, or listing the ids and statuses when several jobs match.
  std::string resolve(const std::string& job);

 private:
  fleet::api::CoordinatorClient client_;
};

// The reply's value; a refusal throws std::invalid_argument with the coordinator's reason (each
// line made safe for a terminal).
template <class T>
const T& value_of(const fleet::api::Reply<T>& r) {
  if (!r) {
    std::string msg = terminal_text(r.error().error);
    for (const auto& d : r.error().diagnostics)
      msg += "\n  " + terminal_text(d);
    throw std::invalid_argument(msg);
  }
  return *r;
}

// `j` as JSON with -o json, else what `text` prints.
void print(const OpsFlags& f, const nlohmann::json& j, const std::function<void()>& text);

std::string short_id(const std::string& id);
// A time in milliseconds since the epoch as UTC ISO-8601 to the second
// ("2026-12-07T04:08:03Z"); "-" for 0 (never).
std::string utc_time_text(std::int64_t ms);

// The operator commands, by resource.
void add_job_commands(CLI::App& app);
void add_config_commands(CLI::App& app);
void add_artifact_commands(CLI::App& app);
void add_manifest_commands(CLI::App& app);
void add_host_commands(CLI::App& app);
void add_logs_command(CLI::App& app);
void add_pipeline_commands(CLI::App& app);

}  // namespace tv::cli
