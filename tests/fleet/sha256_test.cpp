// The fleet's one SHA-256: known vectors, and hashing in pieces equals hashing at once.
#include "trainvisor/fleet/sha256.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstddef>
#include <string>

namespace tv::fleet {
namespace {

// FIPS 180-2, appendix B.1 and B.2.
constexpr const char* kAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kTwoBlocks =
    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
constexpr const char* kTwoBlocksText = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex("abc"), kAbc);
  EXPECT_EQ(sha256_hex(kTwoBlocksText), kTwoBlocks);
}

TEST(Sha256, InPiecesEqualsAtOnce) {
  Sha256 h;
  h.update("a");
  h.update("");
  h.update(std::as_bytes(std::span(std::string_view("bc"))));
  EXPECT_EQ(h.hex(), kAbc);

  const std::string text = kTwoBlocksText;
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    Sha256 pieces;
    pieces.update(std::string_view(text).substr(0, cut));
    pieces.update(std::string_view(text).substr(cut));
    EXPECT_EQ(pieces.hex(), kTwoBlocks) << "cut at " << cut;
  }
}

TEST(Sha256, AMovedHasherCarriesItsState) {
  Sha256 a;
  a.update("ab");
  Sha256 b = std::move(a);
  b.update("c");
  EXPECT_EQ(b.hex(), kAbc);
}

TEST(ToHex, TwoLowercaseCharactersAByte) {
  const std::array<std::byte, 4> bytes = {std::byte{0x00}, std::byte{0x0f}, std::byte{0xa5},
                                          std::byte{0xff}};
  EXPECT_EQ(to_hex(bytes), "000fa5ff");
  EXPECT_EQ(to_hex({}), "");
}

}  // namespace
}  // namespace tv::fleet
