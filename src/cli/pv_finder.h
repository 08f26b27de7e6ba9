// Finding PVs on the paths a user gives (docs/lvm2.md "vgfs scan" and
// "Mounting"): image files, block devices, and the partitions (GPT, MBR,
// through libblkid) of whole-disk images; LVM2's labels and vgfs's own.
// `vgfs scan` lists what find_pvs() returns; `vgfs mount|lvs|...  PATH...`
// group it into VGs (src/cli/vg_source.h).
//
// Invariant: finding opens every path O_RDONLY after checking it is a
// regular file or a block device, and never writes. A path is probed whole
// first; only when no label is on the whole path are its partitions probed,
// each as a window of the path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vgfs/lvm2_scan.h"
#include "vgfs/pv_format.h"
#include "vgfs/status.h"

namespace vgfs::cli {

// A vgfs PV: its label and the VG name and seqno of its newest slot.
struct VgfsPv {
  PvLabel label;
  std::string vg_name;
  uint64_t seqno = 0;
};

// One PV found: on a whole path or in one of its partitions.
struct FoundPv {
  std::string path;
  int partition = 0;  // 0: the whole path
  uint64_t offset = 0, size = 0;  // the window of `path` it is (offset 0 and the path's size when whole)
  std::optional<lvm2::PvScan> lvm2;
  std::optional<VgfsPv> vgfs;

  // "disk.img (partition 3, byte 1048576)" or the path.
  std::string where() const;
};

struct FoundPvs {
  std::vector<FoundPv> pvs;
  std::vector<std::string> no_pv;  // paths where nothing was found
  std::vector<std::string> warnings, errors;
};

FoundPvs find_pvs(const std::vector<std::string>& paths);

// LVM2 PVs grouped into VGs: each VG's newest metadata, read from its PVs
// (lvm2::read_vg_from), with the members in `found` order. PVs without a
// metadata area join the VG whose text lists them. A VG that cannot be read
// is an entry of `errors`.
struct Lvm2VgFound {
  std::vector<const FoundPv*> members;
  lvm2::VgRead read;
};
std::vector<Lvm2VgFound> group_lvm2_vgs(const FoundPvs& found, std::vector<std::string>* errors);

}  // namespace vgfs::cli
