#include "trainvisor/fleet/host_credentials.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <cstddef>
#include <map>
#include <mutex>
#include <stdexcept>

#include "trainvisor/fleet/names.hpp"
#include "trainvisor/fleet/sha256.hpp"
#include "trainvisor/fleet/store/connection.hpp"
#include "trainvisor/fleet/store/transaction.hpp"

namespace tv::fleet {
namespace {

using store::Connection;
using store::Statement;
using store::Transaction;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS host_credentials (
  name TEXT PRIMARY KEY,
  secret_sha256 TEXT NOT NULL,
  enrolled_ms INTEGER NOT NULL,
  revoked_ms INTEGER
);
)sql";

// 256 random bits as hex: guessing one is out of reach, so the digest needs no salt or stretching.
std::string random_secret() {
  std::array<std::byte, 32> raw{};
  if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(raw.size())) != 1)
    throw std::runtime_error("host credentials: OpenSSL RAND_bytes failed");
  return to_hex(raw);
}

void check_name(const std::string& name) {
  if (const std::string why = host_name_problem(name); !why.empty())
    throw std::invalid_argument(why);
}

struct Row {
  std::string secret_sha256;
  std::int64_t enrolled_ms = 0;
  std::optional<std::int64_t> revoked_ms;
};

}  // namespace

struct HostCredentials::Impl {
  explicit Impl(const std::string& path) : db(path, {"host credentials"}) {
    db.exec(kSchema);
    Statement st =
        db.prepare("SELECT name, secret_sha256, enrolled_ms, revoked_ms FROM host_credentials");
    while (st.step())
      rows[st.column_text(0)] = {st.column_text(1), st.column_int(2), st.column_optional_int(3)};
  }

  // Writes `name`'s row (a new secret, not revoked) in one transaction, then its copy in
  // memory, and returns the credential. The caller holds mu.
  std::string issue(const std::string& name, std::int64_t now) {
    const std::string secret = random_secret();
    Row row{sha256_hex(secret), now, std::nullopt};
    {
      Transaction tx(db);
      Statement st = db.prepare(
          "INSERT INTO host_credentials (name, secret_sha256, enrolled_ms, revoked_ms) "
          "VALUES (?, ?, ?, NULL) ON CONFLICT (name) DO UPDATE SET "
          "secret_sha256=excluded.secret_sha256, enrolled_ms=excluded.enrolled_ms, "
          "revoked_ms=NULL");
      st.bind_all(name, row.secret_sha256, now).run();
      tx.commit();
    }
    rows[name] = std::move(row);
    return name + kCredentialSeparator + secret;
  }

  mutable std::mutex mu;  // guards db and rows
  Connection db;
  std::map<std::string, Row> rows;  // the table, as committed
};

HostCredentials::HostCredentials(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HostCredentials::HostCredentials(HostCredentials&&) noexcept = default;
HostCredentials& HostCredentials::operator=(HostCredentials&&) noexcept = default;
HostCredentials::~HostCredentials() = default;

HostCredentials HostCredentials::open(const std::string& path) {
  return HostCredentials(std::make_unique<Impl>(path));
}

Enrolment HostCredentials::enrol_new(const std::string& name, std::int64_t now_ms) {
  check_name(name);
  std::lock_guard lock(impl_->mu);
  if (const auto it = impl_->rows.find(name); it != impl_->rows.end()) {
    return {
        it->second.revoked_ms ? Enrolment::Result::kRevoked : Enrolment::Result::kAlreadyEnrolled,
        {}};
  }
  return {Enrolment::Result::kIssued, impl_->issue(name, now_ms)};
}

std::string HostCredentials::reissue(const std::string& name, std::int64_t now_ms) {
  check_name(name);
  std::lock_guard lock(impl_->mu);
  return impl_->issue(name, now_ms);
}

bool HostCredentials::revoke(const std::string& name, std::int64_t now_ms) {
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->rows.find(name);
  if (it == impl_->rows.end()) return false;
  if (it->second.revoked_ms) return true;
  Statement st = impl_->db.prepare("UPDATE host_credentials SET revoked_ms=? WHERE name=?");
  st.bind_all(now_ms, name).run();
  it->second.revoked_ms = now_ms;
  return true;
}

std::optional<std::string> HostCredentials::verify(std::string_view credential) const {
  const auto sep = credential.rfind(kCredentialSeparator);
  if (sep == std::string_view::npos) return std::nullopt;
  const std::string name(credential.substr(0, sep));
  const std::string digest = sha256_hex(credential.substr(sep + 1));
  std::lock_guard lock(impl_->mu);
  const auto it = impl_->rows.find(name);
  if (it == impl_->rows.end() || it->second.revoked_ms) return std::nullopt;
  const std::string& stored = it->second.secret_sha256;
  if (stored.size() != digest.size() ||
      CRYPTO_memcmp(stored.data(), digest.data(), digest.size()) != 0)
    return std::nullopt;
  return name;
}

std::vector<EnrolledHost> HostCredentials::list() const {
  std::lock_guard lock(impl_->mu);
  std::vector<EnrolledHost> out;
  for (const auto& [name, row] : impl_->rows)
    out.push_back({name, row.enrolled_ms, row.revoked_ms});
  return out;
}

}  // namespace tv::fleet
