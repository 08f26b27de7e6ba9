// Run arithmetic of the LE→PE map (see include/vgfs/extent_map.h).
#include "vgfs/extent_map.h"

#include <algorithm>
#include <cassert>

namespace vgfs {

void ExtentMap::append(uint32_t pv, uint64_t pe, uint64_t count) {
  if (count == 0) return;
  if (!runs_.empty()) {
    MapRun& last = runs_.back();
    if (last.pv == pv && last.pe + last.count == pe) {
      last.count += count;
      return;
    }
  }
  runs_.push_back(MapRun{extent_count(), count, pv, pe});
}

void ExtentMap::truncate(uint64_t extent_count) {
  while (!runs_.empty() && runs_.back().le >= extent_count) runs_.pop_back();
  if (!runs_.empty() && runs_.back().le_end() > extent_count) runs_.back().count = extent_count - runs_.back().le;
}

void ExtentMap::remap(uint64_t le, uint64_t count, uint32_t pv, uint64_t pe) {
  assert(le + count <= extent_count());
  std::vector<MapRun> old;
  old.swap(runs_);
  bool placed = false;
  for (const MapRun& r : old) {
    if (r.le_end() <= le) {  // wholly before the range
      append(r.pv, r.pe, r.count);
      continue;
    }
    if (r.le < le) append(r.pv, r.pe, le - r.le);  // head before the range
    if (!placed) {
      append(pv, pe, count);
      placed = true;
    }
    if (r.le_end() > le + count) {  // tail after the range
      uint64_t start = std::max(r.le, le + count);
      append(r.pv, r.pe + (start - r.le), r.le_end() - start);
    }
  }
}

const MapRun* ExtentMap::find(uint64_t le) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), le,
                             [](uint64_t value, const MapRun& r) { return value < r.le; });
  if (it == runs_.begin()) return nullptr;
  --it;
  return le < it->le_end() ? &*it : nullptr;
}

}  // namespace vgfs
