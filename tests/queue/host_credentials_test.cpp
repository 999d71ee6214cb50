// The hosts' credentials: trust on first use, the operator's reissue and revoke, verification,
// and the database holding only digests.
#include "trainvisor/fleet/host_credentials.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "temp_dir.hpp"

namespace tv::fleet {
namespace {

using Result = Enrolment::Result;

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class HostCredentialsTest : public ::testing::Test {
 protected:
  std::string path() const { return dir.file("coordinator.sqlite"); }
  test::TempDir dir;
};

TEST_F(HostCredentialsTest, TheFirstEnrolmentOfANameWinsAndItsCredentialVerifies) {
  auto h = HostCredentials::open(path());
  const Enrolment a = h.enrol_new("host-a", 1);
  ASSERT_EQ(a.result, Result::kIssued);
  EXPECT_EQ(a.credential.rfind("host-a:", 0), 0u) << a.credential;
  EXPECT_EQ(h.verify(a.credential), "host-a");
  // The name is taken: a second enrolment gets nothing, and the first credential still holds.
  const Enrolment again = h.enrol_new("host-a", 2);
  EXPECT_EQ(again.result, Result::kAlreadyEnrolled);
  EXPECT_TRUE(again.credential.empty());
  EXPECT_EQ(h.verify(a.credential), "host-a");
  // Another name's secret, a wrong secret, nothing: no host.
  const Enrolment b = h.enrol_new("host-b", 3);
  const std::string b_secret = b.credential.substr(b.credential.find(':') + 1);
  EXPECT_EQ(h.verify("host-a:" + b_secret), std::nullopt);
  EXPECT_EQ(h.verify("host-a:"), std::nullopt);
  EXPECT_EQ(h.verify("host-a"), std::nullopt);
  EXPECT_EQ(h.verify(""), std::nullopt);
  EXPECT_EQ(h.verify("nobody:" + b_secret), std::nullopt);
}

TEST_F(HostCredentialsTest, RevokedUntilAnOperatorEnrolsTheNameAgain) {
  auto h = HostCredentials::open(path());
  const std::string old = h.enrol_new("host-a", 1).credential;
  EXPECT_TRUE(h.revoke("host-a", 2));
  EXPECT_FALSE(h.revoke("never", 2));
  EXPECT_EQ(h.verify(old), std::nullopt);
  EXPECT_EQ(h.enrol_new("host-a", 3).result, Result::kRevoked);
  const std::string fresh = h.reissue("host-a", 4);
  EXPECT_EQ(h.verify(fresh), "host-a");
  EXPECT_EQ(h.verify(old), std::nullopt);
  ASSERT_EQ(h.list().size(), 1u);
  EXPECT_EQ(h.list()[0].enrolled_ms, 4);
  EXPECT_FALSE(h.list()[0].revoked_ms);
}

TEST_F(HostCredentialsTest, SurvivesAReopenAndTheFileHoldsNoSecret) {
  std::string credential;
  {
    auto h = HostCredentials::open(path());
    credential = h.enrol_new("host-a", 1).credential;
    h.revoke("host-a", 2);
    credential = h.reissue("host-a", 3);
  }
  auto h = HostCredentials::open(path());
  EXPECT_EQ(h.verify(credential), "host-a");
  const std::string secret = credential.substr(credential.find(':') + 1);
  for (const std::string& f : {path(), path() + "-wal"})
    EXPECT_EQ(file_bytes(f).find(secret), std::string::npos) << f;
}

TEST_F(HostCredentialsTest, RefusesNamesThatCannotNameAHost) {
  auto h = HostCredentials::open(path());
  for (const std::string& bad : std::vector<std::string>{"", "a:b", "a/b", "line\nbreak",
                                                         "\x1b[31mred", std::string(129, 'a')}) {
    EXPECT_THROW(h.enrol_new(bad, 1), std::invalid_argument) << bad;
    EXPECT_THROW(h.reissue(bad, 1), std::invalid_argument) << bad;
  }
  EXPECT_TRUE(h.list().empty());
}

}  // namespace
}  // namespace tv::fleet
