// A coordinator's options for tests: its data under `dir`, the manifest `manifest_toml` written
// there, tokens "op" (operator) and "wk" (worker), and the build's plugins for validation.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "trainvisor/fleet/coordinator.hpp"

namespace tv::fleet::test {

inline CoordinatorOptions coordinator_options(const std::filesystem::path& dir,
                                              const std::string& manifest_toml) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "fleet.toml") << manifest_toml;
  CoordinatorOptions o;
  o.data_dir = (dir / "data").string();
  o.manifest_path = (dir / "fleet.toml").string();
  o.operator_token = "op";
  o.worker_token = "wk";
  o.plugin_dirs = {TV_PLUGIN_DIR};
  return o;
}

}  // namespace tv::fleet::test
