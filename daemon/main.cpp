// trainvisor: one binary, one subcommand per role.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "coordinator_command.hpp"
#include "host_command.hpp"
#include "local_command.hpp"
#include "ops_command.hpp"
#include "plugins_command.hpp"
#include "replay_command.hpp"
#include "shm_command.hpp"
#include "train_command.hpp"
#include "trainvisor/core/param_schema.hpp"
#include "trainvisor/core/version.hpp"
#include "trainvisor/fleet/manifest.hpp"
#include "trainvisor/shm/layout.hpp"
#include "trainvisor/shm/value.hpp"
#include "up_command.hpp"

namespace {

// Exit codes shared by every subcommand.
constexpr int kExitFailure = 1;   // the command ran and failed
constexpr int kExitBadInput = 2;  // the command was given something it cannot use

// When `argv` names a subcommand that does not exist at a level that requires one (`trainvisor
// stauts`, `trainvisor jobs shwo`), what to say instead of CLI11's "A subcommand is required":
// the unknown word and the closest name at that level. Empty when the words are not the fault.
std::string unknown_subcommand(CLI::App& app, int argc, char** argv) {
  CLI::App* level = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-' || level->get_require_subcommand_min() == 0) return {};
    const auto named = level->get_subcommands([&](CLI::App* s) { return s->check_name(word); });
    if (!named.empty()) {
      level = named.front();
      continue;
    }
    std::vector<std::string> names;
    for (const CLI::App* s : level->get_subcommands([](CLI::App*) { return true; }))
      names.push_back(s->get_name());
    const std::string close = tv::did_you_mean(word, names);
    if (!close.empty()) return "unknown command '" + word + "'; did you mean '" + close + "'?";
    std::string all;
    for (const auto& n : names)
      all += (all.empty() ? "" : ", ") + n;
    return "unknown command '" + word + "'; expected one of: " + all;
  }
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Trainvisor: supervise model training across hosts and retune it live"};
  app.require_subcommand(1);
  app.set_version_flag("--version", [] {
    return tv::version_report() + "shm layout: " + std::to_string(tv::shm::kLayoutMajor) + "." +
           std::to_string(tv::shm::kLayoutMinor);
  });
  tv::cli::add_coordinator_command(app);
  tv::cli::add_host_command(app);
  tv::cli::add_trainer_exec_command(app);
  tv::cli::add_local_command(app);
  tv::cli::add_ops_commands(app);
  tv::cli::add_plugins_commands(app);
  tv::cli::add_replay_command(app);
  tv::cli::add_shm_commands(app);
  tv::cli::add_train_command(app);
  tv::cli::add_up_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a subcommand that finished with its own exit code
  } catch (const CLI::ParseError& e) {
    if (const std::string why = unknown_subcommand(app, argc, argv); !why.empty()) {
      std::cerr << "trainvisor: " << why << "\n";
      return kExitBadInput;
    }
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  } catch (const tv::shm::ShmError& e) {
    std::cerr << "trainvisor: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::invalid_argument& e) {
    std::cerr << "trainvisor: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const tv::fleet::ManifestError& e) {
    std::cerr << "trainvisor: error: invalid manifest:\n" << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::cerr << "trainvisor: error: " << e.what() << "\n";
    return kExitFailure;
  }
  return 0;
}
