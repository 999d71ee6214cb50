// The validation rules for what clients send: digests, job ids and artifact names. Every refusal
// must name the value and the reason, since the HTTP layer passes the message on as is.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "trainvisor/fleet/artifact_store.hpp"

namespace tv::fleet {
namespace {

const std::string kDigest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

void expect_refused(const std::optional<ArtifactError>& e, const std::string& what,
                    const std::string& shown, const std::string& reason) {
  ASSERT_TRUE(e.has_value()) << what << " " << shown << " was accepted";
  EXPECT_EQ(e->code, ArtifactErrc::invalid_argument);
  EXPECT_NE(e->message.find(what), std::string::npos) << e->message;
  EXPECT_NE(e->message.find(shown), std::string::npos) << e->message;
  EXPECT_NE(e->message.find(reason), std::string::npos) << e->message;
}

TEST(ArtifactChecks, AcceptsWhatTheFleetProduces) {
  EXPECT_FALSE(check_digest(kDigest));
  EXPECT_FALSE(check_job_id(kDigest)) << "job ids are sha256 hex";
  EXPECT_FALSE(check_job_id("cnn-oracle:attempt.2"));
  EXPECT_FALSE(check_job_id(std::string(200, 'j')));
  EXPECT_FALSE(check_artifact_name("bundle.tvb"));
  EXPECT_FALSE(check_artifact_name("model-v1_2.pt"));
  EXPECT_FALSE(check_artifact_name(std::string(200, 'n')));
}

TEST(ArtifactChecks, RefusesMalformedDigests) {
  expect_refused(check_digest(""), "digest", "''", "got 0 characters");
  expect_refused(check_digest(kDigest.substr(1)), "digest", kDigest.substr(1), "got 63");
  expect_refused(check_digest(kDigest + "0"), "digest", "(65 bytes)", "got 65");
  std::string upper = kDigest;
  upper[3] = 'D';
  expect_refused(check_digest(upper), "digest", upper, "uppercase is not accepted");
  std::string g = kDigest;
  g[10] = 'g';
  expect_refused(check_digest(g), "digest", g, "found 'g' at offset 10");
  std::string nul = kDigest;
  nul[0] = '\0';
  expect_refused(check_digest(nul), "digest", "'\\x00" + kDigest.substr(1, 20), "0x00");
}

struct Refusal {
  std::string value;
  std::string shown;   // how the message must show it
  std::string reason;  // a piece of the reason
};

// What job ids and names both refuse: anything that could leave a directory or hide in a log.
const std::vector<Refusal> kCommonRefusals = {
    {"..", "'..'", "contains '..'"},
    {"a..b", "'a..b'", "contains '..'"},
    {"a/b", "'a/b'", "contains '/'"},
    {"/abs", "'/abs'", "contains '/'"},
    {"a\\b", "'a\\b'", "contains '\\'"},
    {"", "''", "is empty"},
    {std::string(201, 'x'), "(201 bytes)", "longer than the limit of 200"},
    {std::string("a\0b", 3), "'a\\x00b'", "NUL"},
    {"a\x1b[2Jb", "'a\\x1b[2Jb'", "control character 0x1b"},
};

TEST(ArtifactChecks, RefusesJobIdsThatCouldEscapeOrConfuse) {
  for (const auto& r : kCommonRefusals)
    expect_refused(check_job_id(r.value), "job id", r.shown, r.reason);
  expect_refused(check_job_id("a b"), "job id", "'a b'", "space");
  expect_refused(check_job_id("caf\xc3\xa9"), "job id", "'caf\\xc3\\xa9'", "non-ASCII");
}

TEST(ArtifactChecks, RefusesArtifactNamesOutsideTheirAlphabet) {
  for (const auto& r : kCommonRefusals) {
    expect_refused(check_artifact_name(r.value), "artifact name", r.shown, r.reason);
  }
  expect_refused(check_artifact_name(".hidden"), "artifact name", "'.hidden'", "starts with '.'");
  expect_refused(check_artifact_name("a b"), "artifact name", "'a b'", "contains ' '");
  expect_refused(check_artifact_name("a:b"), "artifact name", "'a:b'", "allowed are");
}

TEST(ArtifactChecks, ResultValueOnAnErrorThrowsTheMessage) {
  ArtifactResult<int> r(ArtifactError{ArtifactErrc::not_found, "artifact X: not in the store"});
  EXPECT_FALSE(r.ok());
  try {
    (void)r.value();
    FAIL() << "value() on an error returned";
  } catch (const std::logic_error& e) {
    EXPECT_NE(std::string(e.what()).find("artifact X: not in the store"), std::string::npos);
  }
  ArtifactResult<int> good(7);
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good.value(), 7);
}

}  // namespace
}  // namespace tv::fleet
