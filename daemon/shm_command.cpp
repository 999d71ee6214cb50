#include "shm_command.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ops_connection.hpp"

#include "trainvisor/shm/block_name.hpp"
#include "trainvisor/shm/config_block.hpp"
#include "trainvisor/shm/telemetry_ring.hpp"

namespace tv::cli {
namespace {

using nlohmann::json;

json value_json(const shm::Value& v) {
  switch (v.type()) {
    case shm::ValueType::kFloat64: {
      const double d = v.as_f64();
      return std::isfinite(d) ? json(d) : json(v.to_string());  // JSON has no NaN/inf
    }
    case shm::ValueType::kInt64:
      return v.as_i64();
    case shm::ValueType::kBool:
      return v.as_bool();
    case shm::ValueType::kString:
      return std::string(v.as_string());
    case shm::ValueType::kNone:
      break;
  }
  return nullptr;
}

double seconds_since(std::uint64_t unix_ns) {
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return static_cast<double>(static_cast<std::int64_t>(now) - static_cast<std::int64_t>(unix_ns)) /
         1e9;
}

json inspect_json(const shm::ConfigBlockReader& reader) {
  const shm::BlockInfo info = reader.info();
  const shm::RingState ring = reader.ring_state();
  const std::optional<shm::BlockLease> lease = reader.lease();
  json keys = json::array();
  for (const shm::KeyEntry& e : reader.entries()) {
    keys.push_back({{"path", e.path},
                    {"type", std::string(shm::type_name(e.value.type()))},
                    {"value", value_json(e.value)},
                    {"consistent", e.consistent}});
  }
  return {
      {"block", info.name},
      {"path", "/dev/shm/" + info.name},
      {"layout", {{"major", info.layout_major}, {"minor", info.layout_minor}}},
      {"total_bytes", info.total_bytes},
      {"slot_capacity", info.slot_capacity},
      {"created_unix_ns", info.created_unix_ns},
      {"writer",
       {{"pid", info.writer_pid},
        {"alive", shm::writer_alive(info)},
        {"start_unix_ns", info.writer_start_unix_ns},
        {"repairs", info.repairs}}},
      {"heartbeat",
       {{"unix_ns", info.heartbeat_unix_ns},
        {"age_seconds", seconds_since(info.heartbeat_unix_ns)}}},
      // null while another holder is stamping its lease into the block.
      {"lease",
       lease ? json{{"attempt", lease->attempt}, {"digest", lease->digest_hex()}} : json(nullptr)},
      {"key_table_generation", info.key_count},
      {"tree_generation", info.tree_seq / 2},
      {"write_in_progress", (info.tree_seq & 1) != 0},
      {"keys", keys},
      {"telemetry",
       {{"capacity", ring.capacity},
        {"head", ring.head},
        {"reader_next", ring.reader_next},
        {"unread", ring.head > ring.reader_next ? ring.head - ring.reader_next : 0},
        {"dropped", ring.reader_dropped}}},
  };
}

void print_text(const json& j) {
  std::cout << "block            " << j["block"].get<std::string>() << " ("
            << j["path"].get<std::string>() << ")\n";
  std::cout << "layout           " << j["layout"]["major"] << "." << j["layout"]["minor"] << ", "
            << j["total_bytes"] << " bytes, " << j["slot_capacity"] << " slots\n";
  const json& w = j["writer"];
  std::cout << "writer           pid " << w["pid"]
            << (w["alive"].get<bool>() ? " (alive)" : " (gone)") << ", repairs " << w["repairs"]
            << "\n";
  const json& l = j["lease"];
  std::cout << "lease            "
            << (l.is_null() ? std::string("being stamped by a new holder")
                            : "attempt " + l["attempt"].dump() + ", token digest " +
                                  l["digest"].get<std::string>().substr(0, 16) + "...")
            << "\n";
  char age[32];
  std::snprintf(age, sizeof age, "%.3f", j["heartbeat"]["age_seconds"].get<double>());
  std::cout << "heartbeat        " << age << " s ago\n";
  std::cout << "generation       tree " << j["tree_generation"] << ", key table "
            << j["key_table_generation"]
            << (j["write_in_progress"].get<bool>() ? ", WRITE IN PROGRESS" : "") << "\n";
  const json& t = j["telemetry"];
  std::cout << "telemetry        head " << t["head"] << ", reader at " << t["reader_next"]
            << ", unread " << t["unread"] << ", dropped " << t["dropped"] << " (capacity "
            << t["capacity"] << ")\n";
  std::cout << "keys (" << j["keys"].size() << ")\n";
  for (const json& k : j["keys"]) {
    std::cout << "  " << k["path"].get<std::string>() << "  " << k["type"].get<std::string>()
              << "  " << k["value"].dump() << (k["consistent"].get<bool>() ? "" : "  (mid-write)")
              << "\n";
  }
}

// The job ids of the blocks in /dev/shm that start with `prefix`.
std::vector<std::string> blocks_starting(const std::string& prefix) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/dev/shm", ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(shm::kBlockNamePrefix, 0) != 0) continue;
    const std::string id = name.substr(shm::kBlockNamePrefix.size());
    if (id.rfind(prefix, 0) == 0) ids.push_back(id);
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

// The block in /dev/shm named by `given` as a block name, a job id or a unique id prefix; empty
// when none is. Throws std::invalid_argument listing the ids an ambiguous prefix starts.
std::string local_block(const std::string& given) {
  std::string block;
  try {
    block = shm::block_name_from_user(given);
  } catch (const shm::ShmError&) {
    return {};  // not an id (a job name may be anything)
  }
  if (std::filesystem::exists("/dev/shm/" + block)) return block;
  const std::vector<std::string> ids = blocks_starting(block.substr(shm::kBlockNamePrefix.size()));
  if (ids.size() == 1) return shm::block_name_for_job(ids[0]);
  if (ids.empty()) return {};
  std::string list;
  for (const auto& id : ids)
    list += "\n  " + id;
  throw std::invalid_argument("'" + given + "' starts " + std::to_string(ids.size()) +
                              " block ids in /dev/shm; give more of it:" + list);
}

// The block of a job named by block name, id, unique id prefix (of the blocks in /dev/shm), or
// name (resolved by the coordinator, when one is configured). Throws std::invalid_argument
// naming what was given.
std::string block_of(const std::string& given, const OpsFlags& coordinator) {
  if (std::string block = local_block(given); !block.empty()) return block;
  if (!coordinator_configured(coordinator)) {
    const std::string hint =
        " (a job name needs a coordinator: --coordinator or TRAINVISOR_COORDINATOR)";
    std::string block;
    try {
      block = shm::block_name_from_user(given);
    } catch (const shm::ShmError& e) {
      throw std::invalid_argument(e.what() + hint);  // not an id, so only a name could be meant
    }
    throw std::invalid_argument("block '" + block +
                                "' does not exist, nor one whose job id starts so" + hint);
  }
  OpsConnection c(coordinator);
  const std::string id = c.resolve(given);
  if (!std::filesystem::exists("/dev/shm/" + shm::block_name_for_job(id)))
    throw std::invalid_argument("job '" + given + "' (" + id + ") has no block on this machine");
  return shm::block_name_for_job(id);
}

}  // namespace

void add_shm_commands(CLI::App& app) {
  CLI::App* shm = app.add_subcommand("shm", "Look into a job's shared-memory block");
  shm->require_subcommand(1);
  CLI::App* inspect = shm->add_subcommand(
      "inspect", "Header, writer liveness, generations, every key and the telemetry ring");
  auto name = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>("text");
  auto coordinator = std::make_shared<OpsFlags>();
  inspect
      ->add_option("JOB", *name,
                   "Job id, unique id prefix, block name (trainvisor.<job id>), or job name "
                   "(with a coordinator)")
      ->required();
  add_coordinator_flags(*inspect, *coordinator);
  inspect->add_option("-o,--output", *output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));
  inspect->callback([name, output, coordinator] {
    const auto reader = shm::ConfigBlockReader::attach(block_of(*name, *coordinator));
    const json j = inspect_json(reader);
    // A block truncated while it was read showed zeros, not its state: refuse to print them.
    if (const auto why = reader.damage()) throw shm::ShmError(*why);
    if (*output == "json") {
      std::cout << j.dump(2) << "\n";
    } else {
      print_text(j);
    }
  });
}

}  // namespace tv::cli
