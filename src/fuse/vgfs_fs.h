// The FUSE adapter: serves a VG as LV files and `.vgfs/` views (README.md "The mount", docs/records.md).
//
// Invariant: this layer translates FUSE requests into VolumeSet and VgStore
// calls and never decides where data lives; the LV read/write path does no
// allocation and takes no lock.
#pragma once

#include <string>

namespace vgfs {

struct MountOptions {
  std::string config;      // absolute path
  std::string mountpoint;  // absolute path
  bool foreground = false;
  bool read_only = false;
  bool allow_other = false;
  bool debug = false;
  bool splice_read = false;   // receive write data through a pipe (FUSE_CAP_SPLICE_READ)
  bool splice_write = true;   // reply read data by splicing from the PV (FUSE_CAP_SPLICE_WRITE)
  unsigned max_threads = 16;  // worker threads of the session loop
};

// Mounts and serves until unmounted; returns the process exit status. Every
// error before the mount is ready is printed as one "vgfs: ..." line.
int run_mount(const MountOptions& options);

}  // namespace vgfs
