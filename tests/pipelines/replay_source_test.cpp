// The replay sources over Debian's Fashion-MNIST files (/usr/share/datasets/fashion-mnist) and
// over recordings written with the coordinator's own SegmentStore into a temp dir.
#include "trainvisor/fleet/pipelines/replay_source.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <tuple>

#include "temp_dir.hpp"
#include "trainvisor/fleet/pipelines/segment_store.hpp"
#include "trainvisor/fleet/sha256.hpp"

namespace tv::fleet::pipelines {
namespace {

using test::TempDir;

constexpr std::int64_t kSecond = 1'000'000'000;

// Reading a split's .gz files takes a moment: once per test binary.
const std::shared_ptr<const FashionMnistSplit>& t10k() {
  static const auto data = load_fashion_mnist("/usr/share/datasets/fashion-mnist", "t10k");
  return data;
}

FashionMnistOptions options_with(const std::string& drift, std::int64_t length = 10000) {
  FashionMnistOptions o;
  o.split = "t10k";
  o.seed = 7;
  o.length = length;
  o.drift = parse_drift_schedule(drift);
  return o;
}

std::unique_ptr<ReplaySource> stream(const std::string& drift, std::int64_t length = 10000) {
  return open_fashion_mnist_stream(options_with(drift, length), t10k());
}

// Runs `f` and returns what its ReplayError said; fails the test when it throws nothing.
template <class F>
std::string refusal(F f) {
  try {
    f();
  } catch (const ReplayError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no ReplayError";
  return "";
}

std::vector<float> image(const SampleBatchData& b, std::size_t row) {
  return {b.features.begin() + static_cast<std::ptrdiff_t>(row * 784),
          b.features.begin() + static_cast<std::ptrdiff_t>((row + 1) * 784)};
}

// np.rot90(img, k) for k = 1, 2, 3, by index.
std::vector<float> turned(const std::vector<float>& img, int quarter_turns) {
  std::vector<float> out = img;
  for (int k = 0; k < quarter_turns; ++k) {
    std::vector<float> next(784);
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x)
        next[y * 28 + x] = out[x * 28 + (27 - y)];
    out = next;
  }
  return out;
}

TEST(DriftSchedule, ParsesDefaultsAndPrintsCanonically) {
  EXPECT_EQ(parse_drift_schedule("none"), DriftSchedule{NoDrift{}});
  EXPECT_EQ(parse_drift_schedule(" none ( ) "), DriftSchedule{NoDrift{}});
  EXPECT_EQ(parse_drift_schedule("rotate"), DriftSchedule{Rotation{}});
  EXPECT_EQ(to_string(parse_drift_schedule(" rotate( every = 100 ,degrees=22.5 ) ")),
            "rotate(degrees=22.5, every=100)");
  EXPECT_EQ(to_string(parse_drift_schedule("class_incremental")),
            "class_incremental(groups=0-1/2-3/4-5/6-7/8-9, every=6000)");
  EXPECT_EQ(to_string(parse_drift_schedule("label_shift")),
            "label_shift(classes=0-1, mass=0.8, from=10000, to=30000)");
  EXPECT_EQ(to_string(parse_drift_schedule("permute")), "permute(from=20000)");
  const LabelShift shift{{3, 7, 1}, 0.5, 0, 100};
  EXPECT_EQ(std::get<LabelShift>(parse_drift_schedule("label_shift(classes=3-7-1, mass=0.5, "
                                                      "from=0, to=100)")
                                     .rule),
            shift);
  for (const std::string text :
       {"none", "rotate(degrees=-7.25, every=3)", "class_incremental(groups=9/0-3-5, every=10)",
        "label_shift(classes=4, mass=0, from=1, to=2)", "permute(from=0)"}) {
    EXPECT_EQ(to_string(parse_drift_schedule(text)), text);
  }
}

TEST(DriftSchedule, RefusesBadTextNamingTheScheduleAndTheReason) {
  const std::map<std::string, std::string> cases{
      {"rotat(degrees=90)",
       "drift schedule 'rotat(degrees=90)': unknown schedule 'rotat' (schedules: none, rotate, "
       "class_incremental, label_shift, permute) (did you mean 'rotate'?)"},
      {"rotate(degree=90)",
       "drift schedule 'rotate(degree=90)': rotate has no parameter 'degree' (parameters: "
       "degrees, every) (did you mean 'degrees'?)"},
      {"none(every=3)", "drift schedule 'none(every=3)': none takes no parameters ('every' given)"},
      {"rotate(every=0)", "drift schedule 'rotate(every=0)': rotate: every '0' is below 1"},
      {"rotate(every=2.5)",
       "drift schedule 'rotate(every=2.5)': rotate: every '2.5' is not an integer"},
      {"rotate(degrees=inf)",
       "drift schedule 'rotate(degrees=inf)': rotate: degrees 'inf' is not a finite number"},
      {"rotate(degrees=1",
       "drift schedule 'rotate(degrees=1': expected ')' at character 17, "
       "found the end"},
      {"rotate(every 2)",
       "drift schedule 'rotate(every 2)': expected '=' after 'every' at "
       "character 14, found '2'"},
      {"rotate(every=1, every=2)",
       "drift schedule 'rotate(every=1, every=2)': parameter 'every' is given twice"},
      {"rotate; none",
       "drift schedule 'rotate; none': expected '(' or the end at character 7, "
       "found ';'"},
      {"", "drift schedule '': expected a schedule name at character 1, found the end"},
      {"label_shift(mass=1.5)",
       "drift schedule 'label_shift(mass=1.5)': label_shift: mass '1.5' is not between 0 and 1"},
      {"label_shift(from=5, to=5)",
       "drift schedule 'label_shift(from=5, to=5)': label_shift: to (5) is not after from (5)"},
      {"label_shift(classes=1-1)",
       "drift schedule 'label_shift(classes=1-1)': label_shift: classes '1-1' names class 1 "
       "twice"},
      {"class_incremental(groups=0-1/1-2)",
       "drift schedule 'class_incremental(groups=0-1/1-2)': class_incremental: groups '0-1/1-2' "
       "puts class 1 in two groups"},
      {"class_incremental(groups=0-1//2)",
       "drift schedule 'class_incremental(groups=0-1//2)': class_incremental: groups '0-1//2' is "
       "not classes (non-negative integers) joined by '-'"},
      {"permute(from=-1)", "drift schedule 'permute(from=-1)': permute: from '-1' is below 0"},
  };
  for (const auto& [text, message] : cases)
    EXPECT_EQ(refusal([&] { parse_drift_schedule(text); }), message) << text;
}

TEST(FashionMnistStream, RefusesClassesTheDataLacksAndBadOptions) {
  EXPECT_EQ(refusal([] { stream("class_incremental(groups=0-1/2-12)"); }),
            "drift schedule 'class_incremental(groups=0-1/2-12, every=6000)': class_incremental: "
            "groups: class 12 is not a class of fashion-mnist (0 to 9)");
  EXPECT_EQ(refusal([] { stream("label_shift(classes=0-1-2-3-4-5-6-7-8-9)"); }),
            "drift schedule 'label_shift(classes=0-1-2-3-4-5-6-7-8-9, mass=0.8, from=10000, "
            "to=30000)': label_shift: classes names every class, so no mass is left to shift");
  EXPECT_EQ(refusal([] { stream("none", 0); }), "fashion-mnist t10k: length 0 is not positive");
  FashionMnistOptions o = options_with("none");
  o.sample_shape = {28, 28};
  EXPECT_EQ(refusal([&] { open_fashion_mnist_stream(o, t10k()); }),
            "fashion-mnist t10k: sample shape (28,28) is neither {784} nor {1, 28, 28}");
  o = options_with("none");
  o.split = "train";
  EXPECT_EQ(refusal([&] { open_fashion_mnist_stream(o, t10k()); }),
            "fashion-mnist train: the data given is the split 't10k'");
  o = options_with("none");
  o.step_ns = -1;
  EXPECT_EQ(refusal([&] { open_fashion_mnist_stream(o, t10k()); }),
            "fashion-mnist t10k: time0_ns and step_ns must not be negative");
  o = options_with("none");
  o.step_ns = std::int64_t{1} << 60;
  EXPECT_EQ(refusal([&] { open_fashion_mnist_stream(o, t10k()); }),
            "fashion-mnist t10k: the last sample's time overflows 64-bit nanoseconds");
  EXPECT_EQ(refusal([] { load_fashion_mnist("/usr/share/datasets/fashion-mnist", "val"); }),
            "fashion-mnist: split 'val' is neither train nor t10k");
  TempDir dir;
  EXPECT_EQ(refusal([&] { load_fashion_mnist(dir.file("missing"), "t10k"); }),
            "fashion-mnist: IDX file " + dir.file("missing") +
                "/t10k-images-idx3-ubyte.gz: cannot open: No such file or directory");
  EXPECT_EQ(refusal([] { stream("none")->read(9999, 2); }),
            "fashion-mnist t10k (seed 7, 10000 samples of shape (784), drift none, time "
            "1700000000000000000 + i * 1000000000 ns): cannot read 2 samples from 9999; the "
            "stream holds 10000");
}

TEST(FashionMnistStream, IsTheSameInEveryOpeningAndDependsOnTheSeed) {
  FashionMnistOptions o = options_with("rotate(degrees=10, every=50)");
  const auto a = open_fashion_mnist_stream(o);  // loads the files itself
  const auto b = open_fashion_mnist_stream(o, t10k());
  EXPECT_EQ(a->read(0, 300), b->read(0, 300));
  EXPECT_EQ(a->read(9000, 1000), b->read(9000, 1000));
  EXPECT_EQ(a->data_digest(), b->data_digest());
  EXPECT_EQ(a->data_digest().size(), 64u);
  o.seed = 8;
  const auto c = open_fashion_mnist_stream(o, t10k());
  EXPECT_NE(a->read(0, 300), c->read(0, 300));
  EXPECT_NE(a->data_digest(), c->data_digest());
  EXPECT_EQ(a->size(), 10000);
  FashionMnistOptions defaults;
  defaults.split = "t10k";
  EXPECT_EQ(open_fashion_mnist_stream(defaults, t10k())->size(), 10000);  // the split's size
  EXPECT_EQ(a->num_classes(), 10);
  EXPECT_EQ(a->sample_shape(), (std::vector<std::int64_t>{784}));
}

TEST(FashionMnistStream, ServesTheTrainSplitByDefault) {
  const auto s = open_fashion_mnist_stream(FashionMnistOptions{});
  EXPECT_EQ(s->size(), 60000);
  EXPECT_EQ(s->time_ns(59999), std::int64_t{1'700'000'000} * kSecond + 59999 * kSecond);
  const SampleBatchData b = s->read(59990, 10);
  EXPECT_EQ(b.rows, 10u);
  EXPECT_EQ(b.features.size(), 7840u);
  EXPECT_TRUE(s->describe().starts_with("fashion-mnist train (seed 0, 60000 samples"))
      << s->describe();
  EXPECT_NE(s->data_digest(), stream("none")->data_digest());
}

TEST(FashionMnistStream, ReadsSplitAcrossCallsEqualOneRead) {
  for (const std::string drift :
       {"none", "rotate(degrees=33, every=40)", "class_incremental(groups=0-1/2-3-4, every=60)",
        "label_shift(classes=5, mass=0.9, from=20, to=90)", "permute(from=130)"}) {
    const auto s = stream(drift, 25000);
    for (const auto& [first, n, m] : std::vector<std::tuple<int, int, int>>{
             {0, 1, 199}, {100, 50, 70}, {9990, 20, 15}, {24900, 60, 40}}) {
      EXPECT_EQ(concatenate({s->read(first, n), s->read(first + n, m)}), s->read(first, n + m))
          << drift << " at " << first;
    }
  }
}

TEST(FashionMnistStream, HasScaledPixelsLogicalTimeAndWrapsAround) {
  FashionMnistOptions o = options_with("none", 25000);
  o.time0_ns = 5 * kSecond;
  o.step_ns = 250'000'000;
  o.sample_shape = {1, 28, 28};
  const auto s = open_fashion_mnist_stream(o, t10k());
  const SampleBatchData b = s->read(9998, 4);
  EXPECT_EQ(b.sample_shape, (std::vector<std::int64_t>{1, 28, 28}));
  for (std::size_t k = 0; k < 4; ++k) {
    EXPECT_EQ(b.time_ns[k], 5 * kSecond + static_cast<std::int64_t>(9998 + k) * 250'000'000);
    EXPECT_EQ(s->time_ns(9998 + static_cast<std::int64_t>(k)), b.time_ns[k]);
  }
  const auto [lo, hi] = std::minmax_element(b.features.begin(), b.features.end());
  EXPECT_EQ(*lo, 0.0f);
  EXPECT_LE(*hi, 1.0f);
  // Every value is a byte over 255, as np.float32(byte) / 255.0 gives.
  for (const float v : b.features)
    EXPECT_EQ(v, static_cast<float>(std::lround(v * 255.0f)) / 255.0f);
  // The stream wraps around the split in the same order; only the time goes on.
  SampleBatchData again = s->read(19998, 4);
  EXPECT_EQ(again.features, b.features);
  EXPECT_EQ(again.labels, b.labels);
  EXPECT_EQ(again.time_ns[0], b.time_ns[0] + 10000 * std::int64_t{250'000'000});
  // The shape is a view of the same values.
  EXPECT_EQ(stream("none", 25000)->read(9998, 4).features, b.features);
}

// The same samples without drift and under `drift`, which must not change their labels.
std::pair<SampleBatchData, SampleBatchData> plain_and_drifted(const std::string& drift,
                                                              std::int64_t first,
                                                              std::int64_t rows) {
  std::pair<SampleBatchData, SampleBatchData> out{stream("none")->read(first, rows),
                                                  stream(drift)->read(first, rows)};
  EXPECT_EQ(out.first.labels, out.second.labels) << drift;
  return out;
}

TEST(FashionMnistStream, RotatesByTheScheduleAndExactlyByQuarterTurns) {
  const auto [p, r] = plain_and_drifted("rotate(degrees=90, every=100)", 0, 500);
  for (std::size_t i = 0; i < 500; i += 7) {
    const int quarter_turns = static_cast<int>(i / 100) % 4;
    EXPECT_EQ(image(r, i), turned(image(p, i), quarter_turns)) << "sample " << i;
  }
  // A turn between quarter turns blends neighbours: it changes the image but keeps the values
  // within [0, 1], and before the first boundary the image is the plain one.
  const SampleBatchData half = stream("rotate(degrees=45, every=100)")->read(0, 200);
  EXPECT_EQ(image(half, 10), image(p, 10));
  EXPECT_NE(image(half, 110), image(p, 110));
  EXPECT_NE(image(half, 110), turned(image(p, 110), 1));
  for (const float v : half.features) {
    EXPECT_GE(v, 0.0f);
    EXPECT_LE(v, 1.0f);
  }
}

TEST(FashionMnistStream, ClassIncrementalShowsOnlyTheGroupsClasses) {
  const std::vector<std::vector<std::int64_t>> groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}};
  const auto s = stream("class_incremental(every=500)", 10000);
  const SampleBatchData b = s->read(0, 10000);
  std::map<std::int64_t, int> seen_in_block;
  for (std::size_t i = 0; i < b.rows; ++i) {
    const auto& group = groups[(i / 500) % 5];
    EXPECT_NE(std::find(group.begin(), group.end(), b.labels[i]), group.end()) << "sample " << i;
    if (i < 500) ++seen_in_block[b.labels[i]];
  }
  EXPECT_GT(seen_in_block[0], 150);
  EXPECT_GT(seen_in_block[1], 150);
  // The group's first stretch walks through its 2000 images without repeating one (but for the
  // few images Fashion-MNIST itself holds twice).
  std::set<std::vector<float>> distinct;
  for (std::size_t i = 0; i < 500; ++i)
    distinct.insert(image(b, i));
  EXPECT_GE(distinct.size(), 495u);
}

// Frequencies of each class over [first, end), compared with `prior` within four binomial
// standard deviations.
void expect_prior(const SampleBatchData& b, std::size_t first, std::size_t end,
                  const std::vector<double>& prior) {
  std::vector<double> count(10, 0);
  for (std::size_t i = first; i < end; ++i)
    count[static_cast<std::size_t>(b.labels[i])] += 1;
  const double n = static_cast<double>(end - first);
  for (std::size_t c = 0; c < 10; ++c) {
    const double sd = std::sqrt(prior[c] * (1 - prior[c]) / n);
    EXPECT_NEAR(count[c] / n, prior[c], 4 * sd)
        << "class " << c << " over " << first << ".." << end;
  }
}

TEST(FashionMnistStream, LabelShiftMovesTheClassPriorFromUniform) {
  const auto s = stream("label_shift(classes=0-1, mass=0.8, from=3000, to=5000)", 13000);
  const SampleBatchData b = s->read(0, 13000);
  expect_prior(b, 0, 3000, std::vector<double>(10, 0.1));
  std::vector<double> shifted(10, 0.2 / 8);
  shifted[0] = shifted[1] = 0.4;
  expect_prior(b, 5000, 13000, shifted);
  // Half-way the prior is half-way too.
  std::vector<double> middle(10, (0.1 + 0.2 / 8) / 2);
  middle[0] = middle[1] = (0.1 + 0.4) / 2;
  expect_prior(b, 3900, 4100, middle);
}

TEST(FashionMnistStream, PermutesPixelsFromItsStartOnly) {
  const auto [p, q] = plain_and_drifted("permute(from=300)", 250, 100);
  for (std::size_t i = 0; i < 100; ++i) {
    if (250 + i < 300) {
      EXPECT_EQ(image(q, i), image(p, i));
      continue;
    }
    std::vector<float> a = image(p, i);
    std::vector<float> b = image(q, i);
    EXPECT_NE(a, b);
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    EXPECT_EQ(a, b) << "sample " << 250 + i;
  }
}

TEST(FashionMnistStream, ReportsWhereItsScheduleChanges) {
  const auto at = [](std::int64_t sample) {
    return std::int64_t{1'700'000'000} * kSecond + sample * kSecond;
  };
  EXPECT_TRUE(stream("none")->change_points().empty());
  EXPECT_EQ(stream("rotate(degrees=15, every=2000)", 7000)->change_points(),
            (std::vector<ChangePoint>{{2000, at(2000), "rotation 15 degrees"},
                                      {4000, at(4000), "rotation 30 degrees"},
                                      {6000, at(6000), "rotation 45 degrees"}}));
  EXPECT_EQ(stream("class_incremental(groups=0-1/2-3, every=3000)", 7000)->change_points(),
            (std::vector<ChangePoint>{{0, at(0), "classes 0-1"},
                                      {3000, at(3000), "classes 2-3"},
                                      {6000, at(6000), "classes 0-1"}}));
  EXPECT_EQ(stream("label_shift(from=1000, to=5000)")->change_points(),
            (std::vector<ChangePoint>{{1000, at(1000), "label shift towards classes 0-1 begins"},
                                      {5000, at(5000), "classes 0-1 hold 0.8 of the prior"}}));
  EXPECT_EQ(stream("permute(from=400)")->change_points(),
            (std::vector<ChangePoint>{{400, at(400), "pixels permuted"}}));
  EXPECT_TRUE(stream("permute(from=20000)")->change_points().empty());  // past the end
}

TEST(ResolveRange, TakesSampleIndicesAndStreamTimeOffsets) {
  const auto s = stream("none");  // one sample a second
  EXPECT_EQ(resolve_range(*s, std::nullopt, std::nullopt), (SampleRange{0, 10000}));
  EXPECT_EQ(resolve_range(*s, "12", std::nullopt), (SampleRange{12, 10000}));
  EXPECT_EQ(resolve_range(*s, "90s", "2h"), (SampleRange{90, 7200}));
  EXPECT_EQ(resolve_range(*s, "1m", "10000"), (SampleRange{60, 10000}));
  EXPECT_EQ(resolve_range(*s, std::nullopt, "9999s"), (SampleRange{0, 9999}));
  FashionMnistOptions o = options_with("none");
  o.step_ns = 2 * kSecond;
  const auto slow = open_fashion_mnist_stream(o, t10k());
  EXPECT_EQ(resolve_range(*slow, "3s", "30m"), (SampleRange{2, 900}));  // at or after
}

TEST(ResolveRange, RefusesBadBoundsNamingTheFlag) {
  const auto s = stream("none");
  const std::string malformed =
      "' is neither a sample index (12000) nor a stream-time offset from the first sample (90s, "
      "30m, 2h)";
  for (const std::string bad : {"12x", "-3", "", "1.5s", "s", "+4", "3 s", "7d"})
    EXPECT_EQ(refusal([&] { resolve_range(*s, bad, std::nullopt); }),
              "--start '" + bad + malformed);
  EXPECT_EQ(refusal([&] { resolve_range(*s, std::nullopt, "2q"); }), "--stop '2q" + malformed);
  EXPECT_EQ(refusal([&] { resolve_range(*s, "99999999999999999999", std::nullopt); }),
            "--start '99999999999999999999' is too large");
  EXPECT_EQ(refusal([&] { resolve_range(*s, "9999999999999999h", std::nullopt); }),
            "--start '9999999999999999h' is too large");
  EXPECT_EQ(refusal([&] { resolve_range(*s, "500", "400"); }),
            "--stop 400 (sample 400) is at or before --start 500 (sample 500)");
  EXPECT_EQ(refusal([&] { resolve_range(*s, "60s", "1m"); }),
            "--stop 1m (sample 60) is at or before --start 60s (sample 60)");
  EXPECT_EQ(refusal([&] { resolve_range(*s, std::nullopt, "0"); }),
            "--stop 0 (sample 0) is at or before --start 0 (sample 0)");
  EXPECT_EQ(refusal([&] { resolve_range(*s, "10000", std::nullopt); }),
            "--start 10000 is past the end of the stream (10000 samples)");
  EXPECT_EQ(refusal([&] { resolve_range(*s, std::nullopt, "10001"); }),
            "--stop 10001 is past the end of the stream (10000 samples)");
  EXPECT_EQ(refusal([&] { resolve_range(*s, std::nullopt, "3h"); }),
            "--stop 3h is past the end of the stream (its last sample is 9999000000000 ns after "
            "its first)");
}

// A batch of `rows` samples of shape {2, 3} whose values name the sample.
SampleBatchData batch(std::int64_t first, std::size_t rows, std::int64_t t0, std::int64_t step) {
  SampleBatchData b;
  b.sample_shape = {2, 3};
  b.rows = rows;
  for (std::size_t k = 0; k < rows; ++k) {
    const auto i = first + static_cast<std::int64_t>(k);
    for (int d = 0; d < 6; ++d)
      b.features.push_back(static_cast<float>(i) + 0.1f * static_cast<float>(d));
    b.labels.push_back(i % 4);
    b.time_ns.push_back(t0 + static_cast<std::int64_t>(k) * step);
  }
  return b;
}

class RecordedStreamTest : public ::testing::Test {
 protected:
  // What a coordinator stores under its data directory, written with its own store.
  void SetUp() override {
    SegmentStore store = SegmentStore::open(dir.file("coordinator.sqlite"), dir.file("segments"));
    // Time stands still inside the second segment and jumps between segments.
    written = {batch(0, 5, 10 * kSecond, kSecond), batch(5, 3, 20 * kSecond, 0),
               batch(8, 7, 21 * kSecond, kSecond / 2)};
    for (const SampleBatchData& b : written)
      store.append("mnist-live", b);
    store.append("other", batch(0, 2, kSecond, kSecond));
  }

  std::map<std::string, std::string> file_digests() const {
    std::map<std::string, std::string> out;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
      if (entry.is_regular_file() && !entry.path().string().ends_with("-shm") &&
          !entry.path().string().ends_with("-wal")) {
        out[entry.path().string()] = sha256_file_hex(entry.path().string());
      }
    }
    return out;
  }

  TempDir dir;
  std::vector<SampleBatchData> written;
};

TEST_F(RecordedStreamTest, ReplaysRowsAndTimestampsExactlyAsStored) {
  const auto before = file_digests();
  const std::set<std::string> names = test::files_in(dir.path());
  const auto s = open_recorded_stream(dir.path().string(), "mnist-live");
  const SampleBatchData all = concatenate(written);
  EXPECT_EQ(s->size(), 15);
  EXPECT_EQ(s->sample_shape(), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(s->num_classes(), 4);
  EXPECT_EQ(s->read(0, 15), all);
  for (std::int64_t i = 0; i < 15; ++i)
    EXPECT_EQ(s->time_ns(i), all.time_ns[static_cast<std::size_t>(i)]) << "sample " << i;
  // Across both boundaries, in pieces that start and end inside segments.
  const SampleBatchData middle = s->read(3, 9);
  EXPECT_EQ(concatenate({s->read(3, 2), s->read(5, 4), s->read(9, 3)}), middle);
  EXPECT_EQ(middle.labels, (std::vector<std::int64_t>{3, 0, 1, 2, 3, 0, 1, 2, 3}));
  EXPECT_EQ(middle.features[0], 3.0f);
  EXPECT_EQ(middle.features[8 * 6 + 5], 11.5f);
  EXPECT_TRUE(s->change_points().empty());
  EXPECT_EQ(s->describe(), "recording of pipeline 'mnist-live' in " + dir.path().string() +
                               " (15 samples of shape (2,3) in 3 segments)");
  EXPECT_EQ(s->data_digest(),
            open_recorded_stream(dir.path().string(), "mnist-live")->data_digest());
  EXPECT_NE(s->data_digest(), open_recorded_stream(dir.path().string(), "other")->data_digest());
  // Times 10..14 s, 20 s three times, then 21 s on by half seconds: an offset stands for the
  // first sample at or after it.
  EXPECT_EQ(resolve_range(*s, "10s", "11"), (SampleRange{5, 11}));
  EXPECT_EQ(resolve_range(*s, "11s", "14s"), (SampleRange{8, 14}));
  EXPECT_EQ(refusal([&] { resolve_range(*s, std::nullopt, "15s"); }),
            "--stop 15s is past the end of the stream (its last sample is 14000000000 ns after "
            "its first)");
  EXPECT_EQ(refusal([&] { s->read(14, 2); }),
            "recording of pipeline 'mnist-live' in " + dir.path().string() +
                ": cannot read 2 samples from 14; the recording holds 15");
  EXPECT_EQ(file_digests(), before);
  // SQLite may add the index's side files for a reader; they hold no rows.
  std::set<std::string> after = test::files_in(dir.path());
  if (after.erase("coordinator.sqlite-wal") == 1) {
    EXPECT_EQ(std::filesystem::file_size(dir.file("coordinator.sqlite-wal")), 0u);
  }
  after.erase("coordinator.sqlite-shm");
  EXPECT_EQ(after, names);
  EXPECT_EQ(test::files_in(dir.file("segments")).size(), 4u);
}

TEST_F(RecordedStreamTest, RefusesMissingDirectoriesAndUnknownPipelines) {
  const std::string d = dir.path().string();
  EXPECT_EQ(refusal([&] { open_recorded_stream(dir.file("nope"), "mnist-live"); }),
            "recording " + dir.file("nope") + ": " + dir.file("nope") + " does not exist");
  EXPECT_EQ(refusal([&] { open_recorded_stream(dir.file("coordinator.sqlite"), "mnist-live"); }),
            "recording " + dir.file("coordinator.sqlite") + ": " + dir.file("coordinator.sqlite") +
                " is not a directory");
  EXPECT_EQ(refusal([&] { open_recorded_stream(d, "mnist-lve"); }),
            "recording " + d +
                ": no recorded stream of pipeline 'mnist-lve' (recorded: "
                "mnist-live, other) (did you mean 'mnist-live'?)");
  EXPECT_EQ(refusal([&] { open_recorded_stream(d + "/segments", "mnist-live"); }),
            "recording " + d +
                "/segments: holds no coordinator.sqlite; give the data directory "
                "of the coordinator that recorded the stream");
  TempDir empty;
  SegmentStore::open(empty.file("coordinator.sqlite"), empty.file("segments"));
  EXPECT_EQ(refusal([&] { open_recorded_stream(empty.path().string(), "mnist-live"); }),
            "recording " + empty.path().string() +
                ": the recording is empty: no pipeline stored a sample");
}

TEST_F(RecordedStreamTest, RefusesASegmentThatNoLongerMatchesItsDigest) {
  const auto s = open_recorded_stream(dir.path().string(), "mnist-live");
  const std::string digest =
      SegmentStore::open(dir.file("coordinator.sqlite"), dir.file("segments"))
          .segments("mnist-live")[1]
          .digest;
  const std::string path = dir.file("segments") + "/" + digest + ".batch";
  std::filesystem::permissions(path, std::filesystem::perms::owner_write,
                               std::filesystem::perm_options::add);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << "not a batch";
  const std::string message = refusal([&] { s->read(4, 3); });
  EXPECT_TRUE(message.starts_with("recording of pipeline 'mnist-live' in " + dir.path().string() +
                                  ": segment 1: segment file " + path + ": its bytes hash to "))
      << message;
}

}  // namespace
}  // namespace tv::fleet::pipelines
