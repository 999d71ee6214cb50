// The trigger runner over real stores (a SQLite file, segment files) and real trigger plugins:
// firings become planned jobs, a restart rebuilds the trigger's state so that the next firing is
// neither lost nor doubled, a crash between recording a firing and enqueuing its job is repaired,
// and the strategies' windows are what they say. A trigger on embeddings sees the model in
// effect's and starts afresh when it changes, across restarts too.
#include "trainvisor/fleet/pipelines/trigger_runner.hpp"

#include <gtest/gtest.h>

#include <mutex>

#include "temp_dir.hpp"
#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/drift/drift_statistics.hpp"
#include "trainvisor/fleet/pipelines/embedder.hpp"
#include "trainvisor/fleet/pipelines/pipeline_store.hpp"
#include "trainvisor/fleet/pipelines/sample_batch.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"

namespace tv::fleet::pipelines {
namespace {

std::shared_ptr<const HostTriggerServices> services() {
  static const PluginRegistry registry = PluginRegistry::load({TV_PLUGIN_DIR});
  static const auto s =
      std::make_shared<const HostTriggerServices>(registry, drift::drift_statistics());
  return s;
}

SampleBatchData batch(std::int64_t rows, std::int64_t first_time) {
  SampleBatchData b;
  b.sample_shape = {4};
  b.rows = static_cast<std::size_t>(rows);
  for (std::int64_t i = 0; i < rows; ++i) {
    for (int f = 0; f < 4; ++f)
      b.features.push_back(static_cast<float>((i + f) % 7));
    b.labels.push_back(i % 3);
    b.time_ns.push_back(first_time + i);
  }
  return b;
}

PipelineSpec counting(const std::string& name, std::int64_t every,
                      StrategyKind kind = StrategyKind::kRetrain) {
  PipelineSpec p;
  p.name = name;
  p.training.name = name;
  p.training.model = "tiny";
  p.training.mode = "train";
  p.stream.sample_shape = {4};
  p.stream.num_classes = 3;
  p.trigger = "data_count";
  p.trigger_params = {{"every", every}};
  p.strategy.kind = kind;
  p.strategy.window_samples = 150;
  p.deployment.alias = name;
  return p;
}

// Embeds a sample as (sum of its features, the model's name length): enough for a trigger to
// count, and a record of which model embedded how many rows.
class RecordingEmbedder final : public Embedder {
 public:
  SampleBatchData embed(const PipelineSpec&, const std::string& model,
                        const SampleBatchData& batch) override {
    if (model == "broken") throw std::runtime_error("model broken: no such artifact");
    SampleBatchData out;
    out.sample_shape = {2};
    out.rows = batch.rows;
    for (std::size_t r = 0; r < batch.rows; ++r) {
      float sum = 0;
      for (std::size_t f = 0; f < batch.dims(); ++f)
        sum += batch.features[r * batch.dims() + f];
      out.features.push_back(sum);
      out.features.push_back(static_cast<float>(model.size()));
    }
    out.labels = batch.labels;
    out.time_ns = batch.time_ns;
    std::lock_guard lock(mu);
    calls.emplace_back(model, static_cast<std::int64_t>(batch.rows));
    return out;
  }
  std::vector<std::pair<std::string, std::int64_t>> seen() {
    std::lock_guard lock(mu);
    return calls;
  }

 private:
  std::mutex mu;
  std::vector<std::pair<std::string, std::int64_t>> calls;
};

PipelineSpec on_embeddings(const std::string& name, std::int64_t every) {
  PipelineSpec p = counting(name, every);
  p.trigger_features = TriggerFeatures::kEmbeddings;
  return p;
}

class TriggerRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override { open_stores(); }
  void TearDown() override { runner_.reset(); }
  void open_stores() {
    runner_.reset();
    segments_.emplace(SegmentStore::open(db(), dir_.file("segments")));
    store_.emplace(PipelineStore::open(db()));
  }
  std::string db() const { return dir_.file("coordinator.sqlite"); }

  RunnerHooks hooks() {
    RunnerHooks h;
    h.enqueue = [this](const std::vector<JobSpec>& jobs) {
      std::lock_guard lock(mu_);
      if (fail_next_enqueue_) {
        fail_next_enqueue_ = false;
        throw std::runtime_error("the queue is down");
      }
      for (const JobSpec& j : jobs) {
        if (std::none_of(jobs_.begin(), jobs_.end(),
                         [&](const JobSpec& k) { return k.id == j.id; }))
          jobs_.push_back(j);
      }
    };
    h.has_job = [this](const std::string& id) {
      std::lock_guard lock(mu_);
      return std::any_of(jobs_.begin(), jobs_.end(), [&](const JobSpec& j) { return j.id == id; });
    };
    h.log = [](const std::string& line) { std::fprintf(stderr, "runner: %s\n", line.c_str()); };
    return h;
  }
  void start(std::vector<PipelineSpec> specs, std::shared_ptr<Embedder> embedder = nullptr) {
    runner_ = std::make_unique<TriggerRunner>(*segments_, *store_, hooks());
    runner_->set_pipelines(std::move(specs), services(), std::move(embedder));
  }
  // The gate deploys firing `index`'s training as `model`.
  void deploy(const std::string& pipeline, std::size_t index, const std::string& model) {
    const TriggerRecord r = store_->triggers(pipeline).at(index);
    store_->decide({r.job_id, model, "{}", "", true, "passed"}, pipeline);
  }
  void ingest(const std::string& pipeline, std::int64_t rows) {
    segments_->append(pipeline, batch(rows, time_));
    time_ += rows;
    if (runner_) runner_->notify(pipeline);
  }
  std::vector<std::int64_t> ends(const std::string& pipeline) {
    std::vector<std::int64_t> out;
    for (const TriggerRecord& r : store_->triggers(pipeline))
      out.push_back(r.end_sample);
    return out;
  }

  test::TempDir dir_;
  std::optional<SegmentStore> segments_;
  std::optional<PipelineStore> store_;
  std::unique_ptr<TriggerRunner> runner_;
  std::mutex mu_;
  std::vector<JobSpec> jobs_;
  bool fail_next_enqueue_ = false;
  std::int64_t time_ = 1'700'000'000'000'000'000;
};

TEST_F(TriggerRunnerTest, FiringsBecomeJobsOverTheirWindows) {
  start({counting("p", 100)});
  for (int i = 0; i < 5; ++i)
    ingest("p", 60);
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 200, 300}));
  ASSERT_EQ(jobs_.size(), 3u);
  for (std::size_t i = 0; i < jobs_.size(); ++i) {
    const JobSpec& j = jobs_[i];
    ASSERT_TRUE(j.pipeline);
    EXPECT_EQ(j.name, "p.t" + std::to_string(i));
    EXPECT_EQ(j.pipeline->trigger, static_cast<std::int64_t>(i));
    EXPECT_EQ(j.pipeline->window_begin, 0);  // retrain: everything so far
    EXPECT_EQ(j.pipeline->window_end, 100 * static_cast<std::int64_t>(i + 1));
    EXPECT_EQ(j.pipeline->segments_first_sample, 0);
    EXPECT_EQ(j.pipeline->sample_shape, (std::vector<std::int64_t>{4}));
    EXPECT_EQ(store_->trigger_of_job(j.id)->index, static_cast<std::int64_t>(i));
  }
  // The segments listed cover the window: 100 samples need two segments of 60.
  EXPECT_EQ(jobs_[0].pipeline->segments.size(), 2u);
  EXPECT_EQ(jobs_[2].pipeline->segments.size(), 5u);
  const auto status = runner_->status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].state, "running");
  EXPECT_EQ(status[0].end_sample, 300);
  EXPECT_GT(status[0].trigger_cpu_s, 0);  // five batches observed
  EXPECT_LT(status[0].trigger_cpu_s, 60);
}

TEST_F(TriggerRunnerTest, ARestartNeitherLosesNorDoublesTheNextFiring) {
  start({counting("p", 100)});
  ingest("p", 250);  // fires at 100 and 200; 50 counted towards the next
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 200}));
  open_stores();  // the coordinator restarts: new stores and runner on the same files
  start({counting("p", 100)});
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 200}));  // not doubled
  ingest("p", 60);  // 50 + 60: fires at 300, as without the restart
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 200, 300}));
  EXPECT_EQ(jobs_.size(), 3u);
}

TEST_F(TriggerRunnerTest, AFiringWhoseJobWasNotEnqueuedIsEnqueuedAtRestart) {
  start({counting("p", 100)});
  fail_next_enqueue_ = true;
  ingest("p", 120);
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100}));  // recorded
  EXPECT_TRUE(jobs_.empty());                              // but not queued
  EXPECT_EQ(runner_->status()[0].state, "stopped");
  EXPECT_NE(runner_->status()[0].error.find("the queue is down"), std::string::npos);
  open_stores();
  start({counting("p", 100)});
  runner_->drain();
  ASSERT_EQ(jobs_.size(), 1u);
  EXPECT_EQ(jobs_[0].id, store_->triggers("p")[0].job_id);
  EXPECT_EQ(runner_->status()[0].state, "running");
}

TEST_F(TriggerRunnerTest, FinetuneTrainsOnTheDataSinceTheLastFiringAndWindowOnTheLastN) {
  PipelineSpec f = counting("f", 100, StrategyKind::kFinetune);
  f.initial_model = {InitialModelKind::kArtifact, std::string(64, 'a')};
  start({f, counting("w", 100, StrategyKind::kWindow)});
  ingest("f", 250);
  ingest("w", 250);
  runner_->drain();
  std::map<std::string, std::vector<std::pair<std::int64_t, std::int64_t>>> windows;
  for (const JobSpec& j : jobs_)
    windows[j.pipeline->pipeline].push_back({j.pipeline->window_begin, j.pipeline->window_end});
  using W = std::vector<std::pair<std::int64_t, std::int64_t>>;
  EXPECT_EQ(windows["f"], (W{{0, 100}, {100, 200}}));
  EXPECT_EQ(windows["w"], (W{{0, 100}, {50, 200}}));  // the last 150 samples
  for (const JobSpec& j : jobs_) {
    if (j.pipeline->pipeline == "f") {
      EXPECT_EQ(j.pipeline->initial_weights, std::string(64, 'a'));
    }
  }
}

TEST_F(TriggerRunnerTest, TheInitialPassTrainsOnWhatIsThereAndIgnoringStartsAtTheEnd) {
  ingest("t", 130);
  ingest("i", 130);
  PipelineSpec t = counting("t", 100);
  t.initial_pass = InitialPass::kTrain;
  start({t, counting("i", 100)});
  runner_->drain();
  const std::vector<TriggerRecord> tr = store_->triggers("t");
  ASSERT_EQ(tr.size(), 1u);
  EXPECT_EQ(tr[0].end_sample, 130);
  EXPECT_NE(tr[0].reason.find("initial pass"), std::string::npos);
  EXPECT_TRUE(store_->triggers("i").empty());  // the 130 samples before the start are not counted
  ingest("i", 100);
  ingest("t", 100);
  runner_->drain();
  EXPECT_EQ(ends("i"), (std::vector<std::int64_t>{230}));
  EXPECT_EQ(ends("t"), (std::vector<std::int64_t>{130, 230}));
}

TEST_F(TriggerRunnerTest, ATriggerThatCannotBeMadeStopsItsPipelineOnly) {
  PipelineSpec bad = counting("bad", 100);
  bad.trigger_params = {{"every", std::int64_t{0}}};  // below the plugin's minimum
  start({bad, counting("p", 100)});
  ingest("p", 100);
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100}));
  for (const PipelineStatus& s : runner_->status()) {
    if (s.name == "bad") {
      EXPECT_EQ(s.state, "stopped");
      EXPECT_NE(s.error.find("every"), std::string::npos) << s.error;
    }
  }
}

TEST_F(TriggerRunnerTest, ATriggerOnEmbeddingsStartsAfreshWhenTheDeployedModelChanges) {
  auto embedder = std::make_shared<RecordingEmbedder>();
  start({on_embeddings("p", 100)}, embedder);
  ingest("p", 120);  // the initial model (drawn from the seed): fires at 100
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100}));
  deploy("p", 0, "model-one");
  ingest("p", 60);  // afresh on model-one's embeddings: 60 counted, not 80
  ingest("p", 60);  // 120: fires at its 100th sample, 120 + 100 = 220
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 220}));
  using Seen = std::vector<std::pair<std::string, std::int64_t>>;
  EXPECT_EQ(embedder->seen(), (Seen{{"", 120}, {"model-one", 60}, {"model-one", 60}}));
  const std::vector<PipelineStatus> status = runner_->status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].features_model, "model-one");
  EXPECT_EQ(status[0].features_since_seq, 1);

  // A restart rebuilds the state from where model-one began: 20 counted after 220, so 80 more
  // fire at 320, as without the restart.
  open_stores();
  auto after = std::make_shared<RecordingEmbedder>();
  start({on_embeddings("p", 100)}, after);
  runner_->drain();
  EXPECT_EQ(after->seen(), (Seen{{"model-one", 60}, {"model-one", 60}}));
  ingest("p", 80);
  runner_->drain();
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 220, 320}));

  // A model deployed while the coordinator is down: the trigger starts afresh at restart, with
  // nothing to read again.
  runner_.reset();
  deploy("p", 1, "model-two");
  open_stores();
  auto third = std::make_shared<RecordingEmbedder>();
  start({on_embeddings("p", 100)}, third);
  ingest("p", 90);
  runner_->drain();
  EXPECT_EQ(third->seen(), (Seen{{"model-two", 90}}));
  EXPECT_EQ(ends("p"), (std::vector<std::int64_t>{100, 220, 320}));  // 90 < 100 since model-two
}

TEST_F(TriggerRunnerTest, ATriggerOnEmbeddingsWithoutAnEmbedderOrModelStopsWithTheReason) {
  PipelineSpec broken = on_embeddings("broken", 100);
  broken.initial_model = {InitialModelKind::kArtifact, "broken"};
  start({on_embeddings("p", 100), broken, counting("raw", 100)});  // no embedder
  ingest("p", 100);
  ingest("broken", 100);
  ingest("raw", 100);
  runner_->drain();
  EXPECT_EQ(ends("raw"), (std::vector<std::int64_t>{100}));  // the others go on
  for (const PipelineStatus& s : runner_->status()) {
    if (s.name == "raw") continue;
    EXPECT_EQ(s.state, "stopped") << s.name;
    EXPECT_NE(s.error.find("no model runtime to embed samples with"), std::string::npos) << s.error;
  }
  open_stores();
  start({broken}, std::make_shared<RecordingEmbedder>());
  runner_->drain();
  ingest("broken", 10);
  runner_->drain();
  const std::vector<PipelineStatus> status = runner_->status();
  ASSERT_EQ(status.size(), 1u);
  EXPECT_EQ(status[0].state, "stopped");
  EXPECT_NE(status[0].error.find("model broken: no such artifact"), std::string::npos)
      << status[0].error;
}

}  // namespace
}  // namespace tv::fleet::pipelines
