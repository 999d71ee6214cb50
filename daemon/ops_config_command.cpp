// `config get|set|freeze|unfreeze|log`: a job's live config through the coordinator's hub.
#include <cstdio>
#include <deque>
#include <memory>

#include "ops_connection.hpp"
#include "terminal_text.hpp"
#include "train_command.hpp"
#include "trainvisor/fleet/param_json.hpp"

namespace tv::cli {
namespace {

using nlohmann::json;
namespace api = fleet::api;

struct ConfigFlags : OpsFlags {
  std::string path;               // get/set
  std::string value;              // set
  std::vector<std::string> also;  // set: more KEY=VALUE in the same revision
  std::string reason;             // set
  std::string prefix;             // freeze/unfreeze
  std::uint64_t log_after = 0;    // log: entries after this sequence number
  std::uint64_t log_limit = 100;
  bool log_oldest_first = false;  // log: also implied by --after, which pages forward
};

void config_get(const ConfigFlags& f) {
  OpsConnection c(f);
  const api::ConfigInfo info = value_of(c.client().config(c.resolve(f.job)));
  const auto it = info.values.find(f.path);
  if (!f.path.empty() && it == info.values.end())
    throw std::invalid_argument("the job has no key '" + f.path + "'");
  const json out = f.path.empty() ? json(info)
                                  : json{{"revision", info.revision},
                                         {"path", f.path},
                                         {"value", fleet::param_value_json(it->second)}};
  print(f, out, [&] {
    if (!f.path.empty()) {
      std::printf("%s\n", terminal_text(fleet::param_value_json(it->second).dump()).c_str());
      return;
    }
    std::printf("revision %llu%s\n", static_cast<unsigned long long>(info.revision),
                info.frozen.empty()
                    ? ""
                    : (", frozen: " + terminal_text(json(info.frozen).dump())).c_str());
    for (const auto& [k, v] : info.values)
      std::printf("  %-42s %s\n", terminal_text(k).c_str(),
                  terminal_text(fleet::param_value_json(v).dump()).c_str());
  });
}

void config_set(const ConfigFlags& f) {
  OpsConnection c(f);
  api::ConfigWriteRequest w;
  w.writes = {{f.path, parse_param_value(f.value)}};
  for (const auto& a : f.also) {
    auto [k, v] = parse_assignment(a, "--also");
    if (!w.writes.emplace(k, v).second)
      throw std::invalid_argument("--also: '" + k + "' is given twice");
  }
  w.reason = f.reason;
  const api::ConfigWriteReply r = value_of(c.operator_client().write_config(c.resolve(f.job), w));
  print(f, json(r),
        [&] { std::printf("revision %llu\n", static_cast<unsigned long long>(r.revision)); });
}

void config_freeze(const ConfigFlags& f, bool freezing) {
  OpsConnection c(f);
  const std::string id = c.resolve(f.job);
  api::CoordinatorClient& client = c.operator_client();
  const auto frozen =
      value_of(freezing ? client.freeze(id, f.prefix) : client.unfreeze(id, f.prefix));
  print(f, json(api::FrozenList{frozen}),
        [&] { std::printf("frozen: %s\n", terminal_text(json(frozen).dump()).c_str()); });
}

// What an entry did: a freeze, or a write's old -> new value and its reason or refusal.
std::string audit_change(const api::AuditRecord& e) {
  if (e.kind != "write") return e.kind == "freeze" ? "FROZEN" : "UNFROZEN";
  const json old_value = e.old_value ? fleet::param_value_json(*e.old_value) : json(nullptr);
  // A refusal repeated in a row is one entry with its count.
  const std::string times = e.count > 1 ? " (x" + std::to_string(e.count) + ")" : "";
  return old_value.dump() + " -> " + fleet::param_value_json(e.new_value).dump() + " " +
         (e.accepted ? e.reason : "REFUSED: " + e.refusal) + times;
}

void print_audit(const api::AuditRecord& e) {
  std::printf("%-20s r%-4llu %-22s %-40s %s\n", utc_time_text(e.time_ms).c_str(),
              static_cast<unsigned long long>(e.revision), terminal_text(e.actor).c_str(),
              terminal_text(e.path).c_str(), terminal_text(audit_change(e)).c_str());
}

// The newest `limit` entries after `after`, newest first: the coordinator pages oldest first, so
// every page is read and only the last `limit` entries kept.
std::vector<api::AuditRecord> newest_audit(api::CoordinatorClient& client, const std::string& job,
                                           std::uint64_t after, std::uint64_t limit) {
  constexpr std::uint64_t kPage = 1000;  // the coordinator's largest page
  std::deque<api::AuditRecord> kept;
  for (;;) {
    const auto page = value_of(client.config_log(job, after, kPage));
    for (const auto& e : page) {
      kept.push_back(e);
      if (kept.size() > limit) kept.pop_front();
    }
    if (page.size() < kPage) break;
    after = page.back().seq;
  }
  return {kept.rbegin(), kept.rend()};
}

void config_log(const ConfigFlags& f) {
  OpsConnection c(f);
  const std::string id = c.resolve(f.job);
  if (f.output == "json" || f.log_oldest_first) {
    const auto log = value_of(c.client().config_log(id, f.log_after, f.log_limit));
    print(f, json(api::AuditLog{log}), [&] {
      for (const auto& e : log)
        print_audit(e);
      if (log.size() == f.log_limit)
        std::printf("(more: --after %llu)\n", static_cast<unsigned long long>(log.back().seq));
    });
    return;
  }
  for (const auto& e : newest_audit(c.client(), id, f.log_after, f.log_limit))
    print_audit(e);
}

}  // namespace

void add_config_commands(CLI::App& app) {
  auto f = std::make_shared<ConfigFlags>();
  CLI::App* config = app.add_subcommand("config", "A job's live config: get, set, freeze, log");
  config->require_subcommand(1);
  CLI::App* get =
      config->add_subcommand("get", "The job's config tree (or one key) and its revision");
  CLI::App* set = config->add_subcommand("set", "Set one key (a new revision, audited)");
  CLI::App* freeze = config->add_subcommand("freeze", "Refuse policy writes under a prefix");
  CLI::App* unfreeze =
      config->add_subcommand("unfreeze", "Allow policy writes under a prefix again");
  CLI::App* log = config->add_subcommand(
      "log", "The audit log: every write, accepted or refused, with its UTC time, newest first");
  for (CLI::App* cmd : {get, set, freeze, unfreeze, log}) {
    add_connection_flags(*cmd, *f);
    cmd->add_option("JOB", f->job, "Job id, unique id prefix, or name")->required();
  }
  get->add_option("PATH", f->path, "One key, e.g. training/optimizer/learning_rate");
  set->add_option("PATH", f->path, "Key path")->required();
  set->add_option("VALUE", f->value, "Value: a number, true/false or text")->required();
  set->add_option("--reason", f->reason, "Why (recorded in the audit log)")->required();
  set->add_option("--also", f->also,
                  "Another KEY=VALUE written in the same revision (repeatable): the trainer "
                  "applies them at one step boundary");
  CLI::Option* after = log->add_option("--after", f->log_after,
                                       "Entries after this sequence number, oldest first (paging)");
  log->add_flag("--oldest-first", f->log_oldest_first,
                "Oldest entries first, a page of --limit from --after (-o json always pages so)");
  log->add_option("--limit", f->log_limit, "At most this many entries (up to 1000)")
      ->check(CLI::Range(1, 1000));
  for (CLI::App* cmd : {freeze, unfreeze})
    cmd->add_option("PREFIX", f->prefix, "e.g. training/optimizer")->required();
  get->callback([f] { config_get(*f); });
  set->callback([f] { config_set(*f); });
  freeze->callback([f] { config_freeze(*f, true); });
  unfreeze->callback([f] { config_freeze(*f, false); });
  log->callback([f, after] {
    f->log_oldest_first = f->log_oldest_first || after->count() > 0;
    config_log(*f);
  });
}

}  // namespace tv::cli
