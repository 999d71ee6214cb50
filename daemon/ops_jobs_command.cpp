// `jobs list|show|cancel|requeue|explain`, `workers` and `status`.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "ops_connection.hpp"
#include "table_number.hpp"
#include "terminal_text.hpp"

namespace tv::cli {
namespace {

// The MODEL column: the model plugin, or for a command job the program it runs ("$ python3").
std::string model_column(const fleet::JobSpec& spec) {
  if (!spec.command) return spec.model;
  return "$ " + std::filesystem::path(spec.command->argv.front()).filename().string();
}

using nlohmann::json;
namespace api = fleet::api;

struct JobsFlags : OpsFlags {
  std::string status;            // jobs list --status
  bool from_checkpoint = false;  // jobs requeue --from-checkpoint
};

std::string revision_text(const std::optional<std::uint64_t>& r) {
  return r ? std::to_string(*r) : std::string("-");
}

void list_jobs(const JobsFlags& f) {
  OpsConnection c(f);
  std::optional<fleet::JobStatus> status;
  if (!f.status.empty()) {
    status = fleet::value_named(fleet::kJobStatusNames, f.status);
    if (!status) {
      throw std::invalid_argument("unknown job status '" + f.status + "' (expected " +
                                  fleet::names_of(fleet::kJobStatusNames) + ")");
    }
  }
  const auto jobs = value_of(c.client().jobs(status));
  print(f, json(api::JobList{jobs}), [&] {
    std::printf("%-12s  %-24s %-10s %-10s %7s %11s  %s\n", "ID", "NAME", "MODEL", "STATUS",
                "ATTEMPT", "CONFIG", "WORKER");
    for (const auto& r : jobs) {
      // CONFIG: the revision the trainer applied / the one the hub wants ("-": no report yet).
      std::printf("%-12s  %-24.24s %-10.10s %-10s %7lld %11s  %s\n", short_id(r.spec.id).c_str(),
                  terminal_text(r.spec.name).c_str(), terminal_text(model_column(r.spec)).c_str(),
                  std::string(fleet::to_string(r.status)).c_str(),
                  static_cast<long long>(r.attempt),
                  (revision_text(r.config.applied_revision) + "/" +
                   revision_text(r.config.desired_revision))
                      .c_str(),
                  terminal_text(r.worker).c_str());
      if (r.status == fleet::JobStatus::kStopped)
        std::printf("%-12s  stopped by %s: %s\n", "", terminal_text(r.stopped_by).c_str(),
                    terminal_text(r.stop_reason).c_str());
    }
  });
}

void print_curve(const api::TelemetryCurve& t) {
  if (t.applied) {
    const api::AppliedConfig& a = *t.applied;
    std::printf("  config: desired revision %s, applied %llu since step %llu (step %llu on %s)\n",
                t.desired_revision ? std::to_string(*t.desired_revision).c_str() : "null",
                static_cast<unsigned long long>(a.revision),
                static_cast<unsigned long long>(a.since_step),
                static_cast<unsigned long long>(a.last_step), terminal_text(a.host).c_str());
  }
  if (t.points.empty()) return;
  std::printf("  %10s %6s %10s %10s %10s %10s %5s\n", "STEP", "EPOCH", "LOSS", "VAL_LOSS",
              "VAL_ACC", "LR", "REV");
  for (const plugin::TelemetryPoint& p : t.points) {
    const bool eval = (p.flags & plugin::kTelemetryEval) != 0;
    std::printf("  %10llu %6u %10s %10s %10s %10s %5llu\n", static_cast<unsigned long long>(p.step),
                p.epoch, table_number(p.loss).c_str(), eval ? table_number(p.val_loss).c_str() : "",
                eval ? table_number(p.val_accuracy).c_str() : "",
                table_number(p.learning_rate).c_str(),
                static_cast<unsigned long long>(p.config_revision));
  }
}

// `jobs show`, one function per section of the text.
void print_job_state(const api::JobInfo& j) {
  std::printf("%s (%s), status %s\n", terminal_text(j.spec.name).c_str(),
              terminal_text(j.spec.id).c_str(), std::string(fleet::to_string(j.status)).c_str());
  if (j.spec.command) {
    std::printf("  %-12s %s\n", "trainer", terminal_text(j.spec.command->text()).c_str());
    const auto& c = *j.spec.command;
    std::printf("  %-12s %s\n", "workdir",
                !c.workdir.empty()        ? ("shipped, sha256 " + c.workdir.substr(0, 12)).c_str()
                : !c.host_workdir.empty() ? terminal_text(c.host_workdir + " on the host").c_str()
                                          : "its output directory");
  } else {
    std::printf("  %-12s %s\n", "model", terminal_text(j.spec.model).c_str());
  }
  std::printf("  %-12s %s\n", "host", j.worker.empty() ? "-" : terminal_text(j.worker).c_str());
  std::printf("  %-12s %lld of %lld\n", "attempt", static_cast<long long>(j.attempt),
              static_cast<long long>(j.spec.max_attempts));
  if (j.status == fleet::JobStatus::kStopped)
    std::printf("  stopped by %s: %s\n", terminal_text(j.stopped_by).c_str(),
                terminal_text(j.stop_reason).c_str());
  if (!j.last_error.empty())
    std::printf("  %-12s %s\n", "last error", terminal_text(j.last_error).c_str());
  if (!j.artifact.empty())
    std::printf("  %-12s %s\n", "artifact", terminal_text(j.artifact).c_str());
}

std::string duration_text(std::int64_t ms) {
  const std::int64_t s = ms / 1000;
  char b[48];
  if (s >= 3600) {
    std::snprintf(b, sizeof b, "%lldh%02lldm%02llds", static_cast<long long>(s / 3600),
                  static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  } else if (s >= 60) {
    std::snprintf(b, sizeof b, "%lldm%02llds", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(b, sizeof b, "%.1fs", static_cast<double>(ms) / 1000);
  }
  return b;
}

// Created, started (claimed by its host), ended, and the time in between (so far, while held).
void print_job_times(const api::JobInfo& j) {
  std::printf("  %-12s %s\n", "created", utc_time_text(j.created_ms).c_str());
  std::printf("  %-12s %s\n", "started", utc_time_text(j.claimed_ms.value_or(0)).c_str());
  std::printf("  %-12s %s\n", "ended", utc_time_text(j.finished_ms.value_or(0)).c_str());
  if (!j.claimed_ms) return;
  if (j.finished_ms) {
    std::printf("  %-12s %s\n", "duration", duration_text(*j.finished_ms - *j.claimed_ms).c_str());
  } else if (j.status == fleet::JobStatus::kClaimed || j.status == fleet::JobStatus::kRunning) {
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    std::printf("  %-12s %s so far\n", "duration", duration_text(now - *j.claimed_ms).c_str());
  }
}

// The last training loss and the last evaluation the job reported (the curve keeps both).
void print_final_metrics(const api::TelemetryCurve& t) {
  const plugin::TelemetryPoint* train = nullptr;
  const plugin::TelemetryPoint* eval = nullptr;
  for (const plugin::TelemetryPoint& p : t.points) {
    if (!std::isnan(p.loss)) train = &p;
    if ((p.flags & plugin::kTelemetryEval) != 0) eval = &p;
  }
  if (train == nullptr && eval == nullptr) {
    std::printf("  %-12s none reported yet\n", "metrics");
    return;
  }
  if (train != nullptr) {
    std::printf("  %-12s %s (step %llu)\n", "loss", table_number(train->loss).c_str(),
                static_cast<unsigned long long>(train->step));
  }
  if (eval != nullptr) {
    std::printf("  %-12s %s (step %llu)\n", "val accuracy",
                table_number(eval->val_accuracy).c_str(),
                static_cast<unsigned long long>(eval->step));
    std::printf("  %-12s %s\n", "val loss", table_number(eval->val_loss).c_str());
  }
}

// The spec as `key: value` lines, nested tables joined with dots ("hyper.training...").
void print_spec_lines(const json& j, const std::string& key) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items())
      print_spec_lines(v, key.empty() ? k : key + "." + k);
  } else if (j.is_array() && !j.empty() && (j[0].is_object() || j[0].is_array())) {
    for (std::size_t i = 0; i < j.size(); ++i)
      print_spec_lines(j[i], key + "[" + std::to_string(i) + "]");
  } else {
    std::printf("    %s: %s\n", terminal_text(key).c_str(),
                terminal_text(j.is_string() ? j.get<std::string>() : j.dump()).c_str());
  }
}

void show_job(const JobsFlags& f) {
  OpsConnection c(f);
  const std::string id = c.resolve(f.job);
  const api::JobInfo j = value_of(c.client().job(id));
  const api::TelemetryCurve t = value_of(c.client().telemetry(id, f.output == "json" ? 500 : 16));
  json out = j;
  out["telemetry"] = json(t);
  print(f, out, [&] {
    print_job_state(j);
    print_job_times(j);
    print_final_metrics(t);
    std::printf("  spec:\n");
    print_spec_lines(fleet::job_spec_json(j.spec), "");
    print_curve(t);
  });
}

void cancel_job(const JobsFlags& f) {
  OpsConnection c(f);
  const api::CancelReply r = value_of(c.operator_client().cancel(c.resolve(f.job)));
  print(f, json(r), [&] {
    std::printf(
        "cancelled%s\n",
        r.was_running ? (" (host " + terminal_text(r.worker) + " stops its trainer)").c_str() : "");
  });
}

void requeue_job(const JobsFlags& f) {
  OpsConnection c(f);
  value_of(c.operator_client().requeue(c.resolve(f.job), f.from_checkpoint));
  print(f, {{"ok", true}, {"from_checkpoint", f.from_checkpoint}}, [&] {
    std::printf(f.from_checkpoint ? "requeued: pending again, resuming from its checkpoint\n"
                                  : "requeued: pending again, training starts over from step 0\n");
  });
}

void explain_job(const JobsFlags& f) {
  OpsConnection c(f);
  const std::string id = c.resolve(f.job);
  const auto hosts = value_of(c.client().explain(id));
  print(f, json(api::Explanation{id, hosts}), [&] {
    if (hosts.empty()) std::printf("no host is known yet\n");
    for (const auto& h : hosts) {
      std::printf("%-20s %s%s\n", terminal_text(h.host).c_str(),
                  h.reason.empty() ? "can run it" : terminal_text(h.reason).c_str(),
                  h.registered ? "" : " (never claimed: capability unknown)");
    }
  });
}

void list_workers(const JobsFlags& f) {
  OpsConnection c(f);
  const auto workers = value_of(c.client().workers());
  print(f, json(api::WorkerList{workers}), [&] {
    std::printf("%-20s %5s %9s %5s %9s\n", "HOST", "CORES", "RAM_GIB", "CUDA", "VRAM_GIB");
    for (const auto& w : workers) {
      std::printf("%-20s %5lld %9.1f %5s %9.1f\n", terminal_text(w.name).c_str(),
                  static_cast<long long>(w.capability.cores), w.capability.ram_gib,
                  w.capability.cuda ? "yes" : "no", w.capability.vram_gib);
    }
  });
}

void show_status(const JobsFlags& f) {
  OpsConnection c(f);
  const api::Health health = value_of(c.client().health());
  const auto workers = value_of(c.client().workers());
  print(f, {{"jobs", health.jobs}, {"workers", workers.size()}}, [&] {
    for (const auto& [k, v] : health.jobs)
      std::printf("%-10s %lld\n", terminal_text(k).c_str(), static_cast<long long>(v));
    std::printf("hosts      %zu\n", workers.size());
  });
}

}  // namespace

void add_job_commands(CLI::App& app) {
  auto f = std::make_shared<JobsFlags>();
  CLI::App* jobs = app.add_subcommand("jobs", "The coordinator's jobs");
  jobs->require_subcommand(1);
  CLI::App* list = jobs->add_subcommand("list", "Every job with its status");
  list->add_option("--status", f->status, "Only jobs with this status");
  CLI::App* show =
      jobs->add_subcommand("show", "One job: spec, status, attempts, last error, artifact");
  CLI::App* cancel =
      jobs->add_subcommand("cancel", "Cancel a job (a running trainer checkpoints and stops)");
  CLI::App* requeue = jobs->add_subcommand(
      "requeue", "Put a job back to pending from any state; it trains again from step 0");
  requeue->add_flag("--from-checkpoint", f->from_checkpoint,
                    "Resume from the latest checkpoint on the host that claims it instead");
  CLI::App* explain =
      jobs->add_subcommand("explain", "Per known host: which constraint keeps the job off it");
  CLI::App* workers =
      app.add_subcommand("workers", "The hosts that have claimed, and their capability");
  CLI::App* status = app.add_subcommand("status", "Job counts by status and the hosts");
  for (CLI::App* cmd : {list, show, cancel, requeue, explain, workers, status})
    add_connection_flags(*cmd, *f);
  for (CLI::App* cmd : {show, cancel, requeue, explain})
    cmd->add_option("JOB", f->job, "Job id, unique id prefix, or name")->required();
  list->callback([f] { list_jobs(*f); });
  show->callback([f] { show_job(*f); });
  cancel->callback([f] { cancel_job(*f); });
  requeue->callback([f] { requeue_job(*f); });
  explain->callback([f] { explain_job(*f); });
  workers->callback([f] { list_workers(*f); });
  status->callback([f] { show_status(*f); });
}

}  // namespace tv::cli
