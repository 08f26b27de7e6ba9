// The FUSE adapter: serves a VG as LV files and `.vgfs/` views (README.md "The mount", docs/records.md).
//
// Invariant: this layer translates FUSE requests into VolumeSet and VgStore
// calls and never decides where data lives; the LV read/write path does no
// allocation and takes no lock.
#pragma once

#include <optional>
#include <string>

#include "vgfs/config.h"
#include "vgfs/host_locks.h"
#include "vgfs/vg_format.h"

namespace vgfs {

struct MountOptions {
  std::string config;      // absolute path of the config file; empty when the VG was found from PV paths
  // The VG as the command line read it (src/cli/vg_source.h): found from PV
  // paths, or `config` already loaded (a config of a million extents takes
  // a second to parse: run_mount loads `config` itself only without this).
  std::optional<VgConfig> found;
  const VgFormat* format = &vgfs_format();
  // An LVM2 VG: LVM2's VG lock file in lvm_lock_dir is held while mounted
  // and block device PVs are opened O_EXCL (include/vgfs/host_locks.h).
  bool lvm2 = false;
  std::string lvm_lock_dir = kDefaultLvmLockDir;
  // An LVM2 VG's id (32 characters): a VG device-mapper serves on this host
  // (found under sysfs_root, "/sys" except in tests) is refused.
  std::string lvm2_vg_id;
  std::string sysfs_root = kDefaultSysfsRoot;
  // -o archive=DIR (absolute): the metadata archive's folder; by default the
  // config's folder/archive, none for a VG mounted from PV paths.
  std::string archive_dir;
  std::string mountpoint;  // absolute path
  bool foreground = false;
  bool read_only = false;
  bool allow_other = false;
  bool debug = false;
  bool splice_read = false;   // receive write data through a pipe (FUSE_CAP_SPLICE_READ)
  bool splice_write = true;   // reply read data by splicing from the PV (FUSE_CAP_SPLICE_WRITE)
  bool io_uring = false;      // serve requests through FUSE over io_uring rings when the kernel allows
  unsigned max_threads = 16;  // worker threads of the session loop
};

// Mounts and serves until unmounted; returns the process exit status. Every
// error before the mount is ready is printed as one "vgfs: ..." line.
int run_mount(const MountOptions& options);

}  // namespace vgfs
