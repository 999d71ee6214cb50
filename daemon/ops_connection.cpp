#include "ops_connection.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>

namespace tv::cli {
namespace {

std::string env_or(const std::string& v, const char* name, const std::string& fallback = {}) {
  if (!v.empty()) return v;
  const char* e = std::getenv(name);
  return e ? e : fallback;
}

fleet::api::CoordinatorClientOptions options_of(const OpsFlags& f) {
  fleet::api::CoordinatorClientOptions o;
  o.http = http::ClientOptions{env_or(f.url, "TRAINVISOR_COORDINATOR", "http://127.0.0.1:8700"),
                               env_or(f.ca_file, "TRAINVISOR_CA_FILE"), std::chrono::seconds(30)};
  o.operator_token = secret_of(f.token, false);
  o.read_token = secret_of(f.read_token, false);
  o.operator_name = env_or("", "TRAINVISOR_OPERATOR_NAME", env_or("", "USER", "operator"));
  return o;
}

}  // namespace

void add_connection_flags(CLI::App& cmd, OpsFlags& f) {
  add_coordinator_flags(cmd, f);
  cmd.add_option("-o,--output", f.output, "Output format")->check(CLI::IsMember({"text", "json"}));
}

bool coordinator_configured(const OpsFlags& f) {
  return !env_or(f.url, "TRAINVISOR_COORDINATOR").empty();
}

void add_coordinator_flags(CLI::App& cmd, OpsFlags& f) {
  cmd.add_option("--coordinator", f.url,
                 "Coordinator URL (or TRAINVISOR_COORDINATOR; default http://127.0.0.1:8700)");
  add_secret_flags(cmd, f.token, "Operator token");
  add_secret_flags(cmd, f.read_token, "Read token, for reads only; the operator token reads too");
  cmd.add_option("--ca-file", f.ca_file,
                 "CA certificate of an https coordinator (or TRAINVISOR_CA_FILE)");
}

OpsConnection::OpsConnection(const OpsFlags& f) : client_(options_of(f)) {}

fleet::api::CoordinatorClient& OpsConnection::operator_client() {
  if (client_.options().operator_token.empty())
    throw std::invalid_argument(
        "this needs the operator token: --operator-token or TRAINVISOR_OPERATOR_TOKEN");
  return client_;
}

std::string OpsConnection::resolve(const std::string& job) {
  // The coordinator resolves (kJobByRef): one rule for every command, ambiguity included.
  return value_of(client_.job_by_ref(job)).spec.id;
}

void print(const OpsFlags& f, const nlohmann::json& j, const std::function<void()>& text) {
  if (f.output == "json") {
    // ASCII only (\uXXXX beyond): valid JSON that cannot carry a terminal's control sequence.
    std::cout << j.dump(2, ' ', true, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    text();
  }
}

std::string short_id(const std::string& id) {
  return id.substr(0, 12);
}

std::string utc_time_text(std::int64_t ms) {
  if (ms <= 0) return "-";
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&t, &utc);
  char b[32];
  std::strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return b;
}

}  // namespace tv::cli
