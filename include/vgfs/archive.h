// The metadata archive: every commit first saves the metadata it replaces
// as `<folder>/<vg>_<seqno>.yaml`, like LVM2's archive, keeping the newest.
//
// Invariant: the archive never writes, renames or removes anything outside
// a folder that is a real directory (not a symlink) owned by the daemon's
// effective user and writable by nobody else; every file operation is
// relative to that folder's descriptor and follows no symlink. A file
// appears complete or not at all (0600 temp file, fsync, rename), so a
// user who can write the config's folder can neither redirect a write nor
// read the metadata. Failing to archive never fails the commit: the caller
// reports it.
#pragma once

#include <cstddef>
#include <string>

#include "vgfs/metadata.h"
#include "vgfs/status.h"

namespace vgfs {

// Creates `folder` (mode 0700) when missing, refuses it when it is a
// symlink, not a directory, not owned by geteuid() or group/other-writable;
// writes `md` as `<vg>_<seqno:08>.yaml` (mode 0600) and removes the oldest
// regular files of that VG beyond `keep`.
Status archive_metadata(const std::string& folder, const VgMetadata& md, size_t keep);

}  // namespace vgfs
