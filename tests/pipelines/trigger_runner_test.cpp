// The trigger runner over real stores (a SQLite file, segment files) and real trigger plugins:
// firings become planned jobs, a restart rebuilds the trigger's state so that the next firing is
// neither lost nor doubled, a crash between recording a firing and enqueuing its job is repaired,
// and the strategies' windows are what they say.
#include "trainvisor/fleet/pipelines/trigger_runner.hpp"

#include <gtest/gtest.h>

#include <mutex>

#include "temp_dir.hpp"
#include "trainvisor/core/trigger_services.hpp"
#include "trainvisor/drift/drift_statistics.hpp"
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
  void start(std::vector<PipelineSpec> specs) {
    runner_ = std::make_unique<TriggerRunner>(*segments_, *store_, hooks());
    runner_->set_pipelines(std::move(specs), services());
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
    if (j.pipeline->pipeline == "f") EXPECT_EQ(j.pipeline->initial_weights, std::string(64, 'a'));
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

}  // namespace
}  // namespace tv::fleet::pipelines
