// Checked values at the protocol's edge: every number a decoder or a route reads from JSON or
// from a query string, every name and every free text, goes through one of these, so that a
// value out of its field's range is refused with a reason instead of being wrapped, truncated or
// stored. Each throws std::invalid_argument naming the field and the reason
// ("capability.cores: 1e+26 is out of range (0..1048576)"), which the server answers with 400.
//
// Integer fields take an integer JSON number within the field's range; a float with no fraction
// (3.0, 1e3) counts as that integer, any other float is refused (no truncation). Float fields
// take a finite number within the field's range. The bounds of each field are below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "trainvisor/fleet/api/json.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::fleet::api {

// The largest value of an int64 column: steps, revisions, counts and times are stored as
// SQLite integers, so an unsigned field is bounded by it too.
inline constexpr std::uint64_t kMaxStored = std::uint64_t(std::numeric_limits<std::int64_t>::max());

// A host's capability: cores 0..1048576, cuda_devices 0..1024, ram_gib and vram_gib finite in
// 0..16777216 (16 PiB); its strings at most kMaxLabelBytes.
inline constexpr std::int64_t kMaxCores = 1 << 20;
inline constexpr std::int64_t kMaxCudaDevices = 1024;
inline constexpr double kMaxMemoryGib = double(1 << 24);
// A telemetry point: step, config_revision and wall_time_ns 0..kMaxStored; epoch and flags
// 0..2^32-1 (their field types); metrics finite, or null when unknown. A batch holds at most
// kMaxBatchPoints points and kMaxBatchRefusals refusals.
inline constexpr std::size_t kMaxBatchPoints = 100000;
inline constexpr std::size_t kMaxBatchRefusals = 1000;
// A config write holds at most kMaxConfigWrites key paths, each at most kMaxLabelBytes, and a
// string value at most kMaxTextBytes.
inline constexpr std::size_t kMaxConfigWrites = 256;

// Names: a worker (host) name, like a manifest's host and job names, is 1..64 of
// [A-Za-z0-9._-], not starting with '.' or '-' (valid_host_name in trainvisor/fleet/names.hpp).
// Labels (a capability's version strings, policy names, lease tokens, config paths and
// prefixes): at most kMaxLabelBytes. Free text (fail, cancel and stop reasons, config write
// reasons, an agent's refusal reasons): at most kMaxTextBytes; longer is refused, not cut.
inline constexpr std::size_t kMaxLabelBytes = 256;
inline constexpr std::size_t kMaxTextBytes = 4096;

// `v` (named `field` in errors) as an integer in lo..hi.
std::int64_t checked_int(const nlohmann::json& v, std::string_view field, std::int64_t lo,
                         std::int64_t hi);
std::uint64_t checked_uint(const nlohmann::json& v, std::string_view field, std::uint64_t lo,
                           std::uint64_t hi);
// `v` as a finite number in lo..hi (an integer JSON number counts as a float).
double checked_double(const nlohmann::json& v, std::string_view field, double lo, double hi);

// Member `key` of object `j`, named "PREFIX.KEY" in errors (KEY when prefix is empty): `dflt`
// when absent or null, else checked as above.
std::int64_t int_field(const nlohmann::json& j, std::string_view prefix, const char* key,
                       std::int64_t dflt, std::int64_t lo, std::int64_t hi);
std::uint64_t uint_field(const nlohmann::json& j, std::string_view prefix, const char* key,
                         std::uint64_t dflt, std::uint64_t lo = 0, std::uint64_t hi = kMaxStored);
double double_field(const nlohmann::json& j, std::string_view prefix, const char* key, double dflt,
                    double lo, double hi);
bool bool_field(const nlohmann::json& j, std::string_view prefix, const char* key, bool dflt);
// A string member of at most max_bytes; `dflt` when absent or null.
std::string text_field(const nlohmann::json& j, std::string_view prefix, const char* key,
                       std::size_t max_bytes, const std::string& dflt = {});
// A worker (host) name member, required: valid_name's charset and length.
std::string name_field(const nlohmann::json& j, std::string_view prefix, const char* key);

// For a sender: `text` cut to at most max_bytes (at a UTF-8 boundary, ending "...[cut]"), so
// that what it forwards from elsewhere (a refusal's reason) is never refused for its length.
std::string bounded_text(std::string text, std::size_t max_bytes = kMaxTextBytes);
// For a sender: whether a telemetry point's step, revision and time are within the wire's
// ranges (a broken trainer's record may not be); one that is not would have its whole batch
// refused. A non-finite metric is fine: it travels as null.
bool point_in_range(const plugin::TelemetryPoint& p);

// A query parameter's text as a whole number in lo..hi, named "query parameter 'KEY'".
std::uint64_t checked_param(std::string_view text, std::string_view key, std::uint64_t lo,
                            std::uint64_t hi);

}  // namespace tv::fleet::api
