// The hosts' credentials: one secret per host name, issued at enrolment and kept in the
// coordinator's database as its SHA-256 only (the host keeps the secret). A worker call proves
// which host it comes from with the credential "NAME:SECRET"; the coordinator takes the host of
// every claim, lease call, telemetry batch and policy write from verify(), never from a body.
//
// Enrolment is trust on first use: enrol_new() (a host holding the worker token) issues a
// credential for a name that never had one and refuses a name already enrolled or revoked, so a
// host holding the worker token cannot take over another's name. reissue() (an operator) replaces
// a name's credential whatever its state; revoke() makes it worthless until an operator enrols
// the name again.
//
// Thread-safety: any number of threads; calls are serialised by an internal mutex. The table
// (host_credentials) lives in the coordinator's one database file, created when missing; verify()
// reads a copy in memory that every write updates, so the file must have one coordinator.
// Errors: database failures throw store::StoreError; a name that valid_host_name() refuses
// throws std::invalid_argument naming it. Nothing is written when a call throws.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tv::fleet {

// The separator of a credential's two parts: "NAME:SECRET" (a host name never holds it).
inline constexpr char kCredentialSeparator = ':';

struct Enrolment {
  enum class Result { kIssued, kAlreadyEnrolled, kRevoked };
  Result result = Result::kIssued;
  std::string credential;  // "NAME:SECRET" when issued: shown this once, never stored
};

struct EnrolledHost {
  std::string name;
  std::int64_t enrolled_ms = 0;
  std::optional<std::int64_t> revoked_ms;
};

class HostCredentials {
 public:
  // Opens the database at `path` (WAL, as the other stores) and creates the table when missing.
  static HostCredentials open(const std::string& path);

  HostCredentials(HostCredentials&&) noexcept;
  HostCredentials& operator=(HostCredentials&&) noexcept;
  ~HostCredentials();

  // A credential for `name` if it never had one (kIssued); otherwise nothing changes.
  Enrolment enrol_new(const std::string& name, std::int64_t now_ms);
  // A new credential for `name`, replacing (and un-revoking) any earlier one.
  std::string reissue(const std::string& name, std::int64_t now_ms);
  // False when `name` was never enrolled. A revoked name stays revoked until reissue().
  bool revoke(const std::string& name, std::int64_t now_ms);
  // The host `credential` proves, or nullopt: malformed, unknown name, wrong secret, revoked.
  // The secret's digest is compared in constant time.
  std::optional<std::string> verify(std::string_view credential) const;
  std::vector<EnrolledHost> list() const;  // by name

 private:
  struct Impl;
  explicit HostCredentials(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
