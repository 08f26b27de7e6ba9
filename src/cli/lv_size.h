// The size of lvcreate/lvextend/lvreduce as an LVM2 user gives it, resolved
// against the VG's state into the absolute byte size the control file takes
// (docs/cli.md has the rules, with what LVM2 does differently).
//
//   -L SIZE / SIZE   100M, 1.5g, 4MiB, a bare number is MiB; +SIZE (lvextend)
//                    and -SIZE (lvreduce) are relative to the LV's size
//   -l EXTENTS       N extents; +N/-N; N%VG (of the VG's extents), N%FREE
//                    (of its free extents), N%PVS (of the free extents of
//                    the PVs named, or of all PVs)
//
// A SIZE is sent exact: the control file rounds it up to whole extents and
// its reply says so, as LVM2 does. A percentage is an upper limit: above
// what the VG has free, it is reduced to that, with LVM2's note.
//
// Invariant: resolve_lv_size() is a pure function of its request and the
// VG's vg.json (src/views/views.h); it never touches the VG.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "vgfs/status.h"

namespace vgfs::cli {

struct LvSizeRequest {
  std::string verb;                    // lvcreate, lvextend or lvreduce
  std::string lv;
  std::optional<std::string> size;     // -L or the SIZE operand
  std::optional<std::string> extents;  // -l
  std::vector<std::string> pvs;        // lvcreate's PV operands, for %PVS
};

struct LvSize {
  uint64_t bytes = 0;              // -L: as asked; -l: a whole number of extents
  std::vector<std::string> notes;  // for stderr, in LVM2's wording
};

Result<LvSize> resolve_lv_size(const LvSizeRequest& request, const nlohmann::json& vg);

}  // namespace vgfs::cli
