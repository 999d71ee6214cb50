// What happens when a pipeline's training ends: its evaluation (the evaluation.json artifact the
// host uploads with the bundle) goes through the deployment gate, the outcome and the alias move
// are recorded in one transaction, and a deployment directory, when the pipeline has one, gets
// the deployed bundle by atomic rename. Called when a job completes, and for every open training
// on each sweep, so that a crash between the queue's commit and the pipeline store's loses
// nothing: deciding is idempotent.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "coordinator_state.hpp"
#include "trainvisor/core/job_folder.hpp"
#include "trainvisor/fleet/pipelines/deployment_gate.hpp"
#include "trainvisor/fleet/private_file.hpp"

namespace tv::fleet::coordinator {
namespace {

namespace fs = std::filesystem;

// The job's evaluation.json, parsed; null when it has none or it is not JSON.
nlohmann::json evaluation_of(CoordinatorState& s, const std::string& job) {
  const auto refs = s.artifacts->list_for_job(job);
  if (!refs) return nullptr;
  const std::string name = JobFolder{}.evaluation().filename().string();
  for (const ArtifactRef& r : refs.value()) {
    if (r.name != name) continue;
    const auto info = s.artifacts->stat(r.digest);
    if (!info) return nullptr;
    std::ifstream in(info->path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return nlohmann::json::parse(text.str(), nullptr, false);
  }
  return nullptr;
}

// The deployed model the training evaluated beside its own ("" when none).
std::string compared_with(const nlohmann::json& evaluation) {
  if (!evaluation.is_object()) return "";
  const auto m = evaluation.find("deployed_model");
  return m != evaluation.end() && m->is_string() ? m->get<std::string>() : "";
}

void fsync_path(const fs::path& p, int flags) {
  const int fd = ::open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error(p.string() + ": " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw std::runtime_error(p.string() + ": fsync: " + std::strerror(err));
}

// `from` copied to dir/name through a temporary file and a rename: a reader of dir/name sees the
// old file or the new one, whole. The caller fsyncs the directory.
void publish_copy(const fs::path& from, const fs::path& dir, const std::string& name) {
  const fs::path tmp = dir / ("." + name + ".tmp");
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing);
  fsync_path(tmp, O_RDONLY);
  fs::rename(tmp, dir / name);
}

}  // namespace

void publish_deployment(CoordinatorState& s, const PipelineSpec& spec,
                        const pipelines::AliasState& alias) {
  if (spec.deployment.directory.empty()) return;
  try {
    const auto info = s.artifacts->stat(alias.digest);
    if (!info) throw std::runtime_error("artifact " + alias.digest + " is not stored");
    const fs::path dir = spec.deployment.directory;
    fs::create_directories(dir);
    publish_copy(info->path, dir, alias.alias + ".tvb");
    // Written whole under a temporary name and renamed, as the bundle (private_file.hpp).
    write_private_file((dir / (alias.alias + ".json")).string(),
                       nlohmann::json{{"alias", alias.alias},
                                      {"pipeline", alias.pipeline},
                                      {"digest", alias.digest},
                                      {"trigger", alias.trigger},
                                      {"revision", alias.revision},
                                      {"updated_ms", alias.updated_ms}}
                               .dump() +
                           "\n");
    fsync_path(dir, O_RDONLY | O_DIRECTORY);  // both renames, at once
  } catch (const std::exception& e) {
    // The alias has moved; the directory follows at its next move. Said, not hidden.
    s.log_error("pipeline '" + spec.name + "': deployment directory " + spec.deployment.directory +
                " not updated: " + e.what());
  }
}

void settle_training(CoordinatorState& s, const JobRow& row) {
  if (!row.spec.pipeline || !is_finished(row.status)) return;
  const auto rec = s.pipeline_store->trigger_of_job(row.spec.id);
  if (!rec || rec->outcome != pipelines::TriggerOutcome::kTraining) return;
  const std::optional<PipelineSpec> spec = s.runner->pipeline(rec->pipeline);
  const std::string alias = spec ? spec->deployment.alias : rec->pipeline;
  pipelines::TrainingOutcome out{row.spec.id, "", "{}", "", false, ""};
  const bool trained = row.status == JobStatus::kCompleted || row.status == JobStatus::kStopped;
  if (!trained) {
    out.gate = std::string("training ") + std::string(to_string(row.status)) +
               (row.last_error.empty() ? "" : ": " + row.last_error);
  } else if (!spec) {
    out.model = row.artifact_digest;
    out.gate = "refused: the pipeline is no longer in the manifest";
  } else {
    const nlohmann::json evaluation = evaluation_of(s, row.spec.id);
    const auto deployed = s.pipeline_store->alias(alias);
    const std::string compared = compared_with(evaluation);
    const pipelines::GateDecision d =
        pipelines::judge({spec->deployment.min_accuracy, spec->deployment.max_regression,
                          evaluation, compared, deployed ? deployed->digest : ""});
    out = {row.spec.id,
           row.artifact_digest,
           evaluation.is_object() ? evaluation.dump() : "{}",
           compared,
           d.deploy,
           d.reason};
  }
  const pipelines::TriggerRecord decided = s.pipeline_store->decide(out, alias);
  s.log_error("pipeline '" + rec->pipeline + "': firing " + std::to_string(rec->index) + " " +
              pipelines::to_string(decided.outcome) + ": " + decided.gate);
  if (decided.outcome == pipelines::TriggerOutcome::kDeployed && spec) {
    if (const auto a = s.pipeline_store->alias(alias)) publish_deployment(s, *spec, *a);
  }
}

void settle_trainings(CoordinatorState& s) {
  for (const pipelines::TriggerRecord& r : s.pipeline_store->training()) {
    if (const auto row = s.queue.get(r.job_id)) settle_training(s, *row);
  }
}

}  // namespace tv::fleet::coordinator
