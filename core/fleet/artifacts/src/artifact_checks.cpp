#include <cstdio>
#include <string>

#include "trainvisor/fleet/artifact_store.hpp"

namespace tv::fleet {
namespace {

constexpr std::size_t kMaxIdBytes = 200;
// Enough of a refused value to recognize it without flooding a log line.
constexpr std::size_t kShownBytes = 64;

std::string hex_byte(unsigned char c) {
  char buf[5];
  std::snprintf(buf, sizeof buf, "0x%02x", c);
  return buf;
}

// A refused value may carry NUL or terminal escapes; the message must show it without passing
// those on to a terminal or a JSON error body.
std::string quoted(std::string_view v) {
  std::string out = "'";
  for (std::size_t i = 0; i < v.size() && i < kShownBytes; ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (v.size() > kShownBytes) out += "...";
  out += "'";
  if (v.size() > kShownBytes) out += " (" + std::to_string(v.size()) + " bytes)";
  return out;
}

ArtifactError invalid(std::string_view what, std::string_view value, const std::string& why) {
  return {ArtifactErrc::invalid_argument, std::string(what) + " " + quoted(value) + ": " + why};
}

// The rules job ids and names share; `what` names the thing in the message.
std::optional<ArtifactError> check_common(std::string_view what, std::string_view v) {
  if (v.empty()) return invalid(what, v, "is empty");
  if (v.size() > kMaxIdBytes) {
    return invalid(what, v,
                   "is " + std::to_string(v.size()) + " bytes, longer than the limit of " +
                       std::to_string(kMaxIdBytes));
  }
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) return invalid(what, v, "contains a NUL byte");
    if (c < 0x20 || c == 0x7f) return invalid(what, v, "contains control character " + hex_byte(c));
    if (c == '/') return invalid(what, v, "contains '/'");
    if (c == '\\') return invalid(what, v, "contains '\\'");
  }
  if (v.find("..") != std::string_view::npos) return invalid(what, v, "contains '..'");
  return std::nullopt;
}

}  // namespace

std::optional<ArtifactError> check_digest(std::string_view digest) {
  const std::string rule = "must be 64 lowercase hex characters (a sha256)";
  if (digest.size() != 64) {
    return invalid("digest", digest,
                   rule + ", got " + std::to_string(digest.size()) + " characters");
  }
  for (std::size_t i = 0; i < digest.size(); ++i) {
    const char c = digest[i];
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) continue;
    const bool upper = c >= 'A' && c <= 'F';
    const auto u = static_cast<unsigned char>(c);
    const std::string shown = (u >= 0x20 && u < 0x7f) ? "'" + std::string(1, c) + "'" : hex_byte(u);
    return invalid("digest", digest,
                   rule + ", found " + shown + " at offset " + std::to_string(i) +
                       (upper ? " (uppercase is not accepted)" : ""));
  }
  return std::nullopt;
}

std::optional<ArtifactError> check_job_id(std::string_view job_id) {
  if (auto e = check_common("job id", job_id)) return e;
  for (const char ch : job_id) {
    const auto c = static_cast<unsigned char>(ch);
    // Job ids travel in URL paths and log lines: a space or a non-ASCII byte there is a bug
    // upstream, not a name anyone chose.
    if (c == ' ') return invalid("job id", job_id, "contains a space");
    if (c >= 0x80) return invalid("job id", job_id, "contains non-ASCII byte " + hex_byte(c));
  }
  return std::nullopt;
}

std::optional<ArtifactError> check_artifact_name(std::string_view name) {
  if (auto e = check_common("artifact name", name)) return e;
  for (const char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      const auto u = static_cast<unsigned char>(c);
      const std::string shown = u < 0x80 ? "'" + std::string(1, c) + "'" : hex_byte(u);
      return invalid("artifact name", name,
                     "contains " + shown + "; allowed are A-Z a-z 0-9 '.' '_' '-'");
    }
  }
  // A leading dot would hide the file from a plain `ls` of wherever a client saves it.
  if (name.front() == '.') return invalid("artifact name", name, "starts with '.'");
  return std::nullopt;
}

}  // namespace tv::fleet
