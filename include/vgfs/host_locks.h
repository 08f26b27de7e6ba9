// HostLocks: what a mount of an LVM2 VG holds on this host so LVM2's own
// commands keep off it (docs/lvm2.md "Mounting", docs/design.md "Locks"):
// LVM2's VG lock file, `flock` on <lock_dir>/V_<vg> (exclusive for a
// read-write mount, shared for a read-only one, as LVM2's writers and
// readers take it), and an O_EXCL open of every block device PV, which the
// kernel grants to one holder at a time (device-mapper holds the PVs of a
// VG active on the host, so such a VG is refused too).
//
// Invariant: a HostLocks object holds every lock it was asked for, or
// acquire() failed and holds none; nothing waits (a lock held elsewhere is
// EBUSY naming the file or device). The locks belong to open file
// descriptions, so they survive the daemon's fork, and go with the object:
// the lock file is then unlinked when no one else holds it, as LVM2 does.
#pragma once

#include <string>
#include <vector>

#include "vgfs/status.h"

namespace vgfs {

constexpr const char* kDefaultLvmLockDir = "/run/lock/lvm";
constexpr const char* kDefaultSysfsRoot = "/sys";

// Refuses (EBUSY, naming the dm device and how to deactivate it) an LVM2 VG
// that device-mapper serves on this host: some <sysfs_root>/block/dm-*/dm/uuid
// starts with "LVM-" and the VG's id (`vg_id`: 32 characters, no dashes),
// as LVM2 names the dm devices of its LVs ("LVM-" + VG id + LV id). Two
// writers of one VG's metadata and data (dm and vgfs) would corrupt it; the
// O_EXCL claim catches the PVs dm holds only when they are block devices,
// not an image file behind a loop device. sysfs_root is kDefaultSysfsRoot
// except in tests. No dm (no such folder) is no refusal.
Status check_not_in_device_mapper(const std::string& sysfs_root, const std::string& vg_id, const std::string& vg_name);

class HostLocks {
 public:
  HostLocks() = default;
  HostLocks(HostLocks&& other) noexcept { *this = std::move(other); }
  HostLocks& operator=(HostLocks&& other) noexcept;
  HostLocks(const HostLocks&) = delete;
  HostLocks& operator=(const HostLocks&) = delete;
  ~HostLocks() { release(); }

  // The VG lock (creating `lock_dir`, mode 0700, when missing), then an
  // O_EXCL claim on each path of `devices` that is a block device (read-write
  // mounts only: readers do not keep each other off).
  static Result<HostLocks> acquire(const std::string& lock_dir, const std::string& vg_name, bool exclusive,
                                   const std::vector<std::string>& devices);
  void release();

  const std::string& lock_file() const { return lock_file_; }

 private:
  std::string lock_file_;
  int lock_fd_ = -1;
  std::vector<int> claims_;
};

}  // namespace vgfs
