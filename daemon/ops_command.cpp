#include "ops_command.hpp"

#include <cstdlib>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "train_command.hpp"
#include "trainvisor/fleet/http.hpp"
#include "trainvisor/fleet/param_json.hpp"
#include "trainvisor/plugin.hpp"

namespace tv::cli {
namespace {

using nlohmann::json;

struct Conn {
  std::string path;               // config get/set
  std::string value;              // config set
  std::vector<std::string> also;  // config set: more KEY=VALUE in the same revision
  std::uint64_t log_after = 0;    // config log: entries after this sequence number
  std::uint64_t log_limit = 100;
  std::string reason;  // config set
  std::string prefix;  // config freeze/unfreeze
  std::string url;
  std::string token;
  std::string ca_file;
  std::string output = "text";
  std::string status;  // jobs list --status
  std::string job;
  bool dry_run = false;
};

std::string env_or(const std::string& v, const char* name, const std::string& fallback = {}) {
  if (!v.empty()) return v;
  const char* e = std::getenv(name);
  return e ? e : fallback;
}

class Api {
 public:
  explicit Api(const Conn& c)
      : token_(env_or(c.token, "TRAINVISOR_OPERATOR_TOKEN")),
        client_(http::ClientOptions{
            env_or(c.url, "TRAINVISOR_COORDINATOR", "http://127.0.0.1:8700"),
            env_or(c.ca_file, "TRAINVISOR_CA_FILE"), std::chrono::seconds(30)}) {}

  json get(const std::string& target) { return check(client_.request("GET", target)); }
  json post(const std::string& target, const json& body = json::object()) {
    if (token_.empty())
      throw std::invalid_argument(
          "this needs the operator token: --operator-token or TRAINVISOR_OPERATOR_TOKEN");
    const std::string who = env_or("", "TRAINVISOR_OPERATOR_NAME", env_or("", "USER", "operator"));
    return check(client_.request("POST", target, body.dump(),
                                 {{"X-Operator-Token", token_}, {"X-Operator-Name", who}}));
  }

  // A job by full id, unique id prefix or name.
  std::string resolve(const std::string& job) {
    std::vector<std::string> hits;
    const json all = get("/v1/jobs");
    for (const auto& j : all["jobs"]) {
      const std::string id = j["id"], name = j["name"];
      if (id == job || name == job) return id;
      if (job.size() >= 4 && id.rfind(job, 0) == 0) hits.push_back(id);
    }
    if (hits.size() == 1) return hits[0];
    if (hits.empty())
      throw std::invalid_argument("no job named or with an id starting '" + job + "'");
    throw std::invalid_argument("'" + job + "' matches " + std::to_string(hits.size()) +
                                " job ids; give more of it");
  }

 private:
  static json check(const http::Response& r) {
    json j;
    try {
      j = r.json_body();
    } catch (...) {
      throw std::runtime_error("coordinator answered " + std::to_string(r.status) + " with " +
                               r.body.substr(0, 200));
    }
    if (r.status >= 400) {
      std::string msg = j.value("error", r.body);
      if (j.contains("diagnostics")) {
        for (const auto& d : j["diagnostics"])
          msg += "\n  " + d.get<std::string>();
      }
      throw std::invalid_argument(msg);
    }
    return j;
  }
  std::string token_;
  http::Client client_;
};

void print(const Conn& c, const json& j, const std::function<void()>& text) {
  if (c.output == "json") {
    std::cout << j.dump(2) << "\n";
  } else {
    text();
  }
}

std::string short_id(const std::string& id) {
  return id.substr(0, 12);
}

void add_common(CLI::App& cmd, Conn& c) {
  cmd.add_option("--coordinator", c.url,
                 "Coordinator URL (or TRAINVISOR_COORDINATOR; default http://127.0.0.1:8700)");
  cmd.add_option("--operator-token", c.token, "Operator token (or TRAINVISOR_OPERATOR_TOKEN)");
  cmd.add_option("--ca-file", c.ca_file,
                 "CA certificate of an https coordinator (or TRAINVISOR_CA_FILE)");
  cmd.add_option("-o,--output", c.output, "Output format")->check(CLI::IsMember({"text", "json"}));
}

}  // namespace

void add_ops_commands(CLI::App& app) {
  auto c = std::make_shared<Conn>();
  CLI::App* jobs = app.add_subcommand("jobs", "The coordinator's jobs");
  jobs->require_subcommand(1);
  CLI::App* list = jobs->add_subcommand("list", "Every job with its status");
  list->add_option("--status", c->status, "Only jobs with this status");
  CLI::App* show =
      jobs->add_subcommand("show", "One job: spec, status, attempts, last error, artifact");
  CLI::App* cancel =
      jobs->add_subcommand("cancel", "Cancel a job (a running trainer checkpoints and stops)");
  CLI::App* requeue = jobs->add_subcommand("requeue", "Put a job back to pending from any state");
  CLI::App* explain =
      jobs->add_subcommand("explain", "Per known host: which constraint keeps the job off it");
  CLI::App* workers =
      app.add_subcommand("workers", "The hosts that have claimed, and their capability");
  CLI::App* reload = app.add_subcommand("reload", "Re-read the coordinator's manifest");
  reload->add_flag("--dry-run", c->dry_run, "Show what would change; write nothing");
  CLI::App* status = app.add_subcommand("status", "Job counts by status and the hosts");
  CLI::App* artifacts = app.add_subcommand("artifacts", "A job's artifacts");
  for (CLI::App* cmd : {list, show, cancel, requeue, explain, workers, reload, status, artifacts})
    add_common(*cmd, *c);
  for (CLI::App* cmd : {show, cancel, requeue, explain, artifacts}) {
    cmd->add_option("JOB", c->job, "Job id, unique id prefix, or name")->required();
  }

  CLI::App* config = app.add_subcommand("config", "A job's live config: get, set, freeze, log");
  config->require_subcommand(1);
  CLI::App* cget =
      config->add_subcommand("get", "The job's config tree (or one key) and its revision");
  CLI::App* cset = config->add_subcommand("set", "Set one key (a new revision, audited)");
  CLI::App* cfreeze = config->add_subcommand("freeze", "Refuse policy writes under a prefix");
  CLI::App* cunfreeze =
      config->add_subcommand("unfreeze", "Allow policy writes under a prefix again");
  CLI::App* clog = config->add_subcommand("log", "The audit log: every write, accepted or refused");
  for (CLI::App* cmd : {cget, cset, cfreeze, cunfreeze, clog}) {
    add_common(*cmd, *c);
    cmd->add_option("JOB", c->job, "Job id, unique id prefix, or name")->required();
  }
  cget->add_option("PATH", c->path, "One key, e.g. training/optimizer/learning_rate");
  cset->add_option("PATH", c->path, "Key path")->required();
  cset->add_option("VALUE", c->value, "Value: a number, true/false or text")->required();
  cset->add_option("--reason", c->reason, "Why (recorded in the audit log)")->required();
  clog->add_option("--after", c->log_after, "Entries after this sequence number (paging)");
  clog->add_option("--limit", c->log_limit, "At most this many entries (up to 1000)")
      ->check(CLI::Range(1, 1000));
  cset->add_option("--also", c->also,
                   "Another KEY=VALUE written in the same revision (repeatable): the trainer "
                   "applies them at one step boundary");
  for (CLI::App* cmd : {cfreeze, cunfreeze})
    cmd->add_option("PREFIX", c->prefix, "e.g. training/optimizer")->required();

  cget->callback([c] {
    Api api(*c);
    const json j = api.get("/v1/job/" + api.resolve(c->job) + "/config");
    if (!c->path.empty() && !j["values"].contains(c->path))
      throw std::invalid_argument("the job has no key '" + c->path + "'");
    const json out =
        c->path.empty()
            ? j
            : json{{"revision", j["revision"]}, {"path", c->path}, {"value", j["values"][c->path]}};
    print(*c, out, [&] {
      if (!c->path.empty()) {
        std::printf("%s\n", j["values"][c->path].dump().c_str());
        return;
      }
      std::printf("revision %lld%s\n", static_cast<long long>(j["revision"].get<std::int64_t>()),
                  j["frozen"].empty() ? "" : (", frozen: " + j["frozen"].dump()).c_str());
      for (const auto& [k, v] : j["values"].items())
        std::printf("  %-42s %s\n", k.c_str(), v.dump().c_str());
    });
  });
  cset->callback([c] {
    Api api(*c);
    plugin::Params writes{{c->path, parse_param_value(c->value)}};
    for (const auto& a : c->also) {
      auto [k, v] = parse_assignment(a, "--also");
      if (!writes.emplace(k, v).second)
        throw std::invalid_argument("--also: '" + k + "' is given twice");
    }
    const json j = api.post("/v1/job/" + api.resolve(c->job) + "/config",
                            {{"writes", fleet::params_json(writes)}, {"reason", c->reason}});
    print(*c, j, [&] {
      std::printf("revision %lld\n", static_cast<long long>(j["revision"].get<std::int64_t>()));
    });
  });
  for (const bool freezing : {true, false}) {
    (freezing ? cfreeze : cunfreeze)->callback([c, freezing] {
      Api api(*c);
      const json j = api.post(
          "/v1/job/" + api.resolve(c->job) + (freezing ? "/config/freeze" : "/config/unfreeze"),
          {{"prefix", c->prefix}});
      print(*c, j, [&] { std::printf("frozen: %s\n", j["frozen"].dump().c_str()); });
    });
  }
  clog->callback([c] {
    Api api(*c);
    const json j = api.get("/v1/job/" + api.resolve(c->job) + "/config/log?after=" +
                           std::to_string(c->log_after) + "&limit=" + std::to_string(c->log_limit));
    print(*c, j, [&] {
      for (const auto& e : j["entries"]) {
        if (e.value("kind", "write") != "write") {
          std::printf("r%-4lld %-22s %-40s %s\n",
                      static_cast<long long>(e["revision"].get<std::int64_t>()),
                      e["actor"].get<std::string>().c_str(), e["path"].get<std::string>().c_str(),
                      e["kind"].get<std::string>() == "freeze" ? "FROZEN" : "UNFROZEN");
          continue;
        }
        std::printf("r%-4lld %-22s %-40s %s -> %s %s%s\n",
                    static_cast<long long>(e["revision"].get<std::int64_t>()),
                    e["actor"].get<std::string>().c_str(), e["path"].get<std::string>().c_str(),
                    e["old"].dump().c_str(), e["new"].dump().c_str(),
                    e["accepted"].get<bool>() ? "" : "REFUSED: ",
                    e["accepted"].get<bool>() ? e["reason"].get<std::string>().c_str()
                                              : e["refusal"].get<std::string>().c_str());
      }
      if (j["entries"].size() == c->log_limit) {
        std::printf("(more: --after %llu)\n", static_cast<unsigned long long>(
                                                  j["entries"].back()["seq"].get<std::uint64_t>()));
      }
    });
  });

  list->callback([c] {
    Api api(*c);
    const json j = api.get(c->status.empty() ? "/v1/jobs" : "/v1/jobs?status=" + c->status);
    print(*c, j, [&] {
      std::printf("%-12s  %-24s %-10s %-10s %7s %11s  %s\n", "ID", "NAME", "MODEL", "STATUS",
                  "ATTEMPT", "CONFIG", "WORKER");
      for (const auto& r : j["jobs"]) {
        // CONFIG: the revision the trainer applied / the one the hub wants ("-": no report yet).
        const json& cfg = r.value("config", json::object());
        const auto rev = [&](const char* k) {
          return cfg.contains(k) && !cfg[k].is_null() ? std::to_string(cfg[k].get<std::uint64_t>())
                                                      : std::string("-");
        };
        std::printf("%-12s  %-24.24s %-10.10s %-10s %7lld %11s  %s\n", short_id(r["id"]).c_str(),
                    r["name"].get<std::string>().c_str(), r["model"].get<std::string>().c_str(),
                    r["status"].get<std::string>().c_str(),
                    static_cast<long long>(r["attempt"].get<std::int64_t>()),
                    (rev("applied_revision") + "/" + rev("desired_revision")).c_str(),
                    r["worker"].get<std::string>().c_str());
      }
    });
  });
  show->callback([c] {
    Api api(*c);
    const std::string id = api.resolve(c->job);
    json j = api.get("/v1/job/" + id);
    j["telemetry"] = api.get("/v1/job/" + id + "/telemetry?max_points=" +
                             std::to_string(c->output == "json" ? 500 : 16));
    print(*c, j, [&] {
      std::printf("%s (%s)\n  model %s, status %s, attempt %lld of %lld, worker %s\n",
                  j["name"].get<std::string>().c_str(), j["id"].get<std::string>().c_str(),
                  j["model"].get<std::string>().c_str(), j["status"].get<std::string>().c_str(),
                  static_cast<long long>(j["attempt"].get<std::int64_t>()),
                  static_cast<long long>(j["max_attempts"].get<std::int64_t>()),
                  j["worker"].get<std::string>().c_str());
      if (!j["last_error"].get<std::string>().empty())
        std::printf("  last error: %s\n", j["last_error"].get<std::string>().c_str());
      if (!j["artifact"].get<std::string>().empty())
        std::printf("  artifact: %s\n", j["artifact"].get<std::string>().c_str());
      std::printf("  spec: %s\n", j["spec"].dump().c_str());
      const json& t = j["telemetry"];
      if (!t["applied"].is_null()) {
        const json& a = t["applied"];
        std::printf(
            "  config: desired revision %s, applied %llu since step %llu (step %llu on %s)\n",
            t["desired_revision"].dump().c_str(),
            static_cast<unsigned long long>(a["revision"].get<std::uint64_t>()),
            static_cast<unsigned long long>(a["since_step"].get<std::uint64_t>()),
            static_cast<unsigned long long>(a["last_step"].get<std::uint64_t>()),
            a["host"].get<std::string>().c_str());
      }
      if (!t["points"].empty()) {
        std::printf("  %10s %6s %10s %10s %8s %12s %5s\n", "STEP", "EPOCH", "LOSS", "VAL_LOSS",
                    "VAL_ACC", "LR", "REV");
        const auto num = [](const json& v, const char* fmt) {
          char b[32];
          if (v.is_null()) return std::string("-");
          std::snprintf(b, sizeof b, fmt, v.get<double>());
          return std::string(b);
        };
        for (const json& p : t["points"]) {
          const bool eval = (p["flags"].get<std::uint32_t>() & plugin::kTelemetryEval) != 0;
          std::printf("  %10llu %6u %10s %10s %8s %12s %5llu\n",
                      static_cast<unsigned long long>(p["step"].get<std::uint64_t>()),
                      p["epoch"].get<std::uint32_t>(), num(p["loss"], "%.4f").c_str(),
                      eval ? num(p["val_loss"], "%.4f").c_str() : "",
                      eval ? num(p["val_accuracy"], "%.4f").c_str() : "",
                      num(p["learning_rate"], "%.6g").c_str(),
                      static_cast<unsigned long long>(p["config_revision"].get<std::uint64_t>()));
        }
      }
    });
  });
  cancel->callback([c] {
    Api api(*c);
    const json j = api.post("/v1/job/" + api.resolve(c->job) + "/cancel");
    print(*c, j, [&] {
      std::printf("cancelled%s\n",
                  j["was_running"].get<bool>()
                      ? (" (host " + j["worker"].get<std::string>() + " stops its trainer)").c_str()
                      : "");
    });
  });
  requeue->callback([c] {
    Api api(*c);
    const json j = api.post("/v1/job/" + api.resolve(c->job) + "/requeue");
    print(*c, j, [] { std::printf("requeued: pending again\n"); });
  });
  explain->callback([c] {
    Api api(*c);
    const json j = api.get("/v1/job/" + api.resolve(c->job) + "/explain");
    print(*c, j, [&] {
      if (j["hosts"].empty()) std::printf("no host is known yet\n");
      for (const auto& h : j["hosts"]) {
        std::printf(
            "%-20s %s%s\n", h["host"].get<std::string>().c_str(),
            h["eligible"].get<bool>() ? "can run it" : h["reason"].get<std::string>().c_str(),
            h["registered"].get<bool>() ? "" : " (never claimed: capability unknown)");
      }
    });
  });
  workers->callback([c] {
    Api api(*c);
    const json j = api.get("/v1/workers");
    print(*c, j, [&] {
      std::printf("%-20s %5s %9s %5s %9s\n", "HOST", "CORES", "RAM_GIB", "CUDA", "VRAM_GIB");
      for (const auto& w : j["workers"]) {
        const auto& cap = w["capability"];
        std::printf("%-20s %5lld %9.1f %5s %9.1f\n", w["name"].get<std::string>().c_str(),
                    static_cast<long long>(cap["cores"].get<std::int64_t>()),
                    cap["ram_gib"].get<double>(), cap["cuda"].get<bool>() ? "yes" : "no",
                    cap["vram_gib"].get<double>());
      }
    });
  });
  reload->callback([c] {
    Api api(*c);
    const json j = api.post(std::string("/v1/manifest/reload") + (c->dry_run ? "?dry_run=1" : ""));
    print(*c, j, [&] {
      const auto names = [](const json& a) {
        std::string s;
        for (const auto& n : a)
          s += (s.empty() ? "" : ", ") + n.get<std::string>();
        return s.empty() ? std::string("none") : s;
      };
      std::printf(
          "%sadded: %s\nunchanged: %s\nno longer in the manifest (kept until cancelled): %s\n",
          c->dry_run ? "dry run, nothing written\n" : "", names(j["added"]).c_str(),
          names(j["unchanged"]).c_str(), names(j["removed"]).c_str());
    });
  });
  status->callback([c] {
    Api api(*c);
    const json health = api.get("/v1/health");
    const json w = api.get("/v1/workers");
    const json j = {{"jobs", health["jobs"]}, {"workers", w["workers"].size()}};
    print(*c, j, [&] {
      for (const auto& [k, v] : health["jobs"].items())
        std::printf("%-10s %lld\n", k.c_str(), static_cast<long long>(v.get<std::int64_t>()));
      std::printf("hosts      %zu\n", w["workers"].size());
    });
  });
  artifacts->callback([c] {
    Api api(*c);
    const json j = api.get("/v1/job/" + api.resolve(c->job) + "/artifacts");
    print(*c, j, [&] {
      for (const auto& a : j["artifacts"]) {
        std::printf("%-20s %12llu  %s\n", a["name"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(a["size"].get<std::uint64_t>()),
                    a["digest"].get<std::string>().c_str());
      }
    });
  });
}

}  // namespace tv::cli
