// The manifest parser on arbitrary bytes: parse_manifest must accept or refuse with a
// ManifestError, never crash, overflow its stack or hang. The plugins are in-process stand-ins
// (a model and a policy with a schema of each parameter type), so that a run needs no plugin
// library and job validation reaches every branch: params, hyper knobs, policies, host lists.
#include <cstdint>
#include <string_view>

#include "trainvisor/fleet/manifest.hpp"

namespace {

using tv::plugin::Descriptor;
using tv::plugin::Kind;
using tv::plugin::ParamSpec;
using tv::plugin::ParamType;

std::vector<ParamSpec> schema() {
  return {{"hidden", ParamType::kInt64, std::int64_t{8}, 1.0, 4096.0, {}, "width"},
          {"rate", ParamType::kFloat64, 0.5, 0.0, 1.0, {}, "a rate"},
          {"act", ParamType::kString, std::string("relu"), {}, {}, {"relu", "tanh"}, "activation"},
          {"bias", ParamType::kBool, true, {}, {}, {}, "bias"}};
}

class FakeModel : public tv::plugin::ModelPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kModel, "tiny", "1.0.0", "a stand-in model", schema()};
  }
  std::unique_ptr<tv::plugin::Model> build(const tv::plugin::Params&, std::string& e) override {
    e = "not built in fuzzing";
    return nullptr;
  }
  std::unique_ptr<tv::plugin::Dataset> load_data(const tv::plugin::Params&,
                                                 const tv::plugin::DataOptions&,
                                                 const tv::plugin::HostServices&,
                                                 std::string& e) override {
    e = "no data in fuzzing";
    return nullptr;
  }
};

class FakePolicy : public tv::plugin::PolicyPlugin {
 public:
  Descriptor describe() const override {
    return {Kind::kPolicy, "plateau", "1.0.0", "a stand-in policy", schema()};
  }
  std::unique_ptr<tv::plugin::Policy> create(const tv::plugin::Params&, std::string& e) override {
    e = "not created in fuzzing";
    return nullptr;
  }
};

const tv::PluginRegistry& registry() {
  static const tv::PluginRegistry r = [] {
    tv::PluginRegistry out;
    out.add("fuzz:model", std::make_shared<FakeModel>());
    out.add("fuzz:policy", std::make_shared<FakePolicy>());
    return out;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const tv::fleet::Manifest m = tv::fleet::parse_manifest(text, "fuzz.toml", registry());
    tv::fleet::manifest_warnings(m);
    for (const tv::fleet::JobSpec& j : m.jobs) {
      if (tv::fleet::canonical_spec(j) != j.canonical) __builtin_trap();
    }
  } catch (const tv::fleet::ManifestError&) {
  }
  return 0;
}
