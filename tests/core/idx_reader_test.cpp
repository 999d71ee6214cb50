// The IDX reader against facts about Debian's Fashion-MNIST files read by Python's gzip module
// (../shared/golden/fashion_mnist.json), and against broken files.
#include "trainvisor/core/idx_reader.hpp"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

namespace tv {
namespace {

const std::string kData = "/usr/share/datasets/fashion-mnist";

std::string hex_sha256(const std::vector<std::uint8_t>& header,
                       const std::vector<std::uint8_t>& body) {
  std::vector<std::uint8_t> all(header);
  all.insert(all.end(), body.begin(), body.end());
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(all.data(), all.size(), d, &n, EVP_sha256(), nullptr);
  std::string out;
  char buf[3];
  for (unsigned i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof buf, "%02x", d[i]);
    out += buf;
  }
  return out;
}

// The IDX header as it is in the file, for hashing the whole decompressed file.
std::vector<std::uint8_t> header_bytes(const plugin::IdxArray& a) {
  std::vector<std::uint8_t> h = {0, 0, static_cast<std::uint8_t>(a.magic >> 8),
                                 static_cast<std::uint8_t>(a.magic)};
  for (std::uint32_t d : a.dims) {
    for (int s = 24; s >= 0; s -= 8)
      h.push_back(static_cast<std::uint8_t>(d >> s));
  }
  return h;
}

TEST(IdxReader, AgreesWithTheGoldenFacts) {
  std::ifstream in(std::string(TV_GOLDEN_DIR) + "/fashion_mnist.json");
  ASSERT_TRUE(in) << "golden file missing";
  const auto golden = nlohmann::json::parse(in);
  for (const std::string split : {"train", "t10k"}) {
    const auto& g = golden[split];
    plugin::IdxArray images, labels;
    read_idx_file(kData + "/" + split + "-images-idx3-ubyte.gz", images);
    read_idx_file(kData + "/" + split + "-labels-idx1-ubyte.gz", labels);
    EXPECT_EQ(images.magic, g["image_magic"].get<std::uint32_t>());
    EXPECT_EQ(labels.magic, g["label_magic"].get<std::uint32_t>());
    ASSERT_EQ(images.dims.size(), 3u);
    EXPECT_EQ(images.dims[0], g["count"].get<std::uint32_t>());
    EXPECT_EQ(images.dims[1], g["rows"].get<std::uint32_t>());
    EXPECT_EQ(images.dims[2], g["cols"].get<std::uint32_t>());
    EXPECT_EQ(labels.dims, std::vector<std::uint32_t>{g["count"].get<std::uint32_t>()});
    EXPECT_EQ(hex_sha256(header_bytes(images), images.bytes),
              g["images_sha256_decompressed"].get<std::string>());
    EXPECT_EQ(hex_sha256(header_bytes(labels), labels.bytes),
              g["labels_sha256_decompressed"].get<std::string>());
    for (std::size_t i = 0; i < 20; ++i) {
      EXPECT_EQ(labels.bytes[i], g["first_20_labels"][i].get<int>()) << split << " label " << i;
    }
    std::map<int, int> counts;
    for (std::uint8_t l : labels.bytes)
      ++counts[l];
    for (const auto& [k, v] : g["label_counts"].items())
      EXPECT_EQ(counts[std::stoi(k)], v.get<int>());
    const std::size_t px = 28 * 28;
    for (std::size_t i = 0; i < 3; ++i) {
      const auto sum = std::accumulate(images.bytes.begin() + i * px,
                                       images.bytes.begin() + (i + 1) * px, std::uint64_t{0});
      EXPECT_EQ(sum, g["pixel_sum_of_first_3_images"][i].get<std::uint64_t>());
    }
    const double mean = std::accumulate(images.bytes.begin(), images.bytes.end(), 0.0) /
                        static_cast<double>(images.bytes.size());
    EXPECT_NEAR(mean, g["mean_pixel_value_0_255"].get<double>(), 1e-9);
  }
}

class IdxBroken : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("tv-idx-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string write(const std::string& name, const std::vector<std::uint8_t>& bytes, bool gzip) {
    const std::string p = (dir_ / name).string();
    if (gzip) {
      gzFile f = gzopen(p.c_str(), "wb");
      gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
      gzclose(f);
    } else {
      std::ofstream(p, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()),
                 static_cast<std::streamsize>(bytes.size()));
    }
    return p;
  }
  std::string error_of(const std::string& path) {
    plugin::IdxArray a;
    try {
      read_idx_file(path, a);
    } catch (const std::exception& e) {
      return e.what();
    }
    return "no error";
  }
  std::filesystem::path dir_;
};

TEST_F(IdxBroken, EveryDefectIsNamed) {
  const std::vector<std::uint8_t> good = {0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
  plugin::IdxArray a;
  read_idx_file(write("plain.idx", good, false), a);
  EXPECT_EQ(a.bytes, (std::vector<std::uint8_t>{7, 8, 9}));
  read_idx_file(write("ok.gz", good, true), a);
  EXPECT_EQ(a.dims, std::vector<std::uint32_t>{3});

  const std::string missing = (dir_ / "missing.gz").string();
  EXPECT_NE(error_of(missing).find("IDX file " + missing + ": cannot open"), std::string::npos);
  auto truncated = good;
  truncated.pop_back();
  EXPECT_NE(error_of(write("short.gz", truncated, true))
                .find("truncated in the data: expected 3 bytes, found 2"),
            std::string::npos);
  auto trailing = good;
  trailing.push_back(1);
  EXPECT_NE(error_of(write("long.gz", trailing, true)).find("trailing bytes"), std::string::npos);
  EXPECT_NE(error_of(write("magic.gz", {1, 2, 8, 1, 0, 0, 0, 1, 5}, true)).find("bad magic"),
            std::string::npos);
  EXPECT_NE(error_of(write("type.gz", {0, 0, 7, 1, 0, 0, 0, 1, 5}, true))
                .find("unsupported element type"),
            std::string::npos);
  // A gzip stream cut in the middle.
  const std::string gz = write("cut.gz", std::vector<std::uint8_t>(5000, 0), true);
  std::filesystem::resize_file(gz, std::filesystem::file_size(gz) / 2);
  const std::string err = error_of(gz);
  EXPECT_NE(err.find(gz), std::string::npos) << err;
}

}  // namespace
}  // namespace tv
