#include "trainvisor/core/idx_reader.hpp"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

namespace tv {
namespace {

std::size_t element_bytes(std::uint8_t type) {
  switch (type) {
    case 0x08:
      return 1;  // unsigned byte
    case 0x09:
      return 1;  // signed byte
    case 0x0B:
      return 2;  // short
    case 0x0C:
      return 4;  // int
    case 0x0D:
      return 4;  // float
    case 0x0E:
      return 8;  // double
    default:
      return 0;
  }
}

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

}  // namespace

void read_idx_file(const std::string& path, plugin::IdxArray& out) {
  const auto fail = [&](const std::string& why) {
    throw std::runtime_error("IDX file " + path + ": " + why);
  };
  // gzopen reads plain files transparently, so uncompressed IDX files work too.
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) fail(std::string("cannot open: ") + std::strerror(errno));
  const auto read_exact = [&](void* buf, std::size_t n, const char* what) {
    std::size_t got = 0;
    while (got < n) {
      const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, 1u << 30));
      const int r = gzread(f.get(), static_cast<char*>(buf) + got, chunk);
      if (r < 0) {
        int code = 0;
        fail(std::string("corrupt compressed data: ") + gzerror(f.get(), &code));
      }
      if (r == 0) {
        fail(std::string("truncated in the ") + what + ": expected " + std::to_string(n) +
             " bytes, found " + std::to_string(got));
      }
      got += static_cast<std::size_t>(r);
    }
  };
  unsigned char magic[4];
  read_exact(magic, 4, "header");
  if (magic[0] != 0 || magic[1] != 0) fail("not an IDX file (bad magic number)");
  const std::size_t elem = element_bytes(magic[2]);
  if (elem == 0) fail("unsupported element type 0x" + std::to_string(magic[2]));
  const unsigned ndims = magic[3];
  if (ndims == 0 || ndims > 8) fail("implausible number of dimensions " + std::to_string(ndims));
  out.magic = (std::uint32_t{magic[2]} << 8) | magic[3];
  out.dims.assign(ndims, 0);
  std::size_t total = elem;
  for (unsigned i = 0; i < ndims; ++i) {
    unsigned char d[4];
    read_exact(d, 4, "header");
    out.dims[i] = (std::uint32_t{d[0]} << 24) | (std::uint32_t{d[1]} << 16) |
                  (std::uint32_t{d[2]} << 8) | d[3];
    total *= out.dims[i];
    if (total > (std::size_t{1} << 34)) fail("implausible size (over 16 GiB)");
  }
  out.bytes.resize(total);
  read_exact(out.bytes.data(), total, "data");
  char extra;
  const int r = gzread(f.get(), &extra, 1);
  if (r < 0) {
    int code = 0;
    fail(std::string("corrupt compressed data: ") + gzerror(f.get(), &code));
  }
  if (r > 0) fail("trailing bytes after the " + std::to_string(total) + " bytes of data");
}

bool LocalHostServices::read_idx(const std::string& path, plugin::IdxArray& out,
                                 std::string& error) const {
  try {
    read_idx_file(path, out);
    return true;
  } catch (const std::exception& e) {
    error = e.what();
    return false;
  }
}

}  // namespace tv
