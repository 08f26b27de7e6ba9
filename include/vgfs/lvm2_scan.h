// Reading an LVM2 VG from its PVs (docs/lvm2.md, "Choosing the metadata"):
// the label and every metadata area of every PV, then the newest text.
//
// Invariant: read_vg_from() returns the text of the highest seqno found in
// any mda of the given PVs, parsed and checked (vgfs/lvm2_metadata.h), and
// only when every copy with that seqno is byte-identical; a copy that is
// older, damaged or unparsable is named in a warning, never silently used or
// silently dropped. Nothing here writes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vgfs/lvm2_label.h"
#include "vgfs/lvm2_mda.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/status.h"

namespace vgfs::lvm2 {

// One committed text copy that passed its CRC and names a VG with a seqno.
struct MdaCopy {
  std::string where;  // "disk.img mda1 (byte 4096)"
  std::string text;
  VgSummary summary;
};

struct PvScan {
  ByteSource source;
  PvLabel label;
  std::vector<MdaCopy> copies;
  int ignored_mdas = 0;  // mdas flagged ignored (pvchange --metadataignore)
  int empty_mdas = 0;    // mdas that hold no VG (an orphan PV's)
  std::vector<std::string> warnings;  // damaged mdas, skipped label sectors
};

// Reads the label and every metadata area of one source. Fails (ENOENT: no
// label; EINVAL: a damaged label; EIO) only when there is no usable label;
// a damaged mda is a warning and is left out of `copies`.
Result<PvScan> scan_pv(const ByteSource& source);

struct VgRead {
  Lvm2Vg vg;
  std::string text;        // the newest text
  std::string from;        // where it was read, e.g. "a.img mda1 (byte 4096)"
  std::vector<std::string> warnings;  // stale copies, PVs missing or foreign
  std::vector<size_t> pvs;  // for each vg.pvs[i], the index in the scans given, or SIZE_MAX when missing
};

// Chooses the newest metadata among the copies of `scans` (the PVs of one
// VG; the copies must name the same VG uuid, those of another are warned
// about and ignored) and checks it against the PVs' labels. EINVAL when no
// copy is usable, when two copies with the highest seqno differ (naming
// both), or when the newest text fails its checks.
Result<VgRead> read_vg_from(const std::vector<PvScan>& scans, const std::string& vg_uuid);

}  // namespace vgfs::lvm2
