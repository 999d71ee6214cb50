// A bundle's framing, read without libtorch: "TVBUNDLE1\n<length>\n<JSON header>" then the raw
// tensors the header lists (checkpoint.hpp writes it). Shared by --replay-config, which needs the
// header only, and the loading of a bundle's weights (--initial-weights, --baseline).
//
// Private to tv_trainer. A pure function of the file; any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace tv::trainer {

struct BundleFile {
  nlohmann::json header;
  std::uint64_t tensors_offset = 0;  // where the first tensor's bytes start in the file
};

// The header, after checking that the tensors it lists fill the rest of the file exactly. A
// missing or corrupt file is a BadInput that starts with `flag` and the file's path.
BundleFile read_bundle_file(const std::filesystem::path& bundle, const std::string& flag);

}  // namespace tv::trainer
