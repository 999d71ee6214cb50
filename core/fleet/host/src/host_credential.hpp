// A host's credential ("NAME:SECRET", api/paths.hpp's X-Host-Credential): the one given, else the
// one in its file, else a new one from enrolling the host's name with the worker token, then
// kept in the file (0600) for every later start. Private to the host daemon.
#pragma once

#include <string>

#include "trainvisor/fleet/api/coordinator_client.hpp"

namespace tv::fleet {

// The file's credential, or one enrolled through `enroller` (which holds the worker token) and
// written to `file`. Throws WorkerTokenRefused when the coordinator refuses the enrolment (a
// wrong worker token; a name already enrolled or revoked) or the file is another host's or
// unreadable; std::runtime_error when the coordinator cannot be reached (try again later).
std::string load_or_enrol_credential(const std::string& name, const std::string& file,
                                     api::CoordinatorClient& enroller);

}  // namespace tv::fleet
