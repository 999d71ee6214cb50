// The folder archive against GNU tar (the format's reference reader and writer) and against
// hostile archives: each refused with the entry and the reason, nothing written outside.
#include "trainvisor/fleet/folder_archive.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "temp_dir.hpp"

namespace tv::fleet {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int sh(const std::string& command) {
  return std::system(command.c_str());
}

// A tree with a nested folder, an executable, an empty file, a long path and a skipped folder.
fs::path sample_tree(const TempDir& dir) {
  const fs::path src = dir.path() / "src";
  write(src / "train.py", "print('hello')\n");
  write(src / "run.sh", "#!/bin/sh\necho run\n");
  fs::permissions(src / "run.sh", fs::perms(0755));
  write(src / "data" / "empty.bin", "");
  write(src / "data" / "blob.bin", std::string(70000, '\x7f'));
  write(src / std::string(90, 'd') / std::string(90, 'e') / "f.txt", "deep\n");
  write(src / "__pycache__" / "train.cpython-311.pyc", "bytecode");
  return src;
}

TEST(FolderArchiveTest, RoundTripsAndTarReadsIt) {
  TempDir dir;
  const fs::path src = sample_tree(dir);
  const fs::path tar = dir.path() / "a.tar";
  pack_folder_to_file(src, tar, {"__pycache__"});
  unpack_archive(tar, dir.path() / "ours");
  EXPECT_EQ(read(dir.path() / "ours" / "train.py"), "print('hello')\n");
  EXPECT_EQ(read(dir.path() / "ours" / "data" / "blob.bin"), std::string(70000, '\x7f'));
  EXPECT_EQ(read(dir.path() / "ours" / std::string(90, 'd') / std::string(90, 'e') / "f.txt"),
            "deep\n");
  EXPECT_TRUE(fs::exists(dir.path() / "ours" / "data" / "empty.bin"));
  EXPECT_FALSE(fs::exists(dir.path() / "ours" / "__pycache__"));
  EXPECT_NE(fs::status(dir.path() / "ours" / "run.sh").permissions() & fs::perms::owner_exec,
            fs::perms::none);
  EXPECT_EQ(fs::status(dir.path() / "ours" / "train.py").permissions() & fs::perms::owner_exec,
            fs::perms::none);
  // GNU tar lists and extracts it without a complaint, to the same bytes.
  fs::create_directories(dir.path() / "gnu");
  ASSERT_EQ(sh("tar -xf " + tar.string() + " -C " + (dir.path() / "gnu").string()), 0);
  EXPECT_EQ(sh("diff -r " + (dir.path() / "ours").string() + " " + (dir.path() / "gnu").string()),
            0);
}

TEST(FolderArchiveTest, TheSameTreeGivesTheSameBytes) {
  TempDir dir;
  const fs::path src = sample_tree(dir);
  const std::string first = pack_folder(src);
  fs::last_write_time(src / "train.py", fs::file_time_type::clock::now() - std::chrono::hours(5));
  EXPECT_EQ(pack_folder(src), first);
  write(src / "train.py", "print('changed')\n");
  EXPECT_NE(pack_folder(src), first);
}

TEST(FolderArchiveTest, ReadsWhatGnuTarWrites) {
  TempDir dir;
  const fs::path src = sample_tree(dir);
  const fs::path tar = dir.path() / "gnu.tar";
  ASSERT_EQ(sh("tar --format=ustar -cf " + tar.string() + " -C " + src.string() +
               " train.py run.sh data"),
            0);
  unpack_archive(tar, dir.path() / "out");
  EXPECT_EQ(read(dir.path() / "out" / "run.sh"), "#!/bin/sh\necho run\n");
  EXPECT_EQ(read(dir.path() / "out" / "data" / "blob.bin").size(), 70000u);
}

TEST(FolderArchiveTest, RefusesSymlinksAndSpecialFilesWhenPacking) {
  TempDir dir;
  const fs::path src = sample_tree(dir);
  fs::create_symlink("/etc/passwd", src / "link");
  try {
    pack_folder(src);
    FAIL() << "a symlink was packed";
  } catch (const ArchiveError& e) {
    EXPECT_NE(std::string(e.what()).find("link': only folders and regular files"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(pack_folder(dir.path() / "missing"), ArchiveError);
}

TEST(FolderArchiveTest, RefusesOverTheLimits) {
  TempDir dir;
  const fs::path src = sample_tree(dir);
  EXPECT_THROW(pack_folder(src, {}, ArchiveLimits{1000, 100}), ArchiveError);
  const fs::path tar = dir.path() / "a.tar";
  pack_folder_to_file(src, tar);
  EXPECT_THROW(unpack_archive(tar, dir.path() / "out", ArchiveLimits{1000, 100}), ArchiveError);
  EXPECT_THROW(unpack_archive(tar, dir.path() / "out2", ArchiveLimits{1u << 30, 2}), ArchiveError);
}

// A hostile archive made by GNU tar: each must be refused, and nothing lands outside `out`.
void expect_refused(const TempDir& dir, const std::string& make, const std::string& expected) {
  const fs::path tar = dir.path() / "evil.tar";
  fs::remove(tar);
  ASSERT_EQ(sh("cd " + dir.path().string() + " && " + make + " 2>/dev/null"), 0) << make;
  try {
    unpack_archive(tar, dir.path() / "x" / "out");
    FAIL() << "accepted: " << make;
  } catch (const ArchiveError& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / "x" / "escaped"));
}

TEST(FolderArchiveTest, RefusesHostileArchives) {
  TempDir dir;
  write(dir.path() / "x" / "escaped", "");
  fs::remove(dir.path() / "x" / "escaped");
  expect_refused(dir, "ln -sf /etc/passwd link && tar --format=ustar -cf evil.tar link",
                 "neither a folder nor a regular file");
  expect_refused(dir,
                 "mkdir -p a && echo x > a/f && tar --format=ustar -cf evil.tar "
                 "--transform 's,^a/f,../escaped,' a/f",
                 "has a '..' component");
  expect_refused(dir,
                 "echo x > f && tar --format=ustar -cf evil.tar -P --transform 's,^f,/tmp/abs,' f",
                 "is an absolute path");
  // A flipped byte in a header: its checksum no longer holds.
  expect_refused(dir,
                 "echo x > g && tar --format=ustar -cf evil.tar g && printf 'h' | dd of=evil.tar "
                 "bs=1 seek=0 conv=notrunc",
                 "bad checksum");
  // Cut short in the middle of a file's contents.
  expect_refused(dir,
                 "head -c 100000 /dev/zero > big && tar --format=ustar -cf evil.tar big && "
                 "truncate -s 5000 evil.tar",
                 "truncated");
  expect_refused(dir, "head -c 2048 /dev/urandom > evil.tar", "not ustar");
}

}  // namespace
}  // namespace tv::fleet
