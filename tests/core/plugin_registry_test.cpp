#include "trainvisor/core/plugin_registry.hpp"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "refusing_drift_statistics.hpp"
#include "trainvisor/core/trigger_services.hpp"

namespace tv {
namespace {

using namespace tv::plugin;
namespace fs = std::filesystem;

// A fresh directory of this test's own, removed with everything in it at the end: no other test
// scans it, and it scans no other test's files.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tv-plugin-registry-test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// Copies a built test plugin (from the test-plugins folder) into `dir`, under its own name.
std::string copy_test_plugin(const std::string& file, const fs::path& dir) {
  fs::copy_file(fs::path(TV_TEST_PLUGIN_DIR) / file, dir / file);
  return (dir / file).string();
}

std::map<std::string, std::string> errors_by_file(const PluginRegistry& r) {
  std::map<std::string, std::string> out;
  for (const auto& e : r.errors())
    out[std::filesystem::path(e.path).filename()] = e.reason;
  return out;
}

class PluginRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A file that merely has the name of a library, in a folder of its own (the test-plugins
    // folder is scanned by other tests too).
    own_dir_ = new TempDir;
    std::ofstream(own_dir_->path() / "libnot_a_library.so") << "just text\n";
    registry_ = new PluginRegistry(
        PluginRegistry::load({TV_TEST_PLUGIN_DIR, own_dir_->str(), "/nonexistent/dir"}));
  }
  static void TearDownTestSuite() { delete own_dir_; }
  static PluginRegistry* registry_;
  static TempDir* own_dir_;
};
PluginRegistry* PluginRegistryTest::registry_ = nullptr;
TempDir* PluginRegistryTest::own_dir_ = nullptr;

TEST_F(PluginRegistryTest, GoodPluginsLoadDespiteBrokenNeighbours) {
  const PluginRegistry& r = *registry_;
  ASSERT_NE(r.find("test_policy"), nullptr);
  ASSERT_NE(r.find("test_trigger"), nullptr);
  EXPECT_EQ(r.find("test_policy")->descriptor.kind, Kind::kPolicy);
  EXPECT_EQ(r.plugins().size(), 2u);
  // The policy really works across the boundary.
  std::string error;
  auto policy =
      r.policy("test_policy").create({{"bound", 1.0}, {"mode", std::string("cap")}}, error);
  ASSERT_NE(policy, nullptr) << error;
  std::vector<TelemetryPoint> h(1);
  h[0].loss = 5;
  const Decision d = policy->observe({h, 0, {}, {}});
  ASSERT_EQ(d.writes.size(), 1u);
  EXPECT_EQ(std::get<double>(d.writes[0].value), 0.001);
  const test::RefusingDriftStatistics drift;
  const HostTriggerServices services(r, drift);
  auto trigger = services.create_trigger("test_trigger", {{"samples", "3"}}, error);
  ASSERT_NE(trigger, nullptr) << error;
  const std::vector<float> features(4, 0.5f);
  const std::vector<std::int64_t> times = {10, 20};
  TriggerDecision decision;
  ASSERT_TRUE(trigger->observe({features, 2, 2, times, {}}, decision, error));
  EXPECT_FALSE(decision.fired());
  ASSERT_TRUE(trigger->observe({features, 2, 2, times, {}}, decision, error));
  ASSERT_EQ(decision.evaluations.size(), 1u);
  EXPECT_EQ(decision.evaluations[0].row, 0u);
}

TEST_F(PluginRegistryTest, EachBrokenPluginIsRefusedWithItsReason) {
  const auto e = errors_by_file(*registry_);
  const auto expect = [&](const std::string& file, const std::string& part) {
    ASSERT_TRUE(e.count(file)) << file << " was not refused";
    EXPECT_NE(e.at(file).find(part), std::string::npos) << file << ": " << e.at(file);
  };
  expect("libwrong_abi.so", "built for plugin ABI version " + std::to_string(kAbiVersion + 1) +
                                "; this host speaks version " + std::to_string(kAbiVersion));
  expect("libmissing_factory.so", "does not export 'trainvisor_plugin_factory'");
  expect("libthrowing_factory.so", "factory threw: factory exploded");
  expect("libthrowing_constructor.so", "constructor threw: cannot find my model weights");
  expect("libnull_factory.so", "factory returned no plugin: license check failed");
  expect("libbad_schema.so", "parameter 'patience': invalid default: -3 is below the minimum 0");
  expect("libwrong_interface.so", "declares kind model but does not implement its interface");
  expect("libnot_a_library.so", "not a loadable shared library");
  // libdup_policy.so sorts before libgood_policy.so, so the good one is the duplicate.
  expect("libgood_policy.so", "duplicate plugin name 'test_policy': already loaded from");
  EXPECT_EQ(e.size(), 9u);
  for (const auto& err : registry_->errors()) {
    EXPECT_EQ(err.message().rfind(err.path, 0), 0u) << "message must start with the file";
  }
}

TEST_F(PluginRegistryTest, LookupsNameWhatIsThere) {
  try {
    registry_->policy("test_polcy");
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("no policy plugin named 'test_polcy'"), std::string::npos) << m;
    EXPECT_NE(m.find("did you mean 'test_policy'?"), std::string::npos) << m;
  }
  try {
    registry_->model("test_trigger");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'test_trigger' is a trigger plugin"), std::string::npos);
  }
  try {
    registry_->policy("bad_schema");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("refused: "), std::string::npos) << e.what();
  }
}

// --------------------------------------------------------------------------------------------
// Where plugins are looked for: $TRAINVISOR_PLUGIN_PATH, then the install's and the build's
// folders next to the running binary (here build/bin/tv_core_tests, so the prefix is build/).

// Sets (or, with nullopt, unsets) TRAINVISOR_PLUGIN_PATH for one test and restores it after.
class PluginPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* old = std::getenv("TRAINVISOR_PLUGIN_PATH")) saved_ = old;
  }
  void TearDown() override { set_path(saved_); }
  static void set_path(const std::optional<std::string>& value) {
    if (value) {
      ::setenv("TRAINVISOR_PLUGIN_PATH", value->c_str(), 1);
    } else {
      ::unsetenv("TRAINVISOR_PLUGIN_PATH");
    }
  }
  // The folders next to the binary: <prefix>/lib/trainvisor/plugins, then <prefix>/plugins.
  static std::vector<std::string> binary_dirs() {
    const fs::path prefix = fs::path(TV_TEST_PLUGIN_DIR).parent_path();
    return {(prefix / "lib" / "trainvisor" / "plugins").string(), (prefix / "plugins").string()};
  }
  // The registry of the path's own entries only: the binary's folders hold the real plugins.
  static PluginRegistry load_path_entries(std::size_t count) {
    std::vector<std::string> dirs = default_plugin_dirs();
    EXPECT_EQ(dirs.size(), count + 2);
    dirs.resize(count);
    return PluginRegistry::load(dirs);
  }

 private:
  std::optional<std::string> saved_;
};

TEST_F(PluginPathTest, WithoutTheVariableOnlyTheInstallAndBuildFolders) {
  set_path(std::nullopt);
  EXPECT_EQ(default_plugin_dirs(), binary_dirs());
  set_path("");
  EXPECT_EQ(default_plugin_dirs(), binary_dirs());
}

TEST_F(PluginPathTest, TheVariablesEntriesComeFirstInTheirOrderEmptyOnesDropped) {
  set_path("/opt/a::/opt/b:");
  std::vector<std::string> expected = {"/opt/a", "/opt/b"};
  for (const std::string& d : binary_dirs())
    expected.push_back(d);
  EXPECT_EQ(default_plugin_dirs(), expected);
}

TEST_F(PluginPathTest, APluginIsFoundThroughTheVariableAndTheFirstEntryWins) {
  const TempDir first, missing_parent, second;
  const std::string good = copy_test_plugin("libgood_policy.so", first.path());
  const std::string dup = copy_test_plugin("libdup_policy.so", second.path());
  const std::string missing = (missing_parent.path() / "absent").string();

  set_path(first.str() + ":" + missing + ":" + second.str());
  PluginRegistry r = load_path_entries(3);
  ASSERT_NE(r.find("test_policy"), nullptr);
  EXPECT_EQ(r.find("test_policy")->path, good);
  EXPECT_EQ(r.find("test_policy")->descriptor.version, "1.0.0");
  ASSERT_EQ(r.errors().size(), 1u);  // the missing entry is skipped without an error
  EXPECT_EQ(r.errors()[0].message(),
            dup + ": duplicate plugin name 'test_policy': already loaded from " + good);

  set_path(second.str() + ":" + first.str());
  r = load_path_entries(2);
  ASSERT_NE(r.find("test_policy"), nullptr);
  EXPECT_EQ(r.find("test_policy")->path, dup);
  EXPECT_EQ(r.find("test_policy")->descriptor.version, "2.0.0");
}

TEST_F(PluginPathTest, AnEntryThatIsAFileIsAnErrorNamingIt) {
  const TempDir dir;
  const std::string file = copy_test_plugin("libgood_policy.so", dir.path());
  set_path(file);
  const PluginRegistry r = load_path_entries(1);
  EXPECT_TRUE(r.plugins().empty());
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors()[0].message(),
            file + ": not a directory (a plugin path names folders of .so files)");
}

TEST_F(PluginPathTest, AnEntryThatCannotBeReadIsAnErrorNamingIt) {
  const TempDir dir;
  const fs::path loop = dir.path() / "loop";
  fs::create_symlink(loop, loop);
  set_path(loop.string());
  const PluginRegistry r = load_path_entries(1);
  ASSERT_EQ(r.errors().size(), 1u);
  EXPECT_EQ(r.errors()[0].message(), loop.string() +
                                         ": cannot read the plugin directory: Too many levels "
                                         "of symbolic links");
}

// The registry's error for `dir`, loaded by a process that may not read it: this one, or as root
// (who reads every directory whatever its permissions) a child that has become nobody.
std::string error_loading_as_unprivileged(const std::string& dir) {
  const auto load = [&] {
    const PluginRegistry r = PluginRegistry::load({dir});
    return std::to_string(r.plugins().size()) + " plugins; " +
           (r.errors().empty() ? std::string("no error") : r.errors()[0].message());
  };
  if (::geteuid() != 0) return load();
  int out[2];
  if (::pipe(out) != 0) return "pipe failed";
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(out[0]);
    const gid_t nogroup = 65534;
    if (::setgroups(0, nullptr) != 0 || ::setresgid(nogroup, nogroup, nogroup) != 0 ||
        ::setresuid(65534, 65534, 65534) != 0) {
      ::_exit(3);
    }
    const std::string text = load();
    const bool written =
        ::write(out[1], text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::_exit(written ? 0 : 4);
  }
  ::close(out[1]);
  std::string text;
  char buf[512];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;)
    text.append(buf, static_cast<std::size_t>(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return "the unprivileged child failed, status " + std::to_string(status);
  }
  return text;
}

TEST_F(PluginPathTest, ADirectoryWithoutReadPermissionIsAnErrorNamingIt) {
  const TempDir dir;
  fs::permissions(dir.path(),
                  fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
  const fs::path locked = dir.path() / "locked";
  fs::create_directory(locked);
  copy_test_plugin("libgood_policy.so", locked);
  fs::permissions(locked, fs::perms::none);
  const std::string got = error_loading_as_unprivileged(locked.string());
  fs::permissions(locked, fs::perms::owner_all);
  EXPECT_EQ(got, "0 plugins; " + locked.string() +
                     ": cannot read the plugin directory: Permission denied");
}

TEST(ResolveParams, CompletesDefaultsAndRefusesBadValues) {
  const std::vector<ParamSpec> schema = {
      {"learning_rate", ParamType::kFloat64, 0.1, 0.0, 10.0, {}, ""},
      {"patience", ParamType::kInt64, std::int64_t{5}, 0.0, {}, {}, ""},
      {"mode", ParamType::kString, std::string("min"), {}, {}, {"min", "max"}, ""},
      {"dry_run", ParamType::kBool, false, {}, {}, {}, ""}};
  Params p = resolve_params(schema, {{"learning_rate", std::int64_t{1}}}, "policy 'x'");
  EXPECT_EQ(std::get<double>(p.at("learning_rate")), 1.0);  // int accepted for float
  EXPECT_EQ(std::get<std::int64_t>(p.at("patience")), 5);
  EXPECT_EQ(std::get<std::string>(p.at("mode")), "min");
  const auto error = [&](Params given) {
    try {
      resolve_params(schema, given, "policy 'x'");
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error({{"learning_rat", 0.1}}),
            "policy 'x' has no parameter 'learning_rat' (did you mean 'learning_rate'?)");
  EXPECT_EQ(error({{"lr", 0.1}}), "policy 'x' has no parameter 'lr'");
  EXPECT_EQ(error({{"patience", 1.5}}), "policy 'x' parameter 'patience': expects int64, got 1.5");
  EXPECT_EQ(error({{"learning_rate", 11.0}}),
            "policy 'x' parameter 'learning_rate': 11 is above the maximum 10");
  EXPECT_EQ(error({{"mode", std::string("median")}}),
            "policy 'x' parameter 'mode': \"median\" is not one of: min, max");
  EXPECT_EQ(error({{"dry_run", std::string("yes")}}),
            "policy 'x' parameter 'dry_run': expects bool, got \"yes\"");
}

TEST(ValidateDescriptor, NamesTheProblem) {
  Descriptor d{Kind::kPolicy, "ok_name", "1.0", "", {}};
  EXPECT_EQ(validate_descriptor(d), std::nullopt);
  d.name = "Bad Name";
  EXPECT_NE(validate_descriptor(d).value_or("").find("invalid plugin name 'Bad Name'"),
            std::string::npos);
  d.name = "ok";
  d.version = "";
  EXPECT_NE(validate_descriptor(d).value_or("").find("has no version"), std::string::npos);
  d.version = "1";
  d.params = {{"a", ParamType::kInt64, std::int64_t{1}, {}, {}, {}, ""},
              {"a", ParamType::kInt64, std::int64_t{1}, {}, {}, {}, ""}};
  EXPECT_NE(validate_descriptor(d).value_or("").find("parameter 'a': declared twice"),
            std::string::npos);
  d.params = {{"b", ParamType::kBool, std::int64_t{1}, {}, {}, {}, ""}};
  EXPECT_NE(validate_descriptor(d).value_or("").find("expects bool"), std::string::npos);
  d.params = {{"c", ParamType::kFloat64, 1.0, 2.0, 1.0, {}, ""}};
  EXPECT_NE(validate_descriptor(d).value_or("").find("min is above max"), std::string::npos);
  d.params = {{"d", ParamType::kInt64, std::int64_t{1}, {}, {}, {"x"}, ""}};
  EXPECT_NE(validate_descriptor(d).value_or("").find("allowed values on a int64"),
            std::string::npos);
}

}  // namespace
}  // namespace tv
