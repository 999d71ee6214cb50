#include "trainvisor/core/plugin_registry.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace tv {
namespace {

using namespace tv::plugin;

std::map<std::string, std::string> errors_by_file(const PluginRegistry& r) {
  std::map<std::string, std::string> out;
  for (const auto& e : r.errors())
    out[std::filesystem::path(e.path).filename()] = e.reason;
  return out;
}

class PluginRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // A file that merely has the name of a library.
    std::ofstream(std::string(TV_TEST_PLUGIN_DIR) + "/libnot_a_library.so") << "just text\n";
    registry_ = new PluginRegistry(PluginRegistry::load({TV_TEST_PLUGIN_DIR, "/nonexistent/dir"}));
  }
  static PluginRegistry* registry_;
};
PluginRegistry* PluginRegistryTest::registry_ = nullptr;

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
  const Decision d = policy->observe(h, 0, {});
  ASSERT_EQ(d.writes.size(), 1u);
  EXPECT_EQ(std::get<double>(d.writes[0].value), 0.001);
  auto trigger = r.trigger("test_trigger").create({{"samples", std::int64_t{3}}}, error);
  ASSERT_NE(trigger, nullptr);
  EXPECT_FALSE(trigger->observe({0, 2, {}}));
  EXPECT_TRUE(trigger->observe({0, 2, {}}));
}

TEST_F(PluginRegistryTest, EachBrokenPluginIsRefusedWithItsReason) {
  const auto e = errors_by_file(*registry_);
  const auto expect = [&](const std::string& file, const std::string& part) {
    ASSERT_TRUE(e.count(file)) << file << " was not refused";
    EXPECT_NE(e.at(file).find(part), std::string::npos) << file << ": " << e.at(file);
  };
  expect("libwrong_abi.so", "built for plugin ABI version 2; this host speaks version 1");
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
  EXPECT_EQ(validate_descriptor(d), "");
  d.name = "Bad Name";
  EXPECT_NE(validate_descriptor(d).find("invalid plugin name 'Bad Name'"), std::string::npos);
  d.name = "ok";
  d.version = "";
  EXPECT_NE(validate_descriptor(d).find("has no version"), std::string::npos);
  d.version = "1";
  d.params = {{"a", ParamType::kInt64, std::int64_t{1}, {}, {}, {}, ""},
              {"a", ParamType::kInt64, std::int64_t{1}, {}, {}, {}, ""}};
  EXPECT_NE(validate_descriptor(d).find("parameter 'a': declared twice"), std::string::npos);
  d.params = {{"b", ParamType::kBool, std::int64_t{1}, {}, {}, {}, ""}};
  EXPECT_NE(validate_descriptor(d).find("expects bool"), std::string::npos);
  d.params = {{"c", ParamType::kFloat64, 1.0, 2.0, 1.0, {}, ""}};
  EXPECT_NE(validate_descriptor(d).find("min is above max"), std::string::npos);
  d.params = {{"d", ParamType::kInt64, std::int64_t{1}, {}, {}, {"x"}, ""}};
  EXPECT_NE(validate_descriptor(d).find("allowed values on a int64"), std::string::npos);
}

}  // namespace
}  // namespace tv
