// Private to tv_replay_report: how its files reach the disk.
#pragma once

#include <filesystem>
#include <string_view>

namespace tv::fleet::replay {

// Writes `bytes` to a temp file in the directory of `path`, syncs it and renames it over `path`.
// On failure the temp file is removed, `path` is as it was, and ReportError names `path` and the
// reason ("No such file or directory" for a missing directory, "Permission denied", ...).
void write_atomically(const std::filesystem::path& path, std::string_view bytes);

}  // namespace tv::fleet::replay
