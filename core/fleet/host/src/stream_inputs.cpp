#include "stream_inputs.hpp"

#include <filesystem>
#include <system_error>

#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

// cache/DIGEST, downloaded through `get` unless it is there already with that digest; a download
// lands under a temporary name and is renamed once its digest checks out.
std::string cached(const fs::path& cache, const std::string& digest, const std::string& what,
                   const std::function<api::Reply<api::Ok>(const std::string&)>& get) {
  if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::runtime_error(what + ": '" + digest + "' is not a sha256 digest");
  const fs::path path = cache / digest;
  std::error_code ec;
  if (fs::is_regular_file(path, ec) && sha256_file_hex(path.string()) == digest)
    return path.string();
  fs::create_directories(cache);
  const fs::path tmp = cache / (digest + ".part");
  const api::Reply<api::Ok> r = get(tmp.string());
  if (!r) {
    fs::remove(tmp, ec);
    throw std::runtime_error(what + " " + digest + ": download refused (" +
                             std::to_string(r.status()) + "): " + r.error().error);
  }
  const std::string got = sha256_file_hex(tmp.string());
  if (got != digest) {
    fs::remove(tmp, ec);
    throw std::runtime_error(what + " " + digest + ": the download's sha256 is " + got);
  }
  fs::rename(tmp, path);
  return path.string();
}

}  // namespace

std::string fetch_artifact(api::CoordinatorClient& client, const std::string& digest,
                           const std::string& what, const std::string& cache_dir) {
  return cached(
      fs::path(cache_dir) / "artifacts", digest, what,
      [&client, &digest](const std::string& to) { return client.download_artifact(digest, to); });
}

TrainerCommand::StreamArgs fetch_stream_inputs(api::CoordinatorClient& client,
                                               const PipelineTraining& p,
                                               const std::string& cache_dir) {
  const fs::path segments = fs::path(cache_dir) / "segments";
  const fs::path artifacts = fs::path(cache_dir) / "artifacts";
  auto segment = [&client](const std::string& d) {
    return [&client, d](const std::string& to) { return client.download_segment(d, to); };
  };
  auto artifact = [&client](const std::string& d) {
    return [&client, d](const std::string& to) { return client.download_artifact(d, to); };
  };
  TrainerCommand::StreamArgs a;
  for (const std::string& d : p.segments)
    a.segment_files.push_back(cached(segments, d, "segment", segment(d)));
  a.first_sample = p.segments_first_sample;
  a.window_begin = p.window_begin;
  a.window_end = p.window_end;
  a.sample_shape = p.sample_shape;
  a.num_classes = p.num_classes;
  a.holdout = p.holdout;
  a.epochs = p.epochs;
  if (!p.eval_set.empty())
    a.eval_set_file = cached(artifacts, p.eval_set, "evaluation set", artifact(p.eval_set));
  if (!p.initial_weights.empty()) {
    a.initial_weights =
        cached(artifacts, p.initial_weights, "initial weights", artifact(p.initial_weights));
  }
  // Judged against what the pipeline deploys now, not when the firing was planned.
  const api::Reply<api::PipelineDetail> pipeline = client.pipeline(p.pipeline);
  if (!pipeline) {
    throw std::runtime_error("pipeline '" + p.pipeline + "': cannot read its deployed model (" +
                             std::to_string(pipeline.status()) + "): " + pipeline.error().error);
  }
  const std::string& deployed = pipeline->summary.deployed;
  if (!deployed.empty())
    a.baseline = cached(artifacts, deployed, "deployed model", artifact(deployed));
  return a;
}

}  // namespace tv::fleet
