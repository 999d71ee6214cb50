// The events push channel (GET kEvents, a WebSocket): what a dashboard is told live, so that it
// never reloads everything to stay current. Every message is one JSON object with a "type".
//
// Admission: a browser's upgrade carries Origin; it must be the server's own ("http://HOST" or
// "https://HOST", HOST as the request's Host header says it), else 403 naming it. A client that
// sends no Origin (not a browser) is let in.
//
// Client -> server:
//   {"type":"hello","read_token":T}  first, when reads are not public (a browser cannot set a
//       header on a WebSocket): the read, operator or worker token. Missing within the head
//       timeout, or wrong: the server closes with code 1008 and the reason.
//   {"type":"subscribe","fleet":true}   every job's summary and every worker, as they change
//   {"type":"subscribe","job":ID[,"after_step":S][,"after_seq":Q]}  one job's new telemetry
//       points (after step S; default: the last one stored now, -1: all kept) and its config
//       audit entries (after seq Q; default 0: the whole log, then each new one), and its
//       trainer's log tail (the one kept now, then each new one)
//   {"type":"unsubscribe","fleet":true} / {"type":"unsubscribe","job":ID}
// A message that is not JSON, has another type or lacks its fields closes the channel (1008,
// saying why); an unknown job or too many subscriptions is an "error" message only.
//
// Server -> client:
//   {"type":"ready","public_reads":B}   the channel is open for subscriptions
//   {"type":"subscribed","job":ID,"after_step":S,"after_seq":Q} / {"type":"subscribed",
//       "fleet":true}
//   {"type":"job","job":{"id","name","status","attempt","worker","heartbeat_ms","updated_ms",
//       "desired_revision","applied_revision","last":{"step","epoch","loss","val_accuracy",
//       "learning_rate"}|null}}  a job's summary when it changed (fleet, or the job subscribed)
//   {"type":"worker","worker":{"name","capability","registered_ms","last_seen_ms"}}  (fleet)
//   {"type":"telemetry","job":ID,"points":[point...],"truncated":B}  new points, at most
//       kEventPointsPerMessage a message and one message a job per kEventTick; truncated: older
//       new points were left out (re-read the curve)
//   {"type":"config","job":ID,"revision":R,"entries":[AuditRecord...]}  new audit entries,
//       refusals included (accepted false), R the hub's revision now
//   {"type":"log","job":ID,"host":H,"updated_ms":T,"lines":[L...],"truncated":B}  the job's
//       trainer-log tail (api::JobLog, kJobLog): right after "subscribed" when one is kept, then
//       whenever its host sends a new one (at most once a heartbeat); always the whole tail, which
//       replaces the one before; lines are clean UTF-8 text, to be shown as text, never as markup
//   {"type":"error","message":M}     a subscription refused
//   {"type":"keepalive"}             every kEventKeepalive when nothing else was sent
// A client that does not read is cut off once the server's queue for it is full
// (max_websocket_queue_bytes) or a write stalls past the transfer timeout; the others never wait
// for it. Events connections take at most half of the server's max_websocket_sessions (503
// beyond), and count against its per-address connection limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tv::fleet::api {

inline constexpr std::chrono::milliseconds kEventTick{250};
inline constexpr std::chrono::milliseconds kEventKeepalive{10000};
inline constexpr std::size_t kEventPointsPerMessage = 1000;
inline constexpr std::size_t kEventMaxJobs = 32;  // jobs one connection may subscribe to

// The client's messages, as JSON text.
std::string events_hello(const std::string& read_token);
std::string events_subscribe_fleet();
std::string events_subscribe_job(const std::string& job,
                                 std::optional<std::int64_t> after_step = std::nullopt,
                                 std::optional<std::uint64_t> after_seq = std::nullopt);

}  // namespace tv::fleet::api
