// ExtentMap: one LV's LE→PE map, stored as runs (the LE→PE form of docs/records.md).
//
// Invariant: runs are sorted by LE, cover LE 0 .. extent_count()-1 with no
// gap and no overlap, every run has count >= 1, and two neighbouring plain
// runs (linear, no kept keys) are never contiguous on the same PV (they
// would have been merged). So a map costs memory per run, not per extent,
// and find() is O(log runs).
//
// A run is linear (LE le+i on PV pv at PE pe+i) or striped: LVM2's striped
// segment (docs/format.md, "Striped segments"), whose count extents are
// spread in chunks of stripe_size bytes round-robin over stripe_count() legs
// of count / stripe_count() PEs each. That a striped run's numbers make sense
// (count a multiple of the legs, stripe size bounds, legs in range and not
// overlapping) is VgMetadata::validate()'s to check, not the map's.
//
// PvRun is one run of a PV's PE→LE map (docs/records.md): the derived inverse of every LV's
// ExtentMap, with free runs (lv == kFree) filling the gaps.
#pragma once

#include <cstdint>
#include <vector>

#include "vgfs/kept_keys.h"

namespace vgfs {

// Where one leg of a striped run starts.
struct StripeLeg {
  uint32_t pv = 0;
  uint64_t pe = 0;
  bool operator==(const StripeLeg&) const = default;
};

struct MapRun {
  uint64_t le = 0;     // first logical extent
  uint64_t count = 0;  // number of extents (all legs together when striped)
  uint32_t pv = 0;     // index of the PV in VgMetadata::pvs (leg 0 when striped)
  uint64_t pe = 0;     // first physical extent on that PV
  // Striping: 0 and empty for a linear run. Otherwise the chunk size in
  // bytes and legs 1.. (leg 0 is pv/pe above); chunk c of the run is on leg
  // c % stripe_count(), at chunk c / stripe_count() of that leg.
  uint64_t stripe_size = 0;
  std::vector<StripeLeg> more_legs{};
  KeptKeys kept{};  // the segment's keys vgfs does not understand

  uint64_t le_end() const { return le + count; }
  bool striped() const { return !more_legs.empty(); }
  uint32_t stripe_count() const { return 1 + static_cast<uint32_t>(more_legs.size()); }
  // Extents of each leg.
  uint64_t leg_extents() const { return count / stripe_count(); }
  StripeLeg leg(uint32_t i) const { return i == 0 ? StripeLeg{pv, pe} : more_legs[i - 1]; }
  // Linear with nothing kept: may merge with a contiguous neighbour.
  bool plain() const { return !striped() && stripe_size == 0 && kept.empty(); }
  bool operator==(const MapRun&) const = default;
};

class ExtentMap {
 public:
  ExtentMap() = default;

  // Appends `count` extents at the end of the map, merging with the last run
  // when it is plain and they continue it on the same PV.
  void append(uint32_t pv, uint64_t pe, uint64_t count);
  // Appends a run as it is (its `le` is set to the map's end); a plain one
  // merges like append().
  void append_run(MapRun run);
  // Drops every extent at or above `extent_count`. A striped run cut inside
  // keeps count = extent_count - le, which validate() refuses unless it is
  // a multiple of its legs.
  void truncate(uint64_t extent_count);
  // Replaces LEs [le, le+count) with the PV range pv:pe.. (used by the
  // migration switch); the range must lie inside the map and only on linear
  // runs. Run boundaries inside it and kept keys are preserved: each
  // overlapped part moves with its own keys.
  void remap(uint64_t le, uint64_t count, uint32_t pv, uint64_t pe);
  // Puts leg `leg` of the striped run starting at LE `le` at pv:pe (the
  // switch of a leg move); the run must exist and have that leg. The run
  // keeps its LEs, stripe size, other legs and kept keys.
  void remap_leg(uint64_t le, uint32_t leg, uint32_t pv, uint64_t pe);

  uint64_t extent_count() const { return runs_.empty() ? 0 : runs_.back().le_end(); }
  const std::vector<MapRun>& runs() const { return runs_; }
  bool empty() const { return runs_.empty(); }

  // The run holding `le`, or nullptr when le >= extent_count().
  const MapRun* find(uint64_t le) const;

  bool operator==(const ExtentMap&) const = default;

 private:
  std::vector<MapRun> runs_;
};

struct PvRun {
  static constexpr int64_t kFree = -1;
  uint64_t pe = 0;
  uint64_t count = 0;
  int64_t lv = kFree;  // index in VgMetadata::lvs, or kFree
  uint64_t le = 0;     // first LE of that LV (unused when free)
  int64_t job = -1;    // id of the running job whose destination this is, or -1
  // A leg of a striped run: its index and the run's leg count; `le` is then
  // the run's first LE and these PEs hold every stripes-th chunk of LEs
  // le .. le + count * stripes - 1, from chunk `stripe` on.
  uint32_t stripe = 0;
  uint32_t stripes = 1;
  // With `job`: these PEs hold that job's record (JobInfo::record_pv), no LEs.
  bool record = false;

  bool free() const { return lv == kFree; }
  uint64_t pe_end() const { return pe + count; }
  bool operator==(const PvRun&) const = default;
};

}  // namespace vgfs
