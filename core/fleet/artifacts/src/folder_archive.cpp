#include "trainvisor/fleet/folder_archive.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kBlock = 512;
// ustar's longest path: a 155-byte prefix, '/', a 100-byte name.
constexpr std::size_t kMaxPath = 255;

struct Entry {
  std::string path;  // relative, '/'-separated; a directory's without its trailing '/'
  bool directory = false;
  bool executable = false;
  std::uint64_t size = 0;
};

// An octal field of `width` bytes: digits, then NUL.
void octal(char* field, std::size_t width, std::uint64_t value) {
  std::string digits(width - 1, '0');
  for (std::size_t i = width - 1; i-- > 0 && value != 0; value >>= 3)
    digits[i] = static_cast<char>('0' + (value & 7));
  std::memcpy(field, digits.data(), width - 1);
  field[width - 1] = '\0';
}

std::array<char, kBlock> header_of(const Entry& e) {
  std::array<char, kBlock> h{};
  std::string name = e.path + (e.directory ? "/" : "");
  std::string prefix;
  if (name.size() > 100) {
    // Split at a '/' so that the name part fits in 100 bytes and the prefix in 155.
    const std::size_t cut = name.find('/', name.size() - 101);
    if (cut == std::string::npos || cut > 155 || name.size() - cut - 1 > 100)
      throw ArchiveError("'" + e.path + "': path too long for an archive (ustar keeps 255 bytes)");
    prefix = name.substr(0, cut);
    name = name.substr(cut + 1);
  }
  std::memcpy(h.data(), name.data(), name.size());
  octal(h.data() + 100, 8, e.directory || e.executable ? 0755 : 0644);
  octal(h.data() + 108, 8, 0);
  octal(h.data() + 116, 8, 0);
  octal(h.data() + 124, 12, e.size);
  octal(h.data() + 136, 12, 0);
  h[156] = e.directory ? '5' : '0';
  std::memcpy(h.data() + 257, "ustar", 6);
  std::memcpy(h.data() + 263, "00", 2);
  std::memcpy(h.data() + 345, prefix.data(), prefix.size());
  std::memset(h.data() + 148, ' ', 8);
  unsigned sum = 0;
  for (const char c : h)
    sum += static_cast<unsigned char>(c);
  octal(h.data() + 148, 7, sum);
  h[155] = ' ';
  return h;
}

bool skipped(const fs::path& p, const std::vector<std::string>& skip) {
  return std::find(skip.begin(), skip.end(), p.filename().string()) != skip.end();
}

// Every entry under `folder`, sorted by path; refuses special files.
std::vector<Entry> entries_of(const fs::path& folder, const std::vector<std::string>& skip,
                              const ArchiveLimits& limits) {
  if (!fs::is_directory(folder)) throw ArchiveError("'" + folder.string() + "' is not a folder");
  std::vector<Entry> out;
  std::uint64_t bytes = 0;
  for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator();
       ++it) {
    const fs::path& p = it->path();
    if (skipped(p, skip)) {
      it.disable_recursion_pending();
      continue;
    }
    const fs::file_status st = it->symlink_status();
    Entry e;
    e.path = p.lexically_relative(folder).generic_string();
    if (fs::is_directory(st)) {
      e.directory = true;
    } else if (fs::is_regular_file(st)) {
      e.size = fs::file_size(p);
      e.executable = (st.permissions() & fs::perms::owner_exec) != fs::perms::none;
      bytes += e.size;
    } else {
      throw ArchiveError("'" + p.string() + "': only folders and regular files are packed (" +
                         (fs::is_symlink(st) ? "a symlink" : "a special file") + ")");
    }
    if (out.size() >= limits.max_entries || bytes > limits.max_bytes) {
      throw ArchiveError("'" + folder.string() + "' is over the archive's limits (" +
                         std::to_string(limits.max_entries) + " entries, " +
                         std::to_string(limits.max_bytes) + " bytes)");
    }
    out.push_back(std::move(e));
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return out;
}

void copy_file_into(const fs::path& file, std::uint64_t size, std::ostream& out) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw ArchiveError("cannot read '" + file.string() + "'");
  std::array<char, 1 << 16> buf;
  std::uint64_t left = size;
  while (left > 0) {
    const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, buf.size()));
    if (!in.read(buf.data(), n)) throw ArchiveError("'" + file.string() + "' shrank while packed");
    out.write(buf.data(), n);
    left -= static_cast<std::uint64_t>(n);
  }
  const std::array<char, kBlock> zeros{};
  out.write(zeros.data(), static_cast<std::streamsize>((kBlock - size % kBlock) % kBlock));
}

// A header field's octal number; nullopt when it holds anything else.
std::optional<std::uint64_t> parse_octal(const char* field, std::size_t width) {
  std::uint64_t v = 0;
  std::size_t i = 0;
  while (i < width && field[i] == ' ')
    ++i;
  bool any = false;
  for (; i < width && field[i] >= '0' && field[i] <= '7'; ++i) {
    if (v > (std::uint64_t{1} << 60)) return std::nullopt;
    v = v * 8 + static_cast<std::uint64_t>(field[i] - '0');
    any = true;
  }
  for (; i < width; ++i) {
    if (field[i] != '\0' && field[i] != ' ') return std::nullopt;
  }
  return any ? std::optional<std::uint64_t>(v) : std::nullopt;
}

std::string field_text(const char* field, std::size_t width) {
  return std::string(field, strnlen(field, width));
}

// The entry's path, checked to stay inside the target folder.
std::string checked_path(const std::array<char, kBlock>& h, const std::string& where) {
  const std::string prefix = field_text(h.data() + 345, 155);
  std::string path = (prefix.empty() ? "" : prefix + "/") + field_text(h.data(), 100);
  while (!path.empty() && path.back() == '/')
    path.pop_back();
  if (path.empty()) throw ArchiveError(where + ": an entry has no name");
  if (path.front() == '/') throw ArchiveError(where + ": '" + path + "' is an absolute path");
  for (const auto& part : fs::path(path)) {
    if (part == ".." || part == ".")
      throw ArchiveError(where + ": '" + path + "' has a '" + part.string() + "' component");
  }
  for (const char c : path) {
    if (static_cast<unsigned char>(c) < 0x20)
      throw ArchiveError(where + ": an entry's path holds a control character");
  }
  return path;
}

}  // namespace

std::uint64_t pack_folder(const fs::path& folder, std::ostream& out,
                          const std::vector<std::string>& skip, const ArchiveLimits& limits) {
  std::uint64_t bytes = 0;
  for (const Entry& e : entries_of(folder, skip, limits)) {
    const auto h = header_of(e);
    out.write(h.data(), h.size());
    if (!e.directory) copy_file_into(folder / e.path, e.size, out);
    bytes += e.size;
  }
  const std::array<char, 2 * kBlock> end{};
  out.write(end.data(), end.size());
  return bytes;
}

std::string pack_folder(const fs::path& folder, const std::vector<std::string>& skip,
                        const ArchiveLimits& limits) {
  std::ostringstream out;
  pack_folder(folder, out, skip, limits);
  return std::move(out).str();
}

void pack_folder_to_file(const fs::path& folder, const fs::path& archive,
                         const std::vector<std::string>& skip, const ArchiveLimits& limits) {
  fs::path tmp = archive;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw ArchiveError("cannot write '" + tmp.string() + "'");
    pack_folder(folder, out, skip, limits);
    out.flush();
    if (!out) throw ArchiveError("cannot write '" + tmp.string() + "' (disk full?)");
  }
  fs::rename(tmp, archive);
}

void unpack_archive(const fs::path& archive, const fs::path& into, const ArchiveLimits& limits) {
  std::ifstream in(archive, std::ios::binary);
  if (!in) throw ArchiveError("cannot read the archive '" + archive.string() + "'");
  fs::create_directories(into);
  const std::string where = "archive '" + archive.string() + "'";
  std::uint64_t entries = 0, bytes = 0;
  std::array<char, kBlock> h;
  while (true) {
    if (!in.read(h.data(), h.size())) throw ArchiveError(where + ": truncated (no end marker)");
    if (std::all_of(h.begin(), h.end(), [](char c) { return c == 0; })) return;
    if (std::memcmp(h.data() + 257, "ustar", 5) != 0)
      throw ArchiveError(where + ": entry " + std::to_string(entries + 1) + " is not ustar");
    const auto stored_sum = parse_octal(h.data() + 148, 8);
    std::array<char, kBlock> blank = h;
    std::memset(blank.data() + 148, ' ', 8);
    unsigned sum = 0;
    for (const char c : blank)
      sum += static_cast<unsigned char>(c);
    if (!stored_sum || *stored_sum != sum)
      throw ArchiveError(where + ": entry " + std::to_string(entries + 1) + " has a bad checksum");
    const std::string path = checked_path(h, where);
    const auto size = parse_octal(h.data() + 124, 12);
    const auto mode = parse_octal(h.data() + 100, 8);
    if (!size || !mode) throw ArchiveError(where + ": '" + path + "' has a malformed header");
    if (++entries > limits.max_entries || (bytes += *size) > limits.max_bytes)
      throw ArchiveError(where + ": over the limits at '" + path + "'");
    const char type = h[156];
    const fs::path target = into / path;
    if (type == '5') {
      fs::create_directories(target);
      continue;
    }
    if (type != '0' && type != '\0')
      throw ArchiveError(where + ": '" + path + "' is neither a folder nor a regular file (type '" +
                         std::string(1, type) + "')");
    fs::create_directories(target.parent_path());
    std::ofstream out(target, std::ios::binary | std::ios::trunc);
    if (!out) throw ArchiveError(where + ": cannot write '" + target.string() + "'");
    std::array<char, 1 << 16> buf;
    for (std::uint64_t left = *size; left > 0;) {
      const auto n = static_cast<std::streamsize>(std::min<std::uint64_t>(left, buf.size()));
      if (!in.read(buf.data(), n)) throw ArchiveError(where + ": '" + path + "' is truncated");
      out.write(buf.data(), n);
      left -= static_cast<std::uint64_t>(n);
    }
    if (!out.flush()) throw ArchiveError(where + ": cannot write '" + target.string() + "'");
    in.ignore(static_cast<std::streamsize>((kBlock - *size % kBlock) % kBlock));
    fs::permissions(target, (*mode & 0100) ? fs::perms(0755) : fs::perms(0644));
  }
}

}  // namespace tv::fleet
