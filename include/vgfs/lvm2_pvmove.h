// LVM2's unfinished pvmove (docs/lvm2.md, "LVM2's unfinished pvmove"): the
// hidden `pvmove0` LV that LVM2's `pvmove` writes and, without
// device-mapper, never removes; and the pure metadata transformations that
// finish it (LVs on the destination) or abort it (LVs on the source).
//
// Invariant: a Pvmove returned by find_pvmove() describes a move that LVM2's
// own finish (remove_layers_for_segments) would accept: its LV has the
// PVMOVE status and only `mirror` segments of exactly two PV legs (source,
// then destination) with extents_moved <= extent_count; every LV stripe that
// names it starts exactly at one of its segments and spans exactly that
// segment's extents; every segment is named by exactly one such stripe; no
// other key of the VG names it. finish_pvmove() and abort_pvmove() return a
// tree that read_vg() accepts, holds no pvmove LV and differs from the input
// only in the LVs that named it (stripes remapped, LOCKED dropped, segments
// merged as LVM2 merges them, renumbered, segment_count fixed), the pvmove
// LV's removal and the VG's PVMOVE status flag. The seqno is the caller's.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "vgfs/lvm2_config.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/metadata.h"
#include "vgfs/status.h"

namespace vgfs::lvm2 {

// One LV stripe that names the pvmove LV: `stripes[stripe]` of segment
// `segment` of LV `lv`.
struct PvmoveUser {
  std::string lv;
  std::string segment;    // segment1, ...
  uint64_t start_extent;  // the segment's first LE in `lv`
  uint64_t extent_count;  // the segment's LEs (all stripes)
  uint64_t stripe_count;
  uint64_t stripe = 0;    // index of the stripe that names the pvmove LV
};

// One `mirror` segment of the pvmove LV: `extent_count` extents that move
// from `source` to `destination`, of which the first `extents_moved` were
// copied (LVM2's checkpoint; 0 when LVM2 ran without device-mapper).
struct PvmovePiece {
  std::string segment;     // segment1, ... of the pvmove LV
  uint64_t le = 0;         // first LE of the pvmove LV
  uint64_t extent_count = 0;
  uint64_t extents_moved = 0;
  StripeArea source;       // PV key and first PE
  StripeArea destination;  // PV key and first PE
  PvmoveUser user;         // the LV stripe that names these extents
  bool moved() const { return extents_moved == extent_count; }
};

struct Pvmove {
  std::string lv;                   // "pvmove0"
  std::vector<PvmovePiece> pieces;  // in LE order of the pvmove LV
  std::vector<std::string> users;   // LVs that name it, in VG order
};

// The pvmove LV of `vg` (the LV with the PVMOVE status), checked as above.
// ENOENT when there is none; EINVAL naming the LV and segment when it or a
// stripe naming it is malformed, when it is an atomic pvmove (legs on
// pvmoveN_mimage_* sub-LVs, not supported) or when the VG holds several.
Result<Pvmove> find_pvmove(const Lvm2Vg& vg);

// Which pieces end on the destination: `copied[i]` for pieces[i] (extra or
// missing entries are an error); a piece LVM2 finished (moved()) counts as
// copied whatever `copied` says.
//
// Every LV stripe that named the pvmove LV names the destination (copied
// pieces) or the source (the others); the rest as described in the header
// comment. EINVAL when `tree` is not the tree `move` was found in.
Result<ConfigTree> finish_pvmove(const ConfigTree& tree, const Pvmove& move, const std::vector<bool>& copied);

// Every LV stripe back on its source: the source PEs were never given up
// (LVM2's mirror writes both legs), so nothing is copied.
Result<ConfigTree> abort_pvmove(const ConfigTree& tree, const Pvmove& move);

// lvm2_format()'s VgFormat::without_foreign_move(): abort_pvmove() on the
// text of `md`, decoded again. ENOENT when `md` holds no pvmove LV.
Result<VgMetadata> without_pvmove(const VgMetadata& md);

// One run of extents to copy before finish_pvmove() may put a piece on its
// destination: PEs [source.pe, source.pe + count) to
// [destination.pe, ...), the part of piece `piece` that extents_moved does
// not cover.
struct PvmoveCopy {
  size_t piece = 0;
  StripeArea source;
  StripeArea destination;
  uint64_t count = 0;
};
std::vector<PvmoveCopy> pvmove_copy_list(const Pvmove& move);

}  // namespace vgfs::lvm2
