#include "atomic_file.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <system_error>

#include "trainvisor/fleet/replay/report.hpp"

namespace tv::fleet::replay {
namespace {

// Reports are read by people and tools other than the process that wrote them.
constexpr mode_t kFileMode = 0644;

[[noreturn]] void fail(const std::filesystem::path& path, const std::string& doing, int e) {
  throw ReportError("replay report " + path.string() + ": " + doing + ": " +
                    std::generic_category().message(e));
}

// 0, or the errno of the first step that failed; `doing` says which. Closes the stream.
int write_and_sync(std::FILE* out, std::string_view bytes, std::string& doing) {
  int e = 0;
  if (std::fwrite(bytes.data(), 1, bytes.size(), out) != bytes.size() || std::fflush(out) != 0) {
    e = errno;
    doing = "cannot write";
  } else if (::fchmod(::fileno(out), kFileMode) != 0 || ::fsync(::fileno(out)) != 0) {
    e = errno;
    doing = "cannot sync";
  }
  if (std::fclose(out) != 0 && e == 0) {
    e = errno;
    doing = "cannot close";
  }
  return e;
}

}  // namespace

void write_atomically(const std::filesystem::path& path, std::string_view bytes) {
  if (path.filename().empty()) fail(path, "not a file name", EISDIR);
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::string temp = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) fail(path, "cannot create a temp file in " + dir.string(), errno);
  std::FILE* out = ::fdopen(fd, "wb");
  if (out == nullptr) {
    const int e = errno;
    ::close(fd);
    ::unlink(temp.c_str());
    fail(path, "cannot open the temp file " + temp, e);
  }
  std::string doing;
  int e = write_and_sync(out, bytes, doing);
  if (e == 0 && ::rename(temp.c_str(), path.c_str()) != 0) {
    e = errno;
    doing = "cannot rename " + temp + " into place";
  }
  if (e != 0) {
    ::unlink(temp.c_str());
    fail(path, doing, e);
  }
}

}  // namespace tv::fleet::replay
