// The metadata archive through VgStore::commit: it never writes through a
// symlink, refuses a folder that is not the daemon's alone, writes 0600
// files, and a failure to archive is reported in commit_problems().
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fcntl.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "test_util.h"
#include "vg_fixture.h"
#include "vgfs/archive.h"
#include "vgfs/config.h"
#include "vgfs/vg_store.h"

using namespace vgfs;
namespace fs = std::filesystem;

namespace {

struct Store {
  vgfs_test::TempDir dir;
  std::unique_ptr<VgStore> store;
  Store() {
    store = vgfs_test::create_and_open(dir, "vg: {name: vg0, extent_size: 1MiB}\n"
                                            "pvs:\n"
                                            "  - {name: pv0, path: pv0.img, size: 16MiB}\n");
    store->set_archive(dir / "archive");
  }
  Status commit() { return store->commit(store->metadata()); }
  const VgMetadata& metadata() const { return store->metadata(); }
  uint64_t seqno() const { return store->metadata().seqno; }
  bool problem_mentions(const std::string& what) const {
    for (const std::string& p : store->commit_problems())
      if (p.find(what) != std::string::npos) return true;
    return false;
  }
};

// Makes every regular file of the archive `days` days and an hour older.
void age_archive(const fs::path& folder, int days) {
  for (const auto& e : fs::directory_iterator(folder)) {
    if (!fs::is_regular_file(fs::symlink_status(e.path()))) continue;
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    const time_t then = st.st_mtime - days * 24 * 3600 - 3600;
    const struct timespec times[2] = {{then, 0}, {then, 0}};
    REQUIRE(::utimensat(AT_FDCWD, e.path().c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);
  }
}

// The seqnos of the archive's regular files, ascending.
std::vector<uint64_t> archived_seqnos(const fs::path& folder) {
  std::vector<uint64_t> out;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string name = e.path().filename().string();
    if (!fs::is_regular_file(fs::symlink_status(e.path())) || name.rfind("vg0_", 0) != 0) continue;
    out.push_back(std::stoull(name.substr(4)));
  }
  std::sort(out.begin(), out.end());
  return out;
}

mode_t mode_of(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("archive: folder 0700, files 0600, no temp file left") {
  Store s;
  REQUIRE(s.commit().ok());
  CHECK(s.store->commit_problems().empty());
  CHECK(mode_of(s.dir / "archive") == 0700);
  CHECK(mode_of(s.dir / "archive/vg0_00000001.yaml") == 0600);
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(s.dir / "archive")) {
    ++files;
    CHECK(e.path().filename().string()[0] != '.');
  }
  CHECK(files == 1);
}

TEST_CASE("archive: a symlink at the archive file name is replaced, its target untouched") {
  Store s;
  vgfs_test::write_file(s.dir / "victim", "precious\n");
  ::chmod((s.dir / "victim").c_str(), 0644);
  REQUIRE(::mkdir((s.dir / "archive").c_str(), 0700) == 0);
  fs::create_symlink(s.dir / "victim", s.dir / "archive/vg0_00000001.yaml");
  fs::create_symlink(s.dir / "victim", s.dir / "archive/.vg0_00000001.yaml.tmp");
  REQUIRE(s.commit().ok());
  CHECK(vgfs_test::read_file(s.dir / "victim") == "precious\n");
  CHECK(mode_of(s.dir / "victim") == 0644);
  CHECK(fs::is_regular_file(fs::symlink_status(s.dir / "archive/vg0_00000001.yaml")));
  CHECK(decode_metadata(vgfs_test::read_file(s.dir / "archive/vg0_00000001.yaml"), "archive").ok());
}

TEST_CASE("archive: a symlinked folder is refused and reported, the commit still counts") {
  Store s;
  REQUIRE(::mkdir((s.dir / "elsewhere").c_str(), 0700) == 0);
  fs::create_symlink(s.dir / "elsewhere", s.dir / "archive");
  REQUIRE(s.commit().ok());
  CHECK(s.store->metadata().seqno == 2);
  CHECK(fs::is_empty(s.dir / "elsewhere"));
  CHECK(s.problem_mentions("symlink"));
}

TEST_CASE("archive: a folder owned by another user or writable by others is refused") {
  Store s;
  REQUIRE(::mkdir((s.dir / "archive").c_str(), 0700) == 0);
  SUBCASE("group-writable") {
    REQUIRE(::chmod((s.dir / "archive").c_str(), 0770) == 0);
    REQUIRE(s.commit().ok());
    CHECK(s.problem_mentions("writable by others"));
    CHECK(fs::is_empty(s.dir / "archive"));
  }
  SUBCASE("another owner") {
    if (::geteuid() != 0) {
      MESSAGE("skipped: changing a folder's owner needs root");
      return;
    }
    REQUIRE(::chown((s.dir / "archive").c_str(), 65534, 65534) == 0);
    REQUIRE(s.commit().ok());
    CHECK(s.problem_mentions("owned by uid 65534"));
    CHECK(fs::is_empty(s.dir / "archive"));
  }
}

TEST_CASE("archive: pruning removes old regular files only, never a symlink's target") {
  Store s;
  vgfs_test::write_file(s.dir / "victim", "precious\n");
  REQUIRE(::mkdir((s.dir / "archive").c_str(), 0700) == 0);
  // Sorts first: the oldest "file" of the VG.
  fs::create_symlink(s.dir / "victim", s.dir / "archive/vg0_00000000.yaml");
  const size_t keep = ArchiveRetention{}.min_count;
  for (size_t i = 0; i < keep + 3; ++i) REQUIRE(s.commit().ok());
  age_archive(s.dir / "archive", 31);
  REQUIRE(s.commit().ok());
  CHECK(vgfs_test::read_file(s.dir / "victim") == "precious\n");
  size_t regular = 0;
  for (const auto& e : fs::directory_iterator(s.dir / "archive"))
    if (fs::is_regular_file(fs::symlink_status(e.path()))) ++regular;
  CHECK(regular == keep);
  CHECK(!fs::exists(s.dir / "archive/vg0_00000001.yaml"));
}

TEST_CASE("archive: kept as LVM2 keeps it, by count and by age") {
  Store s;
  // 25 changes in a day: every one stays restorable (LVM2 retain_days 30),
  // more than the 20 the archive used to keep.
  for (int i = 0; i < 25; ++i) REQUIRE(s.commit().ok());
  CHECK(archived_seqnos(s.dir / "archive").size() == 25);
  // A month later, the next change leaves the newest 10 (retain_min).
  age_archive(s.dir / "archive", 31);
  REQUIRE(s.commit().ok());
  std::vector<uint64_t> left = archived_seqnos(s.dir / "archive");
  REQUIRE(left.size() == 10);
  CHECK(left.back() == s.seqno() - 1);  // the metadata the last commit replaced
  CHECK(left.front() == s.seqno() - 10);
  // Five more changes: the old files beyond the newest 10 go, one a change.
  for (int i = 0; i < 5; ++i) REQUIRE(s.commit().ok());
  CHECK(archived_seqnos(s.dir / "archive").size() == 10);
  // With other settings: the newest 3, and nothing older than a day.
  age_archive(s.dir / "archive", 1);
  const VgMetadata md = s.metadata();
  REQUIRE(archive_metadata(s.dir / "archive", md, ArchiveRetention{3, 0}).ok());
  CHECK(archived_seqnos(s.dir / "archive").size() == 3);
}
