// The metadata archive: every commit first saves the metadata it replaces
// as `<folder>/<vg>_<seqno>.yaml`, like LVM2's archive. Retention is LVM2's
// (lvm.conf backup/retain_min, retain_days): a file goes only when it is
// both beyond the newest `min_count` and older than `days` days, so a
// removed LV stays restorable for a month however busy the VG is.
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
#include "vgfs/vg_format.h"

namespace vgfs {

// LVM2's defaults: retain_min = 10, retain_days = 30.
struct ArchiveRetention {
  size_t min_count = 10;
  unsigned days = 30;
};

// Creates `folder` (mode 0700) when missing, refuses it when it is a
// symlink, not a directory, not owned by geteuid() or group/other-writable;
// writes `md` as `<vg>_<seqno:08>.<suffix>` (mode 0600) in `format`'s text
// (vgfs: YAML, `.yaml`; LVM2: its metadata text, `.vg`, which `vgcfgrestore
// -f` reads) and removes the
// regular files of that VG that are beyond the newest `keep.min_count`
// (by seqno) and last modified more than `keep.days` days ago.
Status archive_metadata(const std::string& folder, const VgMetadata& md, const ArchiveRetention& keep,
                        const VgFormat& format = vgfs_format());

}  // namespace vgfs
