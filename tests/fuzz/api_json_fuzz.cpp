// The protocol's JSON codecs on arbitrary bytes: the bytes are parsed as JSON and decoded as every
// request and reply message of core/fleet/api. A decoder accepts or refuses (invalid_argument or
// a JSON exception: the server's 400), never crashes, wraps or truncates (UBSan catches a float
// cast out of range); and what it accepts is stable: encode, decode, encode gives the same text.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "trainvisor/fleet/api/config.hpp"
#include "trainvisor/fleet/api/jobs.hpp"
#include "trainvisor/fleet/api/manifest.hpp"
#include "trainvisor/fleet/api/telemetry.hpp"

namespace {

using nlohmann::json;
namespace api = tv::fleet::api;

template <class T>
void round_trip(const json& input) {
  std::string first;
  try {
    first = json(input.get<T>()).dump();
  } catch (const std::invalid_argument&) {
    return;
  } catch (const json::exception&) {
    return;
  }
  // What one side encoded, the other decodes: a refusal here is a bug.
  const std::string second = json(json::parse(first).get<T>()).dump();
  if (first != second) {
    std::fprintf(stderr, "unstable round trip:\n%s\n%s\n", first.c_str(), second.c_str());
    std::abort();
  }
}

template <class... T>
void round_trips(const json& input) {
  (round_trip<T>(input), ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const json input = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) return 0;
  round_trips<tv::fleet::JobSpec, tv::fleet::HostCapability, api::ClaimRequest, api::ClaimReply,
              api::LeaseRequest, api::HeartbeatReply, api::CompleteRequest, api::FailRequest,
              api::RequeueRequest, api::CancelReply, api::ConfigLag, api::JobInfo, api::JobList,
              api::HostVerdict, api::Explanation, api::WorkerInfo, api::WorkerList, api::Health,
              api::AgentRefusalReport, api::TelemetryBatch, api::TelemetryCurve,
              api::ConfigWriteRequest, api::ConfigWriteReply, api::FreezeRequest,
              api::AppliedConfig, api::ConfigInfo, api::AuditRecord, api::AuditLog, api::FrozenList,
              api::StreamMessage, api::ReplacedJob, api::ReloadReply, api::ErrorReply>(input);
  return 0;
}
