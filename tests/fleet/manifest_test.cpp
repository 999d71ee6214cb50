// The manifest against the real plugins: a good manifest, the job-id golden vectors, and a
// catalogue of bad manifests, one case each, with their exact file:line:column messages.
#include "trainvisor/fleet/manifest.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cstdio>
#include <filesystem>
#include <fstream>

namespace tv::fleet {
namespace {

const PluginRegistry& plugins() {
  static const PluginRegistry r = PluginRegistry::load({TV_PLUGIN_DIR});
  return r;
}

const char* kGood = R"(# a small fleet
[hosts.gpu-box]
allow_jobs = ["cnn"]
priority = 10

[hosts.pi]
deny_jobs = ["cnn-deep"]

[[jobs]]
name = "mlp-baseline"
model = "mlp"
seed = 1
[jobs.params]
hidden = 128
[jobs.hyper]
training.optimizer.learning_rate = 0.1
"training/control/max_epochs" = 3
[[jobs.policies]]
name = "plateau"
patience = 2
factor = 0.5

[[jobs]]
name = "cnn-deep"
model = "cnn"
prefer_cuda = true
min_ram_gib = 2
allowed_hosts = ["pi", "gpu-box"]
max_attempts = 5
priority = 3
[jobs.data]
max_train_samples = 20000
[jobs.hyper.training.optimizer]
name = "adamw"
learning_rate = 1
)";

TEST(Manifest, GoodManifestParses) {
  const Manifest m = parse_manifest(kGood, "fleet.toml", plugins());
  ASSERT_EQ(m.hosts.size(), 2u);
  EXPECT_EQ(m.hosts[0].name, "gpu-box");
  EXPECT_EQ(m.hosts[0].allow_jobs, std::vector<std::string>{"cnn"});
  EXPECT_EQ(m.hosts[0].priority, 10);
  ASSERT_EQ(m.jobs.size(), 2u);
  const JobSpec& mlp = m.jobs[0];
  EXPECT_EQ(mlp.model, "mlp");
  EXPECT_EQ(mlp.mode, "train");
  EXPECT_EQ(std::get<double>(mlp.hyper.at("training/optimizer/learning_rate")), 0.1);
  EXPECT_EQ(std::get<std::int64_t>(mlp.hyper.at("training/control/max_epochs")), 3);
  EXPECT_EQ(std::get<std::int64_t>(mlp.model_params.at("hidden")), 128);
  ASSERT_EQ(mlp.policies.size(), 1u);
  EXPECT_EQ(mlp.policies[0].name, "plateau");
  EXPECT_EQ(std::get<double>(mlp.policies[0].params.at("factor")), 0.5);
  const JobSpec& cnn = m.jobs[1];
  EXPECT_TRUE(cnn.constraints.prefer_cuda);
  EXPECT_EQ(cnn.constraints.min_ram_gib, 2.0);
  EXPECT_EQ(cnn.max_attempts, 5);
  EXPECT_EQ(cnn.data.max_train_samples, 20000);
  // An integer written for a float knob is that float.
  EXPECT_EQ(std::get<double>(cnn.hyper.at("training/optimizer/learning_rate")), 1.0);
  EXPECT_EQ(mlp.id.size(), 64u);
  EXPECT_NE(mlp.id, cnn.id);
}

// The README's main job: the shipped example manifest loads against the real plugins and says
// what the README says it does (an mlp and a cnn job on Fashion-MNIST, each supervised).
TEST(Manifest, TheExampleManifestIsValid) {
  const Manifest m = load_manifest(TV_EXAMPLES_DIR "/fashion-mnist.toml", plugins());
  ASSERT_EQ(m.jobs.size(), 2u);
  const JobSpec& mlp = m.jobs[0];
  EXPECT_EQ(mlp.name, "mlp-plateau");
  EXPECT_EQ(mlp.model, "mlp");
  EXPECT_EQ(std::get<std::int64_t>(mlp.model_params.at("hidden")), 256);
  EXPECT_EQ(std::get<double>(mlp.hyper.at("training/optimizer/learning_rate")), 0.1);
  EXPECT_EQ(std::get<std::int64_t>(mlp.hyper.at("training/control/max_epochs")), 6);
  ASSERT_EQ(mlp.policies.size(), 2u);
  EXPECT_EQ(mlp.policies[0].name, "plateau");
  EXPECT_EQ(std::get<std::string>(mlp.policies[0].params.at("monitor")), "val_loss");
  EXPECT_EQ(std::get<double>(mlp.policies[0].params.at("min_lr")), 0.001);
  EXPECT_EQ(mlp.policies[1].name, "divergence");
  const JobSpec& cnn = m.jobs[1];
  EXPECT_EQ(cnn.name, "cnn-adamw");
  EXPECT_EQ(cnn.model, "cnn");
  EXPECT_TRUE(cnn.constraints.prefer_cuda);
  EXPECT_EQ(cnn.data.max_train_samples, 20000);
  EXPECT_EQ(std::get<std::string>(cnn.hyper.at("training/optimizer/name")), "adamw");
  ASSERT_EQ(cnn.policies.size(), 2u);
  EXPECT_EQ(cnn.policies[0].name, "grad_explosion");
  EXPECT_EQ(cnn.policies[1].name, "early_stopping");
  EXPECT_NE(mlp.id, cnn.id);
}

// Golden vectors: the canonical text is spelled out, and its sha256 was computed independently
// (printf '%s' TEXT | sha256sum).
TEST(Manifest, JobIdGoldenVectors) {
  const Manifest m = parse_manifest(kGood, "fleet.toml", plugins());
  EXPECT_EQ(m.jobs[0].canonical,
            R"({"allowed_hosts":[],"data":{"max_train_samples":0,"max_val_samples":0},)"
            R"("hyper":{"training/control/max_epochs":3,"training/optimizer/learning_rate":0.1},)"
            R"("mode":"train","model":"mlp","model_params":{"hidden":128},"seed":1})");
  EXPECT_EQ(m.jobs[0].id, "2d1458a81b78825a9acb85c72cd93937fdc9566bc38b32adbeeb84517a827af0");
  EXPECT_EQ(
      m.jobs[1].canonical,
      R"({"allowed_hosts":["gpu-box","pi"],"data":{"max_train_samples":20000,"max_val_samples":0},)"
      R"("hyper":{"training/optimizer/learning_rate":1.0,"training/optimizer/name":"adamw"},)"
      R"("mode":"train","model":"cnn","model_params":{},"seed":0})");
  EXPECT_EQ(m.jobs[1].id, "e50baa39fe33fc3983b73e9c6a90a392b469289f2a65515a21ecd5ea02e051dc");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

std::string id_of(const std::string& job_body) {
  return parse_manifest("[[jobs]]\nname = \"j\"\n" + job_body, "m.toml", plugins()).jobs.at(0).id;
}

TEST(Manifest, IdentityIsTheSpecNotItsSpelling) {
  const std::string base =
      id_of("model = \"tiny\"\n[jobs.hyper]\ntraining.optimizer.learning_rate = 0.1\n");
  EXPECT_EQ(base,
            id_of("model = \"tiny\"\n[jobs.hyper.training.optimizer]\nlearning_rate = 0.100\n"));
  EXPECT_EQ(base,
            id_of("model = \"tiny\"\n[jobs.hyper]\n\"training/optimizer/learning_rate\" = 1e-1\n"));
  EXPECT_EQ(
      base,
      id_of("model = \"tiny\"\npriority = 9\nmax_attempts = 7\n[jobs.hyper]\n"
            "training.optimizer.learning_rate = 0.1\n[[jobs.policies]]\nname = \"divergence\"\n"));
  EXPECT_NE(base,
            id_of("model = \"tiny\"\n[jobs.hyper]\ntraining.optimizer.learning_rate = 0.2\n"));
  EXPECT_NE(
      base,
      id_of("model = \"tiny\"\nseed = 1\n[jobs.hyper]\ntraining.optimizer.learning_rate = 0.1\n"));
  EXPECT_NE(base, id_of("model = \"mlp\"\n[jobs.hyper]\ntraining.optimizer.learning_rate = 0.1\n"));
}

struct BadCase {
  const char* name;
  const char* text;
  const char* message;
};

class BadManifest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadManifest, IsRefusedWithPosition) {
  const BadCase& c = GetParam();
  try {
    parse_manifest(c.text, "bad.toml", plugins());
    FAIL() << "accepted";
  } catch (const ManifestError& e) {
    ASSERT_FALSE(e.diagnostics().empty());
    EXPECT_EQ(e.diagnostics()[0], c.message) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Catalogue, BadManifest,
    ::testing::Values(
        BadCase{"syntax", "[[jobs]\nname = 1",
                "bad.toml:1:8: Error while parsing table header: expected ']', saw '\\n'"},
        BadCase{"unknown_model", "[[jobs]]\nname = \"a\"\nmodel = \"mpl\"\n",
                "bad.toml:3:9: job 'a': no model plugin named 'mpl' (did you mean 'mlp'?); loaded: "
                "cnn, mlp, tiny"},
        BadCase{"missing_model", "[[jobs]]\nname = \"a\"\n",
                "bad.toml:1:1: job 'a' has no 'model' (or 'trainer', a command to run)"},
        BadCase{"missing_name", "[[jobs]]\nmodel = \"mlp\"\n",
                "bad.toml:1:1: jobs[1] has no 'name'"},
        BadCase{"misspelt_hyper",
                "[[jobs]]\nname = \"cnn-oracle\"\nmodel = "
                "\"cnn\"\n[jobs.hyper]\ntraining.optimizer.learning_rat = 0.1\n",
                "bad.toml:5:20: job 'cnn-oracle': hyperparameter 'training/optimizer/learning_rat' "
                "is not a trainer knob (did you mean 'training/optimizer/learning_rate'?)"},
        BadCase{"hyper_wrong_type",
                "[[jobs]]\nname = \"a\"\nmodel = "
                "\"tiny\"\n[jobs.hyper]\ntraining.control.batch_size = \"big\"\n",
                "bad.toml:5:31: job 'a': hyperparameter 'training/control/batch_size': expects "
                "int64, got \"big\""},
        BadCase{"hyper_out_of_range",
                "[[jobs]]\nname = \"a\"\nmodel = "
                "\"tiny\"\n[jobs.hyper]\ntraining.optimizer.learning_rate = 50.0\n",
                "bad.toml:5:36: job 'a': hyperparameter 'training/optimizer/learning_rate': 50 is "
                "above the maximum 10"},
        BadCase{"hyper_not_allowed",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[jobs.hyper]\ntraining.optimizer.name = "
                "\"lion\"\n",
                "bad.toml:5:27: job 'a': hyperparameter 'training/optimizer/name': \"lion\" is not "
                "one of: sgd, adamw"},
        BadCase{
            "model_param_unknown",
            "[[jobs]]\nname = \"a\"\nmodel = \"mlp\"\n[jobs.params]\nhiden = 3\n",
            "bad.toml:5:1: job 'a': model 'mlp' has no parameter 'hiden' (did you mean 'hidden'?)"},
        BadCase{
            "model_param_range",
            "[[jobs]]\nname = \"a\"\nmodel = \"mlp\"\n[jobs.params]\nlayers = 99\n",
            "bad.toml:5:10: job 'a': model 'mlp' parameter 'layers': 99 is above the maximum 8"},
        BadCase{"unknown_policy",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[[jobs.policies]]\nname = \"platau\"\n",
                "bad.toml:5:8: job 'a': no policy plugin named 'platau' (did you mean 'plateau'?); "
                "loaded: divergence, early_stopping, grad_explosion, plateau"},
        BadCase{"policy_param",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[[jobs.policies]]\nname = "
                "\"plateau\"\npatiense = 3\n",
                "bad.toml:6:1: job 'a': policy 'plateau' has no parameter 'patiense' (did you mean "
                "'patience'?)"},
        BadCase{"policy_param_type",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[[jobs.policies]]\nname = "
                "\"plateau\"\nmode = 3\n",
                "bad.toml:6:8: job 'a': policy 'plateau' parameter 'mode': expects string, got 3"},
        BadCase{"unknown_job_key",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nrequire_cdua = true\n",
                "bad.toml:4:1: job 'a' has no key 'require_cdua' (did you mean 'require_cuda'?)"},
        BadCase{"constraint_type",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nrequire_cuda = \"yes\"\n",
                "bad.toml:4:16: job 'a': 'require_cuda' must be a bool, got a string"},
        BadCase{"negative_ram", "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nmin_ram_gib = -1\n",
                "bad.toml:4:15: job 'a': min_ram_gib must not be negative"},
        BadCase{
            "duplicate_job",
            "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n",
            "bad.toml:5:8: job 'a' is defined twice"},
        BadCase{
            "bad_job_name", "[[jobs]]\nname = \"a/b\"\nmodel = \"tiny\"\n",
            "bad.toml:2:8: job 'a/b': invalid name (letters, digits, '.', '_', '-'; at most 100)"},
        BadCase{"bad_mode", "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nmode = \"serve\"\n",
                "bad.toml:4:8: job 'a': mode 'serve' is not supported (modes: train)"},
        BadCase{"unknown_top_level", "[[job]]\nname = \"a\"\n",
                "bad.toml:1:3: the manifest has no key 'job' (did you mean 'jobs'?)"},
        BadCase{"host_unknown_key", "[hosts.pi]\nallow = [\"mlp\"]\n",
                "bad.toml:2:1: host 'pi' has no key 'allow' (did you mean 'allow_jobs'?)"},
        BadCase{"host_unknown_job", "[hosts.pi]\nallow_jobs = [\"mpl\"]\n",
                "bad.toml:2:14: host 'pi': 'mpl' is neither a job, a model nor a pipeline"},
        BadCase{"nan_constraint", "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nmin_ram_gib = nan\n",
                "bad.toml:4:15: job 'a': 'min_ram_gib' must be a finite number, got nan"},
        BadCase{"inf_constraint", "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nmin_vram_gib = -inf\n",
                "bad.toml:4:16: job 'a': 'min_vram_gib' must be a finite number, got inf"},
        BadCase{"nan_hyper",
                "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[jobs.hyper]\n"
                "training.optimizer.learning_rate = nan\n",
                "bad.toml:5:36: job 'a': hyperparameter 'training/optimizer/learning_rate': must "
                "be a finite number, got nan"},
        BadCase{
            "bad_allowed_host",
            "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nallowed_hosts = [\"ok\", \"a\\u001b[2J\"]\n",
            "bad.toml:4:24: job 'a': allowed_hosts: 'a\x1b[2J': invalid host name (letters, "
            "digits, '.', '_', '-'; not starting with '.' or '-'; at most 64)"},
        BadCase{"long_host_name",
                "[hosts.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
                "bad.toml:1:8: host "
                "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': "
                "invalid host name (letters, digits, '.', '_', '-'; not starting with '.' or '-'; "
                "at most 64)"},
        BadCase{
            "revision_is_reserved",
            "[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[jobs.hyper]\n\"trainvisor/revision\" = 3\n",
            "bad.toml:5:1: job 'a': hyperparameter 'trainvisor/revision' is not a trainer knob"}),
    [](const ::testing::TestParamInfo<BadCase>& i) { return std::string(i.param.name); });

TEST(Manifest, EveryProblemIsReportedAndNothingHalfLoaded) {
  try {
    parse_manifest(
        "[[jobs]]\nname = \"a\"\nmodel = \"mpl\"\n[[jobs]]\nname = \"b\"\nmodel = \"tiny\"\nseed = "
        "-3\n",
        "two.toml", plugins());
    FAIL();
  } catch (const ManifestError& e) {
    ASSERT_EQ(e.diagnostics().size(), 2u) << e.what();
    EXPECT_EQ(e.diagnostics()[1], "two.toml:7:8: job 'b': seed must not be negative");
  }
}

TEST(Manifest, MissingFileIsNamed) {
  try {
    load_manifest("/nonexistent/fleet.toml", plugins());
    FAIL();
  } catch (const ManifestError& e) {
    EXPECT_STREQ(e.what(), "/nonexistent/fleet.toml: cannot read the manifest");
  }
}

// The first diagnostic parse_manifest gives for `text`; "" when it is accepted.
std::string first_problem(const std::string& text) {
  try {
    parse_manifest(text, "deep.toml", plugins());
  } catch (const ManifestError& e) {
    return e.diagnostics().at(0);
  }
  return "";
}

std::string repeated(const std::string& unit, std::size_t n, const std::string& sep = "") {
  std::string out;
  for (std::size_t i = 0; i < n; ++i)
    out += (i ? sep : "") + unit;
  return out;
}

const std::string kDepthLimit =
    ": nested deeper than 32 levels (dotted key segments, tables and arrays together): the "
    "manifest's nesting limit is 32";

TEST(ManifestLimits, DeepDottedKeysAreRefusedBeforeParsing) {
  // 100k segments would overflow the stack inside toml++ (and in the hyper table's walk).
  EXPECT_EQ(first_problem("[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\n[jobs.hyper]\n" +
                          repeated("a", 100000, ".") + " = 1\n"),
            "deep.toml:5:65" + kDepthLimit);
  EXPECT_EQ(first_problem("[" + repeated("t", 100000, ".") + "]\n"),
            "deep.toml:1:64" + kDepthLimit);
  // Quoted segments and spaces around the dots count the same.
  EXPECT_EQ(first_problem("x = 1\n" + repeated("\"q\"", 40, " . ") + " = 2\n"),
            "deep.toml:2:193" + kDepthLimit);
}

TEST(ManifestLimits, DeepArraysAndInlineTablesAreRefused) {
  EXPECT_EQ(first_problem("x = " + repeated("[", 100000) + "\n"), "deep.toml:1:36" + kDepthLimit);
  EXPECT_EQ(first_problem("x = " + repeated("{a = ", 100000) + "\n"),
            "deep.toml:1:81" + kDepthLimit);
  // A key's depth adds to its value's: 20 segments then 20 brackets.
  EXPECT_EQ(first_problem(repeated("k", 20, ".") + " = " + repeated("[", 20) + "\n"),
            "deep.toml:1:55" + kDepthLimit);
}

TEST(ManifestLimits, NestingInsideStringsAndCommentsIsNotCounted) {
  const std::string deep = repeated("a", 200, ".") + repeated("[", 200);
  const std::string text = "# " + deep + "\n[[jobs]]\nname = \"a\" # " + deep +
                           "\nmodel = \"tiny\"\n[jobs.params]\n" +
                           "\n[hosts.pi]\nallow_jobs = [\"tiny\"] # " + deep + "\n";
  EXPECT_EQ(first_problem(text), "");
  EXPECT_EQ(first_problem("[hosts.pi]\nallow_jobs = ['" + deep + "', \"\"\"" + deep + "\n" + deep +
                          "\"\"\"]\n"),
            "deep.toml:2:14: host 'pi': '" + deep + "' is neither a job, a model nor a pipeline");
}

TEST(ManifestLimits, AManifestOverTheSizeLimitIsRefused) {
  const std::string big = "# " + std::string(kMaxManifestBytes, 'x') + "\n";
  EXPECT_EQ(first_problem(big), "deep.toml: the manifest is " + std::to_string(big.size()) +
                                    " bytes, over the limit of " +
                                    std::to_string(kMaxManifestBytes) + " bytes");
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tv_big_manifest_" + std::to_string(::getpid())))
          .string();
  std::ofstream(path) << big;
  try {
    load_manifest(path, plugins());
    ADD_FAILURE() << "accepted";
  } catch (const ManifestError& e) {
    EXPECT_EQ(e.diagnostics().at(0), path + ": the manifest is " + std::to_string(big.size()) +
                                         " bytes, over the limit of " +
                                         std::to_string(kMaxManifestBytes) + " bytes");
  }
  std::remove(path.c_str());
}

TEST(ManifestWarnings, AnAllowedHostNoHostHasIsWarnedNotRefused) {
  const Manifest m = parse_manifest(
      "[hosts.pi]\n[[jobs]]\nname = \"a\"\nmodel = \"tiny\"\nallowed_hosts = [\"pi\", "
      "\"ghost\"]\n",
      "w.toml", plugins());
  ASSERT_EQ(m.jobs.size(), 1u);
  EXPECT_EQ(m.jobs[0].constraints.allowed_hosts, (std::vector<std::string>{"pi", "ghost"}));
  const std::vector<std::string> w = manifest_warnings(m);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0],
            "w.toml:5:24: warning: job 'a': allowed_hosts names 'ghost', which is neither a "
            "[hosts.ghost] table nor a known worker: the job waits until a host of that name "
            "claims");
  EXPECT_TRUE(manifest_warnings(m, {"ghost"}).empty());  // a registered worker of that name
}

// ---------------------------------------------------------------------------------------------
// Command jobs: a script of the user's in a folder beside the manifest.

class CommandManifest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tv-command-manifest-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_ / "trainer" / "__pycache__");
    write("trainer/train.py", "print('training')\n");
    write("trainer/__pycache__/train.cpython-311.pyc", "cache");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write(const std::string& rel, const std::string& text) { std::ofstream(dir_ / rel) << text; }
  Manifest parse(const std::string& job_lines) {
    return parse_manifest("[[jobs]]\nname = \"py\"\n" + job_lines, (dir_ / "m.toml").string(),
                          plugins());
  }
  // The first diagnostic, after the manifest's path.
  std::string refusal(const std::string& job_lines) {
    try {
      parse(job_lines);
    } catch (const ManifestError& e) {
      const std::string d = e.diagnostics().at(0);
      return d.substr(d.find("m.toml:") + 7);
    }
    return "accepted";
  }
  std::filesystem::path dir_;
};

TEST_F(CommandManifest, ShipsTheWorkdirAndNamesItByDigest) {
  const std::string job =
      "trainer = [\"python3\", \"train.py\", \"--epochs\", \"2\"]\nworkdir = \"trainer\"\n"
      "[jobs.hyper]\ntraining.optimizer.learning_rate = 0.1\n";
  const Manifest m = parse(job);
  ASSERT_EQ(m.jobs.size(), 1u);
  const JobSpec& j = m.jobs[0];
  ASSERT_TRUE(j.command);
  EXPECT_EQ(j.model, "");
  EXPECT_EQ(j.command->argv, (std::vector<std::string>{"python3", "train.py", "--epochs", "2"}));
  ASSERT_EQ(m.shipped.size(), 1u);
  EXPECT_EQ(j.command->workdir, m.shipped[0].digest);
  EXPECT_EQ(sha256_hex(m.shipped[0].archive), m.shipped[0].digest);
  // The byte cache is not shipped; the script is.
  EXPECT_EQ(m.shipped[0].archive.find("cpython-311"), std::string::npos);
  EXPECT_NE(m.shipped[0].archive.find("print('training')"), std::string::npos);
  EXPECT_NE(j.canonical.find("\"trainer\":{\"argv\":[\"python3\",\"train.py\",\"--epochs\",\"2\"]"),
            std::string::npos)
      << j.canonical;
  // A changed cache leaves the job as it is; a changed script makes it another job.
  write("trainer/__pycache__/train.cpython-311.pyc", "other cache");
  EXPECT_EQ(parse(job).jobs[0].id, j.id);
  write("trainer/train.py", "print('training, changed')\n");
  EXPECT_NE(parse(job).jobs[0].id, j.id);
}

TEST_F(CommandManifest, AHostWorkdirIsTakenAsGiven) {
  const Manifest m =
      parse("trainer = [\"python3\", \"train.py\"]\nhost_workdir = \"/srv/trainers/py\"\n");
  ASSERT_TRUE(m.jobs[0].command);
  EXPECT_EQ(m.jobs[0].command->host_workdir, "/srv/trainers/py");
  EXPECT_TRUE(m.shipped.empty());
  // A program looked up on the host's PATH needs no folder.
  EXPECT_TRUE(parse("trainer = [\"my-trainer\", \"--fast\"]\n").jobs[0].command);
}

TEST_F(CommandManifest, BadCommandJobsAreRefusedWithPosition) {
  EXPECT_EQ(refusal("trainer = []\n"),
            "3:11: job 'py': 'trainer' must be a non-empty array of strings (the command)");
  EXPECT_EQ(refusal("trainer = [\"python3\", 3]\n"),
            "3:23: job 'py': each 'trainer' argument must be a non-empty string of at most 4096 "
            "bytes");
  EXPECT_EQ(
      refusal("trainer = [\"python3\", \"trian.py\"]\nworkdir = \"trainer\"\n"),
      "3:11: job 'py': 'trian.py' is not a file in its workdir " + (dir_ / "trainer").string());
  EXPECT_EQ(refusal("trainer = [\"python3\", \"train.py\"]\n"),
            "3:11: job 'py': 'train.py' is a relative path but the job has no 'workdir' or "
            "'host_workdir' to find it in");
  EXPECT_EQ(refusal("trainer = [\"python3\", \"train.py\"]\nworkdir = \"nowhere\"\n"),
            "4:11: job 'py': workdir: '" + (dir_ / "nowhere").string() + "' is not a folder");
  EXPECT_EQ(refusal("trainer = [\"python3\", \"t.py\"]\nworkdir = \"trainer\"\nhost_workdir = "
                    "\"/srv\"\n"),
            "5:16: job 'py': give 'workdir' (shipped from beside the manifest) or 'host_workdir' "
            "(present on the host), not both");
  EXPECT_EQ(refusal("trainer = [\"x\"]\nhost_workdir = \"srv\"\n"),
            "4:16: job 'py': 'host_workdir' must be an absolute path on the host");
  EXPECT_EQ(refusal("model = \"mlp\"\ntrainer = [\"x\"]\n"),
            "3:9: job 'py': a command job has no 'model' (give its script's settings as "
            "arguments of 'trainer')");
  EXPECT_EQ(refusal("model = \"mlp\"\nworkdir = \"trainer\"\n"),
            "4:11: job 'py': 'workdir' is for a command job (give 'trainer')");
  // Knobs are typed as for every job.
  EXPECT_EQ(
      refusal("trainer = [\"x\"]\n[jobs.hyper]\ntraining.optimizer.learning_rate = \"fast\"\n"),
      "5:36: job 'py': hyperparameter 'training/optimizer/learning_rate': expects float64, "
      "got \"fast\"");
  // What cannot travel in an archive is refused by name, not followed.
  std::filesystem::create_symlink("/etc/passwd", dir_ / "trainer" / "passwd");
  const std::string why = refusal("trainer = [\"python3\", \"train.py\"]\nworkdir = \"trainer\"\n");
  EXPECT_NE(why.find("workdir: '" + (dir_ / "trainer" / "passwd").string() +
                     "': only folders and regular files are packed (a symlink)"),
            std::string::npos)
      << why;
}

}  // namespace
}  // namespace tv::fleet
