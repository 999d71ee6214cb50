// A folder as one file: a POSIX ustar archive, how a command job's working directory travels
// from the manifest to its hosts and how its output directory comes back as the job's bundle
// (any `tar` reads it).
//
// pack_folder writes a deterministic archive: entries sorted by path, directories then files,
// mtime 0, owner 0, mode 0755 for directories and executables and 0644 for other files, so
// the same tree always gives the same bytes (and sha256). Only directories and regular files
// are packed; a symlink, socket or device refuses the pack, naming it, rather than being
// followed out of the folder or silently dropped. Names in `skip` (e.g. "__pycache__") are left
// out wherever they occur.
//
// unpack_archive accepts only what pack_folder writes: ustar headers with valid checksums,
// directories and regular files, relative paths without ".." components, inside the limits.
// Anything else throws ArchiveError naming the archive, the entry and the reason; the target
// folder may then hold the entries before it (the caller unpacks into a fresh folder).
//
// Pure functions of their arguments and the files they touch; any thread.
#pragma once

#include <cstdint>
#include <filesystem>
#include <iosfwd>
#include <stdexcept>
#include <string>
#include <vector>

namespace tv::fleet {

class ArchiveError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ArchiveLimits {
  std::uint64_t max_bytes = std::uint64_t{1} << 30;  // the files' contents together
  std::uint64_t max_entries = 100000;
};

// Packs `folder` into `out`; returns the number of bytes of file contents packed. Throws
// ArchiveError (a missing folder, a special file, a path over ustar's 255 bytes, over a limit)
// or std::filesystem::filesystem_error (an unreadable file).
std::uint64_t pack_folder(const std::filesystem::path& folder, std::ostream& out,
                          const std::vector<std::string>& skip = {}, const ArchiveLimits& = {});
// The same, into a string (a manifest's working directory, held until it is stored).
std::string pack_folder(const std::filesystem::path& folder,
                        const std::vector<std::string>& skip = {}, const ArchiveLimits& = {});
// The same, into `archive`, written under a temporary name and renamed when complete.
void pack_folder_to_file(const std::filesystem::path& folder, const std::filesystem::path& archive,
                         const std::vector<std::string>& skip = {}, const ArchiveLimits& = {});

// Unpacks `archive` (a file) into `into`, which is created if need be.
void unpack_archive(const std::filesystem::path& archive, const std::filesystem::path& into,
                    const ArchiveLimits& = {});

}  // namespace tv::fleet
