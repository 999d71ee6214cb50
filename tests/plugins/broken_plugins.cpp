// Deliberately broken test plugins, one per way a plugin can be refused. Each is built from this
// file with one TV_* definition.
#include <stdexcept>

#include "trainvisor/plugin.hpp"

namespace {

using namespace tv::plugin;

class MinimalPolicy final : public PolicyPlugin {
 public:
  Descriptor describe() const override {
#ifdef TV_BAD_SCHEMA
    // The default lies outside the declared range.
    return {Kind::kPolicy, "bad_schema", "1.0.0", "", {
              { "patience",
                ParamType::kInt64,
                std::int64_t{-3},
                0.0,
                100.0,
                {},
                "" }
            }};
#elif defined(TV_WRONG_INTERFACE)
    return {Kind::kModel, "wrong_interface", "1.0.0", "claims to be a model", {}};
#else
    return {Kind::kPolicy, "broken", "1.0.0", "", {}};
#endif
  }
  std::unique_ptr<Policy> create(const Params&, std::string& error) override {
    error = "not meant to run";
    return nullptr;
  }
};

#ifdef TV_THROWING_CONSTRUCTOR
class ThrowingPolicy final : public PolicyPlugin {
 public:
  ThrowingPolicy() { throw std::runtime_error("cannot find my model weights"); }
  Descriptor describe() const override { return {}; }
  std::unique_ptr<Policy> create(const Params&, std::string&) override { return nullptr; }
};
#endif

}  // namespace

#if defined(TV_BAD_SCHEMA) || defined(TV_WRONG_INTERFACE)
TRAINVISOR_PLUGIN(MinimalPolicy)
#elif defined(TV_THROWING_CONSTRUCTOR)
TRAINVISOR_PLUGIN(ThrowingPolicy)
#elif defined(TV_WRONG_ABI)
// What a plugin built against a future header would answer.
namespace tv_plugin_entry {
void factory(FactoryCall* call) noexcept {
  call->plugin_abi_version = kAbiVersion + 1;
}
}  // namespace tv_plugin_entry
BOOST_DLL_ALIAS(tv_plugin_entry::factory, trainvisor_plugin_factory)
#elif defined(TV_THROWING_FACTORY)
// A hand-written factory that lets an exception escape (the macro would have caught it).
namespace tv_plugin_entry {
void factory(FactoryCall* call) {
  call->plugin_abi_version = kAbiVersion;
  throw std::runtime_error("factory exploded");
}
}  // namespace tv_plugin_entry
BOOST_DLL_ALIAS(tv_plugin_entry::factory, trainvisor_plugin_factory)
#elif defined(TV_NULL_FACTORY)
namespace tv_plugin_entry {
void factory(FactoryCall* call) noexcept {
  call->plugin_abi_version = kAbiVersion;
  std::snprintf(call->error, sizeof call->error, "license check failed");
}
}  // namespace tv_plugin_entry
BOOST_DLL_ALIAS(tv_plugin_entry::factory, trainvisor_plugin_factory)
#elif defined(TV_MISSING_FACTORY)
// Exports a function, but not the factory alias.
extern "C" __attribute__((visibility("default"))) int trainvisor_something_else() {
  return 42;
}
#endif
