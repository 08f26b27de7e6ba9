// `vgfs` run as mount(8)'s helper /sbin/mount.fuse.vgfs (meson installs that
// name as a link to vgfs): `mount -t fuse.vgfs CONFIG MNT` and fstab lines of
// type fuse.vgfs then run it directly, with util-linux's helper arguments
// `SOURCE MOUNTPOINT [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`, and need no
// PATH (mount(8) runs helpers without one). Without the link, mount.fuse3
// runs `vgfs SOURCE MOUNTPOINT -o OPTIONS` from the default PATH, which
// main.cc recognises by its shape.
//
// Invariant: only the program's own name selects this form, never what
// exists on disk; what it returns is an ordinary `vgfs mount` command line.
#pragma once

#include <string>
#include <vector>

#include "vgfs/status.h"

namespace vgfs::cli {

// True when argv[0] names the helper (its last path component is
// mount.fuse.vgfs).
bool invoked_as_mount_helper(const char* argv0);

struct HelperCommand {
  std::vector<std::string> args;  // "mount", SOURCE, MOUNTPOINT, "-o", OPTIONS...
  bool fake = false;              // -f: mount(8)'s "do everything but mount"
};

// The helper's arguments as a `vgfs mount` command line: -s (sloppy), -n (no
// mtab) and -v (verbose) change nothing here, -t names our own type, -f is
// a fake mount; -N (another namespace) is refused, with one line.
Result<HelperCommand> mount_helper_command(const std::vector<std::string>& args);

}  // namespace vgfs::cli
