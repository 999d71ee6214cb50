// The metrics module: the text format as Prometheus parses it (names, labels, escaping, histogram
// buckets), registration errors, and counts from several threads (also run under TSan).
#include "trainvisor/fleet/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <thread>

namespace tv::fleet::metrics {
namespace {

TEST(Metrics, RendersFamiliesSortedWithHelpAndTypeOnce) {
  Registry r;
  auto& claims = r.counter("trainvisor_claims_total", "Claims.", {"outcome"});
  auto& running = r.gauge("trainvisor_jobs_running", "Jobs running now.");
  claims.with({"none"}).inc();
  claims.with({"granted"}).inc(3);
  running.get().set(2);
  EXPECT_EQ(r.render(),
            "# HELP trainvisor_claims_total Claims.\n"
            "# TYPE trainvisor_claims_total counter\n"
            "trainvisor_claims_total{outcome=\"granted\"} 3\n"
            "trainvisor_claims_total{outcome=\"none\"} 1\n"
            "# HELP trainvisor_jobs_running Jobs running now.\n"
            "# TYPE trainvisor_jobs_running gauge\n"
            "trainvisor_jobs_running 2\n");
}

TEST(Metrics, UnlabelledSeriesRenderZeroBeforeUse) {
  Registry r;
  r.counter("trainvisor_sweeps_total", "Sweeps.");
  EXPECT_NE(r.render().find("\ntrainvisor_sweeps_total 0\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValuesAndHelp) {
  Registry r;
  r.gauge("g", "a \\ help\nwith a line", {"job"}).with({"a\"b\\c\nd"}).set(1.5);
  const std::string out = r.render();
  EXPECT_NE(out.find("# HELP g a \\\\ help\\nwith a line\n"), std::string::npos) << out;
  EXPECT_NE(out.find("g{job=\"a\\\"b\\\\c\\nd\"} 1.5\n"), std::string::npos) << out;
}

TEST(Metrics, HistogramBucketsAreCumulativeWithSumAndCount) {
  Registry r;
  const double bounds[] = {0.1, 1, 10};
  auto& h = r.histogram("trainvisor_lag_seconds", "Lag.", {"route"}, bounds).with({"/v1/x"});
  for (const double v : {0.05, 0.1, 0.5, 5.0, 50.0})
    h.observe(v);
  const std::string out = r.render();
  for (const char* line : {"trainvisor_lag_seconds_bucket{route=\"/v1/x\",le=\"0.1\"} 2\n",
                           "trainvisor_lag_seconds_bucket{route=\"/v1/x\",le=\"1\"} 3\n",
                           "trainvisor_lag_seconds_bucket{route=\"/v1/x\",le=\"10\"} 4\n",
                           "trainvisor_lag_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 5\n",
                           "trainvisor_lag_seconds_sum{route=\"/v1/x\"} 55.65\n",
                           "trainvisor_lag_seconds_count{route=\"/v1/x\"} 5\n"}) {
    EXPECT_NE(out.find(line), std::string::npos) << line << " in\n" << out;
  }
}

TEST(Metrics, UnlabelledHistogramPutsLeAlone) {
  Registry r;
  const double bounds[] = {1};
  r.histogram("h_seconds", "H.", {}, bounds).get().observe(2);
  const std::string out = r.render();
  EXPECT_NE(out.find("h_seconds_bucket{le=\"1\"} 0\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_seconds_bucket{le=\"+Inf\"} 1\n"), std::string::npos) << out;
  EXPECT_NE(out.find("h_seconds_sum 2\nh_seconds_count 1\n"), std::string::npos) << out;
}

TEST(Metrics, RemovedSeriesLeaveTheOutput) {
  Registry r;
  auto& rate = r.gauge("trainvisor_job_step_rate", "Steps per second.", {"job"});
  rate.with({"j1"}).set(4);
  rate.with({"j2"}).set(5);
  rate.remove({"j1"});
  rate.remove({"never"});
  const std::string out = r.render();
  EXPECT_EQ(out.find("j1"), std::string::npos) << out;
  EXPECT_NE(out.find("trainvisor_job_step_rate{job=\"j2\"} 5\n"), std::string::npos) << out;
}

TEST(Metrics, FormatsValues) {
  EXPECT_EQ(format_value(0), "0");
  EXPECT_EQ(format_value(-3), "-3");
  EXPECT_EQ(format_value(0.25), "0.25");
  EXPECT_EQ(format_value(1e300), "1e+300");
  EXPECT_EQ(format_value(INFINITY), "+Inf");
  EXPECT_EQ(format_value(-INFINITY), "-Inf");
  EXPECT_EQ(format_value(NAN), "NaN");
}

TEST(Metrics, RefusesBadNamesWithTheReason) {
  Registry r;
  const double bounds[] = {1, 1};
  const auto refused = [](auto fn, const char* words) {
    try {
      fn();
      ADD_FAILURE() << "accepted; expected: " << words;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  refused([&] { r.counter("claims", "x"); }, "ends in _total");
  refused([&] { r.gauge("9x", "x"); }, "not a name");
  refused([&] { r.gauge("x", "x", {"__a"}); }, "label '__a'");
  refused([&] { r.gauge("x", "x", {"a-b"}); }, "label 'a-b'");
  refused([&] { r.histogram("h", "x", {"le"}, {}); }, "'le'");
  refused([&] { r.histogram("h", "x", {}, bounds); }, "strictly increasing");
  r.gauge("dup", "x");
  refused([&] { r.gauge("dup", "x"); }, "registered twice");
  auto& f = r.gauge("two", "x", {"a", "b"});
  refused([&] { f.with({"only"}); }, "1 label values for 2 labels");
}

TEST(Metrics, ScrapeCallbacksRunBeforeRendering) {
  Registry r;
  auto& g = r.gauge("trainvisor_jobs", "Jobs.", {"status"});
  int scrapes = 0;
  r.on_scrape([&] { g.with({"pending"}).set(++scrapes); });
  r.render();
  EXPECT_NE(r.render().find("trainvisor_jobs{status=\"pending\"} 2\n"), std::string::npos);
}

// Increments and observations from several threads, series created concurrently, while another
// thread renders: every count arrives (and TSan sees no race).
TEST(Metrics, CountsFromManyThreads) {
  Registry r;
  auto& c = r.counter("trainvisor_requests_total", "Requests.", {"route"});
  const double bounds[] = {0.5};
  auto& h = r.histogram("trainvisor_seconds", "S.", {}, bounds).get();
  constexpr int kThreads = 4, kEach = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        c.with({i % 2 ? "/a" : "/b"}).inc();
        h.observe(t % 2 ? 0.25 : 1.0);
      }
    });
  }
  std::thread scraper([&] {
    for (int i = 0; i < 50; ++i)
      r.render();
  });
  for (auto& t : threads)
    t.join();
  scraper.join();
  EXPECT_EQ(c.with({"/a"}).value() + c.with({"/b"}).value(), std::uint64_t{kThreads * kEach});
  EXPECT_EQ(h.cumulative(), (std::vector<std::uint64_t>{2 * kEach, 4 * kEach}));
  EXPECT_DOUBLE_EQ(h.sum(), 2 * kEach * 0.25 + 2 * kEach * 1.0);
}

}  // namespace
}  // namespace tv::fleet::metrics
