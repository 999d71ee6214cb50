// SHA-256 as lowercase hex: the fleet's identity for job specs and artifact bundles.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace tv::fleet {

// Incremental hashing, for data that is never held whole (uploads, bundles on disk).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  void update(std::span<const std::byte> bytes);
  void update(std::string_view text);
  std::string hex();  // finishes the digest; the object is spent afterwards

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string sha256_hex(std::string_view data);
// Reads the file in 1 MiB pieces. Throws std::runtime_error naming the file when it cannot.
std::string sha256_file_hex(const std::string& path);

}  // namespace tv::fleet
