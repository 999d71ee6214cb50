// A file only its owner may read (0600), for secrets: a host's credential, coordinator.env. It is
// never readable by others for a moment: the content goes to a new temporary name created with
// mode 0600 (O_CREAT|O_EXCL, whatever the umask), is flushed to disk, and is renamed over `path`,
// so a reader sees the old file or the whole new one.
//
// Errors: std::runtime_error naming the path and the system's reason; the temporary is removed.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tv::fleet {

inline void write_private_file(const std::string& path, std::string_view content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const auto fail = [&](const char* what) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw std::runtime_error("cannot " + std::string(what) + " " + path + ": " + why);
  };
  ::unlink(tmp.c_str());  // a leftover of a crashed writer with this pid
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail("create");
  for (std::size_t done = 0; done < content.size();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("flush");
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail("rename into");
}

}  // namespace tv::fleet
