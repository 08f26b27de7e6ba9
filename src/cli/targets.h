// What a path given on the command line is, and the one-line error when it
// is not the kind of target a verb needs (README.md "Command line"): a config file where a
// mount point is needed and the reverse, a folder that is not a vgfs mount,
// or a stale mount whose daemon is gone.
//
// Invariant: classification only stats the path (and its .vgfs/ctl); it
// never opens a file of a live mount and never changes how arguments are
// parsed, only what an already-parsed argument is checked against. The CLI
// runs in its own process, so stat on a mount it serves cannot deadlock.
#pragma once

#include <string>

#include "vgfs/status.h"

namespace vgfs::cli {

enum class TargetKind {
  kMissing,  // stat fails (not ENOTCONN)
  kStale,    // ENOTCONN: a FUSE mount whose daemon is dead
  kMount,    // a folder with .vgfs/ctl: a mounted VG
  kFolder,   // another folder
  kFile,     // a regular file (a config, if it loads as one)
  kOther,    // a device, socket, ...
};

TargetKind classify_target(const std::string& path);

// "MNT: transport endpoint not connected: run fusermount3 -u MNT".
std::string stale_message(const std::string& path);

// Ok when `path` is a mounted VG's mount point; otherwise why not, naming
// `verb` (e.g. "move").
Status require_mount_point(const std::string& verb, const std::string& path);
// Ok unless `path` is a mount point, a stale mount or a folder (a config
// file's own problems are left to load_config).
Status require_config(const std::string& verb, const std::string& path);
// For `vgfs mount CONFIG MOUNTPOINT`: refuses a stale mount or a file given
// as the folder to mount on.
Status require_mount_folder(const std::string& path);

}  // namespace vgfs::cli
