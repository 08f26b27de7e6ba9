// The metadata of a mounted VG, read straight from its PVs, for `vgfs dump`
// and `vgfs check` given a mount point.
//
// The daemon holds every PV's OFD lock exclusively, so VgStore cannot open
// them; this reader takes no lock and writes nothing. It is safe against a
// commit in flight because a commit writes seqno N+1 into the slot that
// does not hold N: the newest copy (the seqno the mount's .vgfs/vg.json
// names) stays whole. A read that sees the seqno change under it, or finds
// a damaged copy, is retried, so a half-written older slot is not reported
// as damage.
//
// Invariant: on success, `metadata` has the seqno .vgfs/vg.json named both
// before and after the read, decoded from a slot whose checksums pass,
// passed validate() and check_against_label() for every PV, and every PV
// holds that same text; `problems` lists the copies (labels, slots) that
// were damaged on every try.
#pragma once

#include <string>
#include <vector>

#include "vgfs/metadata.h"
#include "vgfs/status.h"

namespace vgfs::cli {

struct MountedMetadata {
  VgMetadata metadata;
  std::vector<std::string> problems;
  bool lvm2 = false;  // an LVM2 VG (read from its mdas)
};

Result<MountedMetadata> read_mounted_metadata(const std::string& mountpoint);

}  // namespace vgfs::cli
