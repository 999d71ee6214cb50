// SHA-256 as lowercase hex: the fleet's identity for job specs, artifact bundles and stream
// segments. The one place the fleet hashes or writes bytes as hex (OpenSSL underneath).
//
// Errors: a file that cannot be read is std::runtime_error naming it; OpenSSL refusing to hash
// (out of memory) is a broken invariant and throws std::runtime_error too. A Sha256 belongs to one
// thread at a time; the free functions may be called from any thread.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace tv::fleet {

// Incremental hashing, for data that is never held whole (uploads, bundles on disk). Hashing in
// pieces gives the digest of the pieces joined: update("ab"); update("c") equals sha256_hex("abc").
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
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

// `bytes` as lowercase hex, two characters a byte (digests, random tokens).
std::string to_hex(std::span<const std::byte> bytes);

}  // namespace tv::fleet
