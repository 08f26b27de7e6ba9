// HostLocks (include/vgfs/host_locks.h): LVM2's VG lock file is created with
// its folder, exclusive keeps every other holder off, shared keeps writers
// off but not readers, nothing waits, and letting go unlinks the file when
// nobody else holds it (as LVM2 does).
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <filesystem>

#include "test_util.h"
#include "vgfs/host_locks.h"

using namespace vgfs;

namespace {

// Whether another open file description could take the lock now.
bool could_lock(const std::string& path, bool exclusive) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return true;
  bool ok = ::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

TEST_CASE("host locks: exclusive VG lock in a folder made for it, EBUSY for a second holder, unlinked after") {
  vgfs_test::TempDir dir;
  const std::string lock_dir = dir / "run/lock/lvm";
  const std::string file = lock_dir + "/V_vg0";
  {
    Result<HostLocks> held = HostLocks::acquire(lock_dir, "vg0", true, {});
    REQUIRE(held.ok());
    CHECK(held->lock_file() == file);
    CHECK(std::filesystem::exists(file));
    CHECK_FALSE(could_lock(file, false));
    Result<HostLocks> again = HostLocks::acquire(lock_dir, "vg0", false, {});
    REQUIRE_FALSE(again.ok());
    CHECK(again.status().code() == EBUSY);
    CHECK(again.status().message().find("V_vg0") != std::string::npos);
    // Another VG's lock is another file.
    CHECK(HostLocks::acquire(lock_dir, "vg1", true, {}).ok());
  }
  CHECK_FALSE(std::filesystem::exists(file));
}

TEST_CASE("host locks: shared lets readers in and keeps writers off; the file stays while a reader holds it") {
  vgfs_test::TempDir dir;
  const std::string file = dir / "V_vg0";
  Result<HostLocks> a = HostLocks::acquire(dir.str(), "vg0", false, {});
  REQUIRE(a.ok());
  Result<HostLocks> b = HostLocks::acquire(dir.str(), "vg0", false, {});
  REQUIRE(b.ok());
  CHECK(could_lock(file, false));
  CHECK_FALSE(could_lock(file, true));
  CHECK(HostLocks::acquire(dir.str(), "vg0", true, {}).status().code() == EBUSY);
  a->release();
  CHECK(std::filesystem::exists(file));  // b holds it still
  b->release();
  CHECK_FALSE(std::filesystem::exists(file));
  CHECK(HostLocks::acquire(dir.str(), "vg0", true, {}).ok());
}

TEST_CASE("host locks: a lock folder that cannot be made is one error naming it") {
  vgfs_test::TempDir dir;
  vgfs_test::write_file(dir / "file", "x");
  Result<HostLocks> held = HostLocks::acquire(dir / "file/lvm", "vg0", true, {});
  REQUIRE_FALSE(held.ok());
  CHECK(held.status().message().find("file/lvm") != std::string::npos);
}

TEST_CASE("host locks: an LVM2 VG device-mapper serves is refused, naming the dm device and LV") {
  vgfs_test::TempDir dir;
  const std::string vg_id = "Ab3dEf6hIj9lMn2pQr5tUv8xYz1bCd4f";
  CHECK(check_not_in_device_mapper(dir / "nothing", vg_id, "vg0").ok());  // no sysfs at all: no dm
  auto dm = [&](const std::string& dev, const std::string& uuid, const std::string& name) {
    std::filesystem::create_directories(dir / ("block/" + dev + "/dm"));
    vgfs_test::write_file(dir / ("block/" + dev + "/dm/uuid"), uuid + "\n");
    vgfs_test::write_file(dir / ("block/" + dev + "/dm/name"), name + "\n");
  };
  std::filesystem::create_directories(dir / "block/loop0");
  dm("dm-0", "CRYPT-LUKS2-0123-luks", "luks");                                        // not LVM's
  dm("dm-1", "LVM-Zz3dEf6hIj9lMn2pQr5tUv8xYz1bCd4fLvIdLvIdLvIdLvIdLvIdLvIdLvId", "other-lv");  // another VG
  CHECK(check_not_in_device_mapper(dir.str(), vg_id, "vg0").ok());
  dm("dm-7", "LVM-" + vg_id + "LvIdLvIdLvIdLvIdLvIdLvIdLvIdLvId", "vg0-data");
  Status st = check_not_in_device_mapper(dir.str(), vg_id, "vg0");
  REQUIRE(st.code() == EBUSY);
  CHECK(st.message().find("dm-7") != std::string::npos);
  CHECK(st.message().find("vg0-data") != std::string::npos);
  CHECK(st.message().find("vgchange -an vg0") != std::string::npos);
}
