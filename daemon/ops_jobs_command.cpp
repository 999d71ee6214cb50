// `jobs list|show|cancel|requeue|explain`, `workers` and `status`.
#include <cmath>
#include <cstdio>
#include <memory>

#include "ops_connection.hpp"

namespace tv::cli {
namespace {

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
                  r.spec.name.c_str(), r.spec.model.c_str(),
                  std::string(fleet::to_string(r.status)).c_str(),
                  static_cast<long long>(r.attempt),
                  (revision_text(r.config.applied_revision) + "/" +
                   revision_text(r.config.desired_revision))
                      .c_str(),
                  r.worker.c_str());
      if (r.status == fleet::JobStatus::kStopped)
        std::printf("%-12s  stopped by %s: %s\n", "", r.stopped_by.c_str(), r.stop_reason.c_str());
    }
  });
}

std::string number_text(double v, const char* fmt) {
  if (std::isnan(v)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, fmt, v);
  return b;
}

void print_curve(const api::TelemetryCurve& t) {
  if (t.applied) {
    const api::AppliedConfig& a = *t.applied;
    std::printf("  config: desired revision %s, applied %llu since step %llu (step %llu on %s)\n",
                t.desired_revision ? std::to_string(*t.desired_revision).c_str() : "null",
                static_cast<unsigned long long>(a.revision),
                static_cast<unsigned long long>(a.since_step),
                static_cast<unsigned long long>(a.last_step), a.host.c_str());
  }
  if (t.points.empty()) return;
  std::printf("  %10s %6s %10s %10s %8s %12s %5s\n", "STEP", "EPOCH", "LOSS", "VAL_LOSS", "VAL_ACC",
              "LR", "REV");
  for (const plugin::TelemetryPoint& p : t.points) {
    const bool eval = (p.flags & plugin::kTelemetryEval) != 0;
    std::printf("  %10llu %6u %10s %10s %8s %12s %5llu\n", static_cast<unsigned long long>(p.step),
                p.epoch, number_text(p.loss, "%.4f").c_str(),
                eval ? number_text(p.val_loss, "%.4f").c_str() : "",
                eval ? number_text(p.val_accuracy, "%.4f").c_str() : "",
                number_text(p.learning_rate, "%.6g").c_str(),
                static_cast<unsigned long long>(p.config_revision));
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
    std::printf("%s (%s)\n  model %s, status %s, attempt %lld of %lld, worker %s\n",
                j.spec.name.c_str(), j.spec.id.c_str(), j.spec.model.c_str(),
                std::string(fleet::to_string(j.status)).c_str(), static_cast<long long>(j.attempt),
                static_cast<long long>(j.spec.max_attempts), j.worker.c_str());
    if (j.status == fleet::JobStatus::kStopped)
      std::printf("  stopped by %s: %s\n", j.stopped_by.c_str(), j.stop_reason.c_str());
    if (!j.last_error.empty()) std::printf("  last error: %s\n", j.last_error.c_str());
    if (!j.artifact.empty()) std::printf("  artifact: %s\n", j.artifact.c_str());
    std::printf("  spec: %s\n", fleet::job_spec_json(j.spec).dump().c_str());
    print_curve(t);
  });
}

void cancel_job(const JobsFlags& f) {
  OpsConnection c(f);
  const api::CancelReply r = value_of(c.operator_client().cancel(c.resolve(f.job)));
  print(f, json(r), [&] {
    std::printf("cancelled%s\n",
                r.was_running ? (" (host " + r.worker + " stops its trainer)").c_str() : "");
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
      std::printf("%-20s %s%s\n", h.host.c_str(),
                  h.reason.empty() ? "can run it" : h.reason.c_str(),
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
      std::printf("%-20s %5lld %9.1f %5s %9.1f\n", w.name.c_str(),
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
      std::printf("%-10s %lld\n", k.c_str(), static_cast<long long>(v));
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
