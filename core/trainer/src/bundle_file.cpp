#include "bundle_file.hpp"

#include <charconv>
#include <fstream>

#include "trainvisor/trainer/trainer.hpp"

namespace tv::trainer {

namespace fs = std::filesystem;
using nlohmann::json;

BundleFile read_bundle_file(const fs::path& bundle, const std::string& flag) {
  const auto bad_bundle = [&flag](const fs::path& file, const std::string& reason) {
    return BadInput(flag + " " + file.string() + ": " + reason);
  };
  std::error_code ec;
  const std::uintmax_t size = fs::file_size(bundle, ec);
  if (ec) throw bad_bundle(bundle, "cannot read it: " + ec.message());
  std::ifstream in(bundle, std::ios::binary);
  std::string magic, length_line;
  if (!std::getline(in, magic) || magic != "TVBUNDLE1") {
    throw bad_bundle(bundle, "not a bundle (it does not start with TVBUNDLE1)");
  }
  std::uint64_t length = 0;
  std::getline(in, length_line);
  const auto [end, err] =
      std::from_chars(length_line.data(), length_line.data() + length_line.size(), length);
  if (err != std::errc() || end != length_line.data() + length_line.size()) {
    throw bad_bundle(bundle, "corrupt: no valid header length after TVBUNDLE1");
  }
  if (length > size) throw bad_bundle(bundle, "corrupt: its header is cut short");
  std::string text(length, '\0');
  in.read(text.data(), static_cast<std::streamsize>(length));
  if (static_cast<std::uint64_t>(in.gcount()) != length) {
    throw bad_bundle(bundle, "corrupt: its header is cut short");
  }
  const std::uint64_t offset = static_cast<std::uint64_t>(in.tellg());
  json header;
  try {
    header = json::parse(text);
    std::uint64_t listed = 0;
    for (const json& t : header.at("tensors"))
      listed += t.at("bytes").get<std::uint64_t>();
    const std::uint64_t present = size - offset;
    if (listed != present) {
      throw bad_bundle(bundle, "corrupt: its header lists " + std::to_string(listed) +
                                   " bytes of tensors, the file holds " + std::to_string(present));
    }
  } catch (const json::exception& e) {
    throw bad_bundle(bundle, std::string("corrupt header: ") + e.what());
  }
  return {header, offset};
}

}  // namespace tv::trainer
