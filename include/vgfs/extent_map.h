// ExtentMap: one LV's LE→PE map, stored as runs (the LE→PE form of docs/records.md).
//
// Invariant: runs are sorted by LE, cover LE 0 .. extent_count()-1 with no
// gap and no overlap, every run has count >= 1, and two neighbouring runs are
// never contiguous on the same PV (they would have been merged). So a map
// costs memory per run, not per extent, and find() is O(log runs).
//
// PvRun is one run of a PV's PE→LE map (docs/records.md): the derived inverse of every
// LV's ExtentMap, with free runs (lv == kFree) filling the gaps.
#pragma once

#include <cstdint>
#include <vector>

namespace vgfs {

struct MapRun {
  uint64_t le = 0;     // first logical extent
  uint64_t count = 0;  // number of extents
  uint32_t pv = 0;     // index of the PV in VgMetadata::pvs
  uint64_t pe = 0;     // first physical extent on that PV

  uint64_t le_end() const { return le + count; }
  bool operator==(const MapRun&) const = default;
};

class ExtentMap {
 public:
  ExtentMap() = default;

  // Appends `count` extents at the end of the map, merging with the last run
  // when they continue it on the same PV.
  void append(uint32_t pv, uint64_t pe, uint64_t count);
  // Drops every extent at or above `extent_count`.
  void truncate(uint64_t extent_count);
  // Replaces LEs [le, le+count) with the PV range pv:pe.. (used by the
  // migration switch); the range must lie inside the map.
  void remap(uint64_t le, uint64_t count, uint32_t pv, uint64_t pe);

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

  bool free() const { return lv == kFree; }
  uint64_t pe_end() const { return pe + count; }
  bool operator==(const PvRun&) const = default;
};

}  // namespace vgfs
