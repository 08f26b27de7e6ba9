// The VG that the SOURCE... of `vgfs mount|lvs|pvs|vgs|check|dump` names
// (docs/lvm2.md "Mounting"): one config file (YAML, as `vgfs create` takes),
// or PV paths (image files, block devices, whole-disk images whose
// partitions hold PVs) whose labels say which VG they belong to, in LVM2's
// format or vgfs's own.
//
// Invariant: a config is told from a PV by content, never by name or verb:
// a single regular file whose first 4 KiB hold no NUL byte is a config
// (every PV image starts with a label or a partition table, which hold
// NULs). For PV paths, the VgConfig returned lists exactly the PVs found on
// the given paths, each with its window when it is a partition, and every PV
// the chosen VG's metadata lists was found among them (a missing one is an
// error naming it); an LVM2 VG's config never follows the metadata's device
// hints (follow_metadata_paths = false). Nothing here writes.
#pragma once

#include <string>
#include <vector>

#include "vgfs/config.h"
#include "vgfs/status.h"
#include "vgfs/vg_format.h"

namespace vgfs::cli {

struct VgSource {
  VgConfig config;           // loaded from the config file, or made from the PVs found
  const VgFormat* format = &vgfs_format();
  bool from_config = false;  // SOURCE was a config file (its folder holds the archive)
  bool lvm2 = false;         // an LVM2 VG: take LVM2's VG lock while mounted
  std::string lvm2_vg_id;    // its LVM2 id (32 characters, no dashes)
  std::vector<std::string> warnings;  // damaged metadata areas, stale copies, ...
};

// `vg_name` (--vg) picks among the VGs found; empty: the only one. Errors
// are one line naming the path or the VGs to choose from.
Result<VgSource> find_vg_source(const std::vector<std::string>& sources, const std::string& vg_name);

// True when `path` is a regular file that reads as a config (see above).
bool looks_like_config(const std::string& path);

}  // namespace vgfs::cli
