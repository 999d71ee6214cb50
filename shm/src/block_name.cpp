#include "trainvisor/shm/block_name.hpp"

#include <string>

#include "trainvisor/shm/value.hpp"

namespace tv::shm {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void validate_job_id(std::string_view id, std::string_view what) {
  const std::string shown = "invalid " + std::string(what) + " '" + std::string(id) + "'";
  if (id.empty()) throw ShmError("invalid " + std::string(what) + ": it is empty");
  if (id.size() > kMaxJobIdBytes) {
    throw ShmError(shown + ": " + std::to_string(id.size()) + " bytes, the limit is " +
                   std::to_string(kMaxJobIdBytes));
  }
  if (!is_alnum(id.front())) {
    throw ShmError(shown + ": it must start with a letter or digit");
  }
  for (std::size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') {
      throw ShmError(shown + ": character '" + std::string(1, c) + "' at position " +
                     std::to_string(i) + " is not allowed (letters, digits, '.', '_', '-')");
    }
  }
}

}  // namespace

std::string block_name_for_job(std::string_view job_id) {
  validate_job_id(job_id, "job id");
  return std::string(kBlockNamePrefix) + std::string(job_id);
}

std::string block_name_from_user(std::string_view name_or_job_id) {
  if (name_or_job_id.starts_with(kBlockNamePrefix)) {
    validate_block_name(name_or_job_id);
    return std::string(name_or_job_id);
  }
  return block_name_for_job(name_or_job_id);
}

void validate_block_name(std::string_view name) {
  if (!name.starts_with(kBlockNamePrefix)) {
    throw ShmError("invalid block name '" + std::string(name) + "': it must start with '" +
                   std::string(kBlockNamePrefix) + "' followed by a job id");
  }
  try {
    validate_job_id(name.substr(kBlockNamePrefix.size()), "job id");
  } catch (const ShmError& e) {
    throw ShmError("invalid block name '" + std::string(name) + "': " + e.what());
  }
}

}  // namespace tv::shm
