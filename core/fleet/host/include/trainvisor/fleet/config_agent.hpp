// The config agent of one job on one host: the single writer of the job's shared-memory block.
// It subscribes to the job's config stream on the coordinator (a WebSocket; the protocol is in
// trainvisor/fleet/api/config.hpp)
// from the revision its block holds and writes every revision into the block as one generation
// carrying that revision, so the trainer applies it at one step boundary.
//
// - A snapshot replaces the values the hub has; a gap (a revision other than the next, or a
//   keepalive naming one not seen) makes it resubscribe from its own revision.
// - After a disconnect it reconnects with jittered exponential backoff and resumes from its
//   revision; meanwhile the trainer trains on the block's last values.
// - It re-checks each delta: a policy's write under a prefix frozen (as the stream says) or a
//   value outside the knob schema is refused: the block keeps its last good values, takes the
//   revision, and the refusal is queued for the coordinator's audit log (take_refusals()).
// - It writes the block's heartbeat word at least every keepalive, which tells the trainer its
//   host is alive.
// - On construction it adopts the job's block if one of its lease exists (a restarted host
//   daemon), repairing it, and resumes from the revision the block holds. A block of another
//   lease (the job's earlier holder on this machine) is stamped with this lease, which stops its
//   trainer, and replaced by a fresh block: one lease, one trainer, one telemetry ring.
//
// Threading: one thread of its own; the accessors are safe from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "trainvisor/fleet/http.hpp"
#include "trainvisor/plugin.hpp"

namespace tv {
struct KeyWriter;
}

namespace tv::fleet {

struct ConfigAgentOptions {
  http::ClientOptions coordinator;
  std::string host_credential;  // "NAME:SECRET": the stream admits only the job's holder
  std::string job_id;
  plugin::ConfigView initial;  // the manifest's hyper: a new block's revision 1
  // The claim the block is for (shm::BlockLease): its attempt and the digest of its lease token
  // as hex (lease_digest_hex()). Attempt 0 and no digest: no lease.
  std::uint64_t lease_attempt = 0;
  std::string lease_digest;
  std::chrono::milliseconds idle_timeout{3000};  // no message for this long: reconnect
  std::chrono::milliseconds backoff_min{50};
  std::chrono::milliseconds backoff_max{5000};
  std::function<void(const std::string&)> log;  // what it did, for the host's log
};

struct ConfigAgentStats {
  std::uint64_t connects = 0;
  std::uint64_t snapshots = 0;
  std::uint64_t gaps = 0;     // lost messages detected
  std::uint64_t deltas = 0;   // revisions written
  std::uint64_t refused = 0;  // revisions refused
  bool connected = false;
  bool adopted_block = false;  // the block existed and was taken over
};

struct AgentRefusal {
  std::uint64_t revision = 0;
  std::string reason;
};

// The digest a block and a trainer name a lease by: SHA-256 of the token, in a domain of its own
// (it equals no other hash of the token the fleet keeps), as 64 hex digits. Never the token:
// any process of the same user can read a block and a process's arguments.
std::string lease_digest_hex(const std::string& lease_token);

class ConfigAgent {
 public:
  // Creates or adopts the block, then starts streaming. Throws shm::ShmError for block failures
  // and std::invalid_argument for an invalid initial config.
  explicit ConfigAgent(ConfigAgentOptions options);
  ~ConfigAgent();  // stops streaming; the block stays (remove_block() removes it)

  std::uint64_t revision() const;  // the revision in the block
  plugin::ConfigView config() const;
  // Who last wrote each key, from the actors of the deltas applied (the supervisor's holds;
  // KeyWriter is in trainvisor/core/supervisor.hpp).
  std::map<std::string, KeyWriter> writers() const;
  std::vector<std::string> frozen() const;
  ConfigAgentStats stats() const;
  std::vector<AgentRefusal> take_refusals();
  const std::string& block_name() const;
  // Why the block is broken (it was truncated), or nullopt while it is intact. One fstat.
  std::optional<std::string> block_damage() const;

  void stop();
  void remove_block();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tv::fleet
