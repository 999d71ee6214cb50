#include "host_credential.hpp"

#include <fstream>
#include <sstream>

#include "trainvisor/fleet/host_daemon.hpp"
#include "trainvisor/fleet/private_file.hpp"

namespace tv::fleet {
namespace {

// The credential in `file` (surrounding whitespace ignored); "" when there is no file.
std::string read_credential(const std::string& file, const std::string& name) {
  std::ifstream in(file);
  if (!in) return {};
  std::stringstream text;
  text << in.rdbuf();
  std::string c = text.str();
  c.erase(0, c.find_first_not_of(" \t\r\n"));
  c.erase(c.find_last_not_of(" \t\r\n") + 1);
  const auto sep = c.rfind(':');
  if (sep == std::string::npos || sep + 1 == c.size())
    throw WorkerTokenRefused("the credential file " + file + " does not hold NAME:SECRET");
  if (c.compare(0, sep, name) != 0)
    throw WorkerTokenRefused("the credential file " + file + " is host '" + c.substr(0, sep) +
                             "''s, and this host is named '" + name +
                             "' (--name, or the hostname)");
  return c;
}

}  // namespace

std::string load_or_enrol_credential(const std::string& name, const std::string& file,
                                     api::CoordinatorClient& enroller) {
  if (std::string c = read_credential(file, name); !c.empty()) return c;
  if (enroller.options().worker_token.empty())
    throw WorkerTokenRefused("host " + name + " has no credential (" + file +
                             ") and no worker token to enrol with: give --worker-token (or "
                             "$TRAINVISOR_WORKER_TOKEN), or an operator's credential with "
                             "--credential-file");
  const auto r = enroller.enrol_self(name);  // throws when the coordinator cannot be reached
  if (!r) {
    if (r.status() >= 500) {
      throw std::runtime_error("enrolment failed (HTTP " + std::to_string(r.status()) +
                               "): " + r.error().error);
    }
    throw WorkerTokenRefused("the coordinator at " + enroller.options().http.url +
                             " refused to enrol host " + name + " (HTTP " +
                             std::to_string(r.status()) + ": " + r.error().error + ")");
  }
  write_private_file(file, r->credential + "\n");
  return r->credential;
}

}  // namespace tv::fleet
