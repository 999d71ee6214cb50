#include "trainvisor/fleet/replay/experiment.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "trainvisor/fleet/api/coordinator_client.hpp"
#include "trainvisor/fleet/host_daemon.hpp"
#include "trainvisor/fleet/pipeline_spec.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::replay {
namespace {

namespace fs = std::filesystem;
using pipelines::ReplayError;
using pipelines::SampleBatchData;

double thread_cpu_s() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// A coordinator and a host daemon in this process, as `trainvisor up` runs them, with lease
// timing short enough that a training interrupted by a kill is claimed again within seconds.
struct Fleet {
  std::unique_ptr<Coordinator> coordinator;
  std::unique_ptr<HostDaemon> host;
  std::thread host_thread;
  // Set when the host daemon's run ends before the replay stops it: no training would finish.
  std::atomic<bool> host_ended{false};
  std::string host_error;  // written before host_ended is set
  std::unique_ptr<api::CoordinatorClient> client;

  explicit Fleet(const ExperimentOptions& o) {
    CoordinatorOptions c;
    c.data_dir = (o.state_dir / "coordinator").string();
    c.manifest_path = o.manifest;
    c.operator_token = random_token();
    c.worker_token = random_token();
    c.plugin_dirs = o.plugin_dirs;
    c.http.bind = "127.0.0.1";
    c.http.port = 0;
    c.queue.prefer_cuda_grace = std::chrono::seconds(0);  // the only host is this one
    c.queue.stale_after = std::chrono::seconds(3);
    c.sweep_every = std::chrono::milliseconds(500);
    c.make_embedder = o.make_embedder;
    if (o.log) c.on_error = o.log;
    coordinator = std::make_unique<Coordinator>(c);
    api::CoordinatorClientOptions co;
    co.http = http::ClientOptions{coordinator->url(), {}, std::chrono::seconds(60)};
    co.operator_token = c.operator_token;
    co.operator_name = "replay";
    client = std::make_unique<api::CoordinatorClient>(co);
    const auto enrolled = client->enrol("replay");
    if (!enrolled)
      throw std::runtime_error("replay: cannot enrol its host: " + enrolled.error().error);
    HostDaemonOptions h;
    h.coordinator_url = coordinator->url();
    h.name = "replay";
    h.host_credential = enrolled->credential;
    h.slots = 1;  // trainings one at a time, in firing order
    h.work_dir = (o.state_dir / "work").string();
    h.plugin_dirs = o.plugin_dirs;
    h.poll_every = std::chrono::milliseconds(50);
    h.heartbeat_every = std::chrono::milliseconds(500);
    if (o.log) h.on_event = [log = o.log](const HostEvent& e) { log("host: " + e.message); };
    host = std::make_unique<HostDaemon>(h);
    host_thread = std::thread([this] {
      try {
        host->run();
      } catch (const std::exception& e) {
        host_error = e.what();
      }
      host_ended = true;
    });
  }

  ~Fleet() {
    if (host) host->stop();
    if (host_thread.joinable()) host_thread.join();
    if (coordinator) coordinator->stop();
  }
};

// The reply's value (a copy: a range-for over a temporary Reply's would dangle).
template <class T>
T value_of(const api::Reply<T>& r, const std::string& what) {
  if (!r) throw ReplayError("replay: " + what + ": " + r.error().error);
  return *r;
}

// The manifest's pipelines, each checked against what the source gives.
std::vector<std::string> checked_pipelines(const ExperimentOptions& o, Fleet& f) {
  std::vector<std::string> names;
  for (const api::PipelineSummary& p : value_of(f.client->pipelines(), "its pipelines"))
    names.push_back(p.name);
  if (names.empty()) throw ReplayError("replay: " + o.manifest + " has no [[pipelines]]");
  for (const std::string& name : names) {
    const api::PipelineDetail d = value_of(f.client->pipeline(name), "pipeline " + name);
    const auto shape = d.spec["stream"]["shape"].get<std::vector<std::int64_t>>();
    const std::int64_t classes = d.spec["stream"]["classes"].get<std::int64_t>();
    if (shape != o.source->sample_shape() || classes < o.source->num_classes()) {
      throw ReplayError("replay: pipeline '" + name + "' takes samples of shape " +
                        sample_shape_text(shape) + " with " + std::to_string(classes) +
                        " classes; the source (" + o.source->describe() + ") gives " +
                        sample_shape_text(o.source->sample_shape()) + " with " +
                        std::to_string(o.source->num_classes()));
    }
  }
  return names;
}

// After a batch: each pipeline's trigger's CPU and wall seconds so far and its firing count.
struct BatchMark {
  std::int64_t end = 0;  // samples ingested
  std::map<std::string, std::int64_t> triggers;
  std::map<std::string, double> cpu_s, wall_s;
};

// Waits until every pipeline's trigger has read `samples` and every training it started is
// decided. A pipeline that stopped ends the replay with its error.
BatchMark settle(const ExperimentOptions& o, Fleet& f, const std::vector<std::string>& names,
                 std::int64_t samples, Progress& progress) {
  for (;;) {
    BatchMark mark{samples, {}, {}, {}};
    bool ready = true;
    std::int64_t fired = 0;
    std::string training;  // the first firing whose training is not decided yet
    for (const api::PipelineSummary& s : value_of(f.client->pipelines(), "its pipelines")) {
      if (std::find(names.begin(), names.end(), s.name) == names.end()) continue;
      if (s.state == "stopped")
        throw ReplayError("replay: pipeline '" + s.name + "' stopped: " + s.error);
      if (s.read_samples < samples) ready = false;
      mark.triggers[s.name] = s.triggers;
      mark.cpu_s[s.name] = s.trigger_cpu_s;
      mark.wall_s[s.name] = s.trigger_wall_s;
      fired += s.triggers;
      // One slot decides trainings in firing order: the undecided ones are the newest.
      if (s.training > 0 && training.empty())
        training = s.name + ".t" + std::to_string(s.triggers - s.training);
    }
    progress.triggers = fired;
    if (f.host_ended) {
      throw ReplayError("replay: its host daemon stopped" +
                        (f.host_error.empty() ? std::string() : ": " + f.host_error));
    }
    if (ready) {
      if (training.empty()) return mark;
      if (progress.doing != "training " + training) {
        progress.doing = "training " + training;
        if (o.on_progress) o.on_progress(progress);
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Ingests the range batch by batch from where the stored stream ends; returns a mark per batch.
std::vector<BatchMark> feed(const ExperimentOptions& o, Fleet& f,
                            const std::vector<std::string>& names) {
  const std::int64_t total = o.range.end - o.range.first;
  std::int64_t pos = total;
  for (const api::PipelineSummary& s : value_of(f.client->pipelines(), "its pipelines")) {
    if (std::find(names.begin(), names.end(), s.name) != names.end())
      pos = std::min(pos, s.samples);
  }
  if (!o.resume && pos != 0) throw ReplayError("replay: the state already holds a stream");
  // Batches start at multiples of batch_size, so a resumed replay cuts them as the first did.
  pos -= pos % o.batch_size;
  Progress progress{pos, total, 0, "ingesting"};
  // Where this process begins: a resumed trigger has read its stream again by then.
  std::vector<BatchMark> marks{settle(o, f, names, pos, progress)};
  while (pos < total) {
    const std::int64_t n = std::min(o.batch_size, total - pos);
    const std::string body = pipelines::encode_batch(o.source->read(o.range.first + pos, n));
    const std::string key = "replay-" + std::to_string(o.range.first + pos);
    for (const std::string& name : names) {
      value_of(
          f.client->ingest(name, body, key),
          "pipeline " + name + ": samples " + std::to_string(pos) + ".." + std::to_string(pos + n));
    }
    pos += n;
    progress.samples = pos;
    marks.push_back(settle(o, f, names, pos, progress));
    progress.doing = "ingesting";
    if (o.on_progress) o.on_progress(progress);
    if (o.max_triggers > 0 && progress.triggers >= o.max_triggers) break;
  }
  return marks;
}

std::vector<Window> windows_of(const ExperimentOptions& o, std::int64_t samples) {
  std::vector<Window> out;
  for (std::int64_t b = 0; b < samples; b += o.window) {
    const std::int64_t e = std::min(b + o.window, samples);
    const std::int64_t first = o.range.first + b;
    const std::int64_t next = o.range.first + e;
    const std::int64_t end_time =
        next < o.source->size() ? o.source->time_ns(next) : o.source->time_ns(next - 1) + 1;
    out.push_back({b, e, o.source->time_ns(first), end_time});
  }
  return out;
}

// The model deployed after a firing at `end_sample` took over when the batch holding that sample
// was done: ingest waits for the gate before the next batch.
std::int64_t deployed_from(const ExperimentOptions& o, std::int64_t end_sample,
                           std::int64_t samples) {
  return std::min(((end_sample - 1) / o.batch_size + 1) * o.batch_size, samples);
}

// What the trigger of `name` spent up to firing `index` since the firing before (or since this
// process began reading), from the marks at the end of the batches that hold them. marks[0] is
// where this process began: firings it already counts came before a resumption, and their cost
// is not known (0).
std::pair<double, double> drift_cost(const std::vector<BatchMark>& marks, const std::string& name,
                                     std::int64_t index) {
  const auto at = [&](std::int64_t k) -> const BatchMark* {
    for (const BatchMark& m : marks) {
      if (m.triggers.at(name) > k) return &m;
    }
    return nullptr;
  };
  const BatchMark* now = at(index);
  if (now == nullptr || now == &marks.front()) return {0, 0};
  const BatchMark* before = index > 0 ? at(index - 1) : nullptr;
  if (before == nullptr) before = &marks.front();
  return {std::max(0.0, now->cpu_s.at(name) - before->cpu_s.at(name)),
          std::max(0.0, now->wall_s.at(name) - before->wall_s.at(name))};
}

double cost_of(const nlohmann::json& metrics, const char* key) {
  const auto c = metrics.find("cost");
  if (c == metrics.end() || !c->is_object() || !c->contains(key) || !(*c)[key].is_number())
    return 0;
  return std::max(0.0, (*c)[key].get<double>());
}

// One pipeline's firings, models and costs; the matrix is filled by score_models.
RunReport report_of(const ExperimentOptions& o, Fleet& f, const std::string& name,
                    const std::vector<BatchMark>& marks, const std::vector<Window>& windows,
                    std::int64_t samples) {
  RunReport r;
  r.run = name;
  r.windows = windows;
  r.change_points = o.source->change_points();
  const api::TriggerList list = value_of(f.client->pipeline_triggers(name), "triggers of " + name);
  for (const api::TriggerInfo& t : list.triggers) {
    TriggerRow row;
    row.run = name;
    row.pipeline = name;
    row.index = t.index;
    row.sample = t.end_sample;
    row.time_ns = t.time_ns;
    row.reason = t.reason;
    row.stats = t.stats;
    row.train_samples = t.metrics.value("train_samples", t.end_sample - t.window_begin);
    row.model = t.model;
    row.deployed = t.outcome == "deployed";
    const auto [drift_cpu, drift_wall] = drift_cost(marks, name, t.index);
    r.costs.push_back({cost_of(t.metrics, "train_cpu_s"), cost_of(t.metrics, "eval_cpu_s"),
                       drift_cpu, cost_of(t.metrics, "train_wall_s"),
                       cost_of(t.metrics, "eval_wall_s"), drift_wall});
    if (!t.model.empty()) {
      ModelRow m{t.model, static_cast<std::int64_t>(r.triggers.size()), t.end_sample, std::nullopt};
      if (row.deployed) m.deployed_from = deployed_from(o, t.end_sample, samples);
      r.models.push_back(m);
    }
    r.triggers.push_back(std::move(row));
  }
  r.matrix.assign(r.models.size(), std::vector<std::optional<Scores>>(windows.size()));
  return r;
}

// Scores every model on every window after its training data, each window read once; the
// scoring's CPU and wall time go to the model's trigger's evaluation cost.
void score_models(const ExperimentOptions& o, Fleet& f, std::vector<RunReport>& runs,
                  Progress& progress) {
  fs::create_directories(models_dir(o.state_dir));
  for (RunReport& r : runs) {
    for (const ModelRow& m : r.models) {
      const fs::path file = models_dir(o.state_dir) / (m.digest + ".tvb");
      if (!fs::exists(file))
        value_of(f.client->download_artifact(m.digest, file.string()), "model " + m.digest);
    }
  }
  progress.doing = "scoring models";
  if (o.on_progress) o.on_progress(progress);
  const std::vector<Window>& windows = runs.front().windows;
  for (std::size_t w = 0; w < windows.size(); ++w) {
    const SampleBatchData data =
        o.source->read(o.range.first + windows[w].begin, windows[w].end - windows[w].begin);
    for (RunReport& r : runs) {
      for (std::size_t i = 0; i < r.models.size(); ++i) {
        if (windows[w].begin < r.models[i].trained_until) continue;
        const double cpu = thread_cpu_s();
        const auto wall = std::chrono::steady_clock::now();
        r.matrix[i][w] = o.score(r.models[i].digest, data);
        TriggerCosts& c = r.costs[static_cast<std::size_t>(r.models[i].trigger)];
        c.eval_cpu_s += thread_cpu_s() - cpu;
        c.eval_wall_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
      }
    }
  }
  for (RunReport& r : runs) {
    for (std::size_t i = 0; i < r.models.size(); ++i) {
      TriggerRow& t = r.triggers[static_cast<std::size_t>(r.models[i].trigger)];
      for (std::size_t w = 0; w < windows.size() && !t.next_window; ++w) {
        if (windows[w].begin >= r.models[i].trained_until) t.next_window = r.matrix[i][w];
      }
    }
  }
}

Environment environment_of(const ExperimentOptions& o) {
  Environment e;
  e.seed = o.seed;
  e.manifest_sha256 = sha256_file_hex(o.manifest);
  e.data_digest = o.source->data_digest();
  e.source = o.source->describe();
  e.versions = o.versions;
  e.blas = o.blas;
  e.threads = 1;  // each training's (the trainer's default: bit-for-bit reproducible)
  return e;
}

}  // namespace

fs::path models_dir(const fs::path& state_dir) {
  return state_dir / "models";
}

std::vector<RunReport> run_experiment(const ExperimentOptions& o) {
  if (!o.source || !o.score) throw std::invalid_argument("replay: no source or no scorer");
  if (o.batch_size <= 0 || o.window <= 0)
    throw ReplayError("replay: --batch and --window must be positive");
  const bool stored = fs::exists(o.state_dir / "coordinator" / "coordinator.sqlite");
  if (stored && !o.resume) {
    throw ReplayError("replay: " + o.state_dir.string() +
                      " already holds a replay: --resume to go on with it, or another --out");
  }
  if (!stored && o.resume)
    throw ReplayError("replay: --resume: " + o.state_dir.string() +
                      " holds no replay to go on with");
  fs::create_directories(o.state_dir);
  Fleet f(o);
  const std::vector<std::string> names = checked_pipelines(o, f);
  const std::vector<BatchMark> marks = feed(o, f, names);
  std::int64_t samples = 0;
  for (const api::PipelineSummary& s : value_of(f.client->pipelines(), "its pipelines")) {
    if (std::find(names.begin(), names.end(), s.name) != names.end())
      samples = std::max(samples, s.samples);
  }
  const std::vector<Window> windows = windows_of(o, samples);
  std::vector<RunReport> runs;
  for (const std::string& name : names)
    runs.push_back(report_of(o, f, name, marks, windows, samples));
  Progress progress{samples, o.range.end - o.range.first, 0, ""};
  for (const RunReport& r : runs)
    progress.triggers += static_cast<std::int64_t>(r.triggers.size());
  if (!windows.empty()) score_models(o, f, runs, progress);
  const Environment env = environment_of(o);
  for (RunReport& r : runs) {
    r.env = env;
    validate(r);
  }
  return runs;
}

}  // namespace tv::fleet::replay
