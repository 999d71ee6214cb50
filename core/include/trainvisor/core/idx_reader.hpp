// Reads IDX files (the MNIST family's format), gzip-compressed or plain, and serves them to
// plugins as the host's read_idx service.
#pragma once

#include <string>

#include "trainvisor/plugin.hpp"

namespace tv {

// Reads `path` into `out`. Throws std::runtime_error naming the file and the reason: missing,
// not gzip/IDX, a wrong magic, an unsupported element type, truncated data or trailing bytes.
void read_idx_file(const std::string& path, plugin::IdxArray& out);

// The services the host gives every plugin.
class LocalHostServices final : public plugin::HostServices {
 public:
  bool read_idx(const std::string& path, plugin::IdxArray& out, std::string& error) const override;
};

}  // namespace tv
