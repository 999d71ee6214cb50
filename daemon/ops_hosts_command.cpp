// `hosts enrol NAME` and `hosts revoke NAME`: an operator issues a host's credential (replacing
// any earlier one, a revoked one included) or makes it worthless.
#include <cstdio>
#include <memory>

#include "ops_connection.hpp"
#include "trainvisor/fleet/private_file.hpp"

namespace tv::cli {
namespace {

struct HostFlags : OpsFlags {
  std::string name;
  std::string credential_file;
};

// The credential is shown once: written to a file (0600) for the host's --credential-file, or
// printed for the operator to carry there.
void enrol_host(const HostFlags& f) {
  OpsConnection c(f);
  const auto r = value_of(c.operator_client().enrol(f.name));
  if (!f.credential_file.empty()) fleet::write_private_file(f.credential_file, r.credential + "\n");
  print(f, nlohmann::json(r), [&] {
    if (f.credential_file.empty()) {
      std::printf("%s\n", r.credential.c_str());
      std::fprintf(stderr,
                   "host %s enrolled: the credential above is shown only now; give it to the host "
                   "in a file of mode 0600 (trainvisor host --credential-file FILE) or as "
                   "$TRAINVISOR_HOST_CREDENTIAL\n",
                   r.host.c_str());
    } else {
      std::printf(
          "host %s enrolled: its credential is in %s (mode 0600); give the host that "
          "file (trainvisor host --credential-file FILE)\n",
          r.host.c_str(), f.credential_file.c_str());
    }
  });
}

void revoke_host(const HostFlags& f) {
  OpsConnection c(f);
  const auto r = value_of(c.operator_client().revoke(f.name));
  print(f, nlohmann::json(r), [&] {
    std::printf(
        "host %s revoked: its credential is refused from now on; `trainvisor hosts enrol "
        "%s` issues a new one\n",
        r.host.c_str(), r.host.c_str());
  });
}

}  // namespace

void add_host_commands(CLI::App& app) {
  auto f = std::make_shared<HostFlags>();
  CLI::App* hosts = app.add_subcommand("hosts", "Host credentials: enrol or revoke a host");
  hosts->require_subcommand(1);
  CLI::App* enrol = hosts->add_subcommand(
      "enrol", "Issue a host's credential (replacing any earlier one); shown only once");
  CLI::App* revoke =
      hosts->add_subcommand("revoke", "Refuse a host's credential until it is enrolled again");
  for (CLI::App* cmd : {enrol, revoke}) {
    add_connection_flags(*cmd, *f);
    cmd->add_option("NAME", f->name, "The host's name (its --name, default its hostname)")
        ->required();
  }
  enrol->add_option("--credential-file", f->credential_file,
                    "Write the credential to this file (mode 0600) instead of printing it");
  enrol->callback([f] { enrol_host(*f); });
  revoke->callback([f] { revoke_host(*f); });
}

}  // namespace tv::cli
