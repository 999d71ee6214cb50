// Names of shared-memory blocks. A block is named after the job it serves, so a trainer, its
// host daemon and an operator's `trainvisor shm inspect` find the same object
// (/dev/shm/<name>) from the job id alone.
#pragma once

#include <string>
#include <string_view>

namespace tv::shm {

inline constexpr std::string_view kBlockNamePrefix = "trainvisor.";
inline constexpr std::size_t kMaxJobIdBytes = 200;

// "trainvisor.<job_id>". Throws ShmError naming the id when it is empty, longer than
// kMaxJobIdBytes, does not start with a letter or digit, or holds a character other than
// letters, digits, '.', '_' and '-' (a '/' would escape /dev/shm).
std::string block_name_for_job(std::string_view job_id);

// Accepts a job id or a full block name (with the prefix); returns the block name.
std::string block_name_from_user(std::string_view name_or_job_id);

// Throws ShmError naming `name` unless it is kBlockNamePrefix followed by a valid job id.
void validate_block_name(std::string_view name);

}  // namespace tv::shm
