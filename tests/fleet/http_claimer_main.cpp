// A host stand-in for the race test: enrols its name with the worker token, then claims over HTTP
// until nothing is left, completing each job at once, and prints the id of every job it got.
#include <cstdio>
#include <string>

#include "trainvisor/fleet/http.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s URL WORKER_TOKEN NAME\n", argv[0]);
    return 2;
  }
  // A short timeout: a stuck exchange fails this host loudly instead of stalling the race.
  tv::http::Client client(tv::http::ClientOptions{argv[1], {}, std::chrono::seconds(20)});
  const std::string name = argv[3];
  std::vector<std::pair<std::string, std::string>> auth;
  const nlohmann::json claim = {{"worker", argv[3]},
                                {"capability", {{"cores", 1}, {"ram_gib", 1.0}}}};
  try {
    const auto e =
        client.request("POST", "/v1/hosts/" + name + "/enrol", "{}", {{"X-Worker-Token", argv[2]}});
    if (e.status != 200) {
      std::fprintf(stderr, "enrolment failed: %d %s\n", e.status, e.body.c_str());
      return 1;
    }
    auth = {{"X-Host-Credential", e.json_body().at("credential").get<std::string>()}};
    while (true) {
      const auto r = client.request("POST", "/v1/job/claim", claim.dump(), auth);
      if (r.status != 200) {
        std::fprintf(stderr, "claim failed: %d %s\n", r.status, r.body.c_str());
        return 1;
      }
      const auto j = r.json_body();
      if (j["job"].is_null()) return 0;
      const std::string id = j["job"]["id"];
      const auto done =
          client.request("POST", "/v1/job/" + id + "/complete",
                         nlohmann::json{{"lease_token", j["lease_token"]}}.dump(), auth);
      if (done.status != 200) {
        std::fprintf(stderr, "complete failed: %d %s\n", done.status, done.body.c_str());
        return 1;
      }
      std::printf("%s\n", id.c_str());
      std::fflush(stdout);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[3], e.what());
    return 1;
  }
}
