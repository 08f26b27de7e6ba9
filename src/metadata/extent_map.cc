// Run arithmetic of the LE→PE map (see include/vgfs/extent_map.h).
#include "vgfs/extent_map.h"

#include <algorithm>
#include <cassert>

namespace vgfs {

void ExtentMap::append(uint32_t pv, uint64_t pe, uint64_t count) {
  if (count == 0) return;
  if (!runs_.empty()) {
    MapRun& last = runs_.back();
    if (last.plain() && last.pv == pv && last.pe + last.count == pe) {
      last.count += count;
      return;
    }
  }
  runs_.push_back(MapRun{extent_count(), count, pv, pe});
}

void ExtentMap::append_run(MapRun run) {
  if (run.count == 0) return;
  if (run.plain()) return append(run.pv, run.pe, run.count);
  run.le = extent_count();
  runs_.push_back(std::move(run));
}

void ExtentMap::truncate(uint64_t extent_count) {
  while (!runs_.empty() && runs_.back().le >= extent_count) runs_.pop_back();
  if (!runs_.empty() && runs_.back().le_end() > extent_count) runs_.back().count = extent_count - runs_.back().le;
}

namespace {
// LEs [from, to) of linear run `r`, with its kept keys.
MapRun slice(const MapRun& r, uint64_t from, uint64_t to) {
  MapRun out = r;
  out.pe = r.pe + (from - r.le);
  out.le = from;
  out.count = to - from;
  return out;
}
}  // namespace

void ExtentMap::remap(uint64_t le, uint64_t count, uint32_t pv, uint64_t pe) {
  assert(le + count <= extent_count());
  std::vector<MapRun> old;
  old.swap(runs_);
  const uint64_t end = le + count;
  for (const MapRun& r : old) {
    if (r.le_end() <= le || r.le >= end) {  // wholly outside the range
      append_run(r);
      continue;
    }
    assert(!r.striped());
    if (r.le < le) append_run(slice(r, r.le, le));  // head before the range
    // The overlapped part, moved to the destination with its own keys.
    const uint64_t from = std::max(r.le, le), to = std::min(r.le_end(), end);
    MapRun moved = slice(r, from, to);
    moved.pv = pv;
    moved.pe = pe + (from - le);
    append_run(std::move(moved));
    if (r.le_end() > end) append_run(slice(r, end, r.le_end()));  // tail after the range
  }
}

void ExtentMap::remap_leg(uint64_t le, uint32_t leg, uint32_t pv, uint64_t pe) {
  auto it = std::lower_bound(runs_.begin(), runs_.end(), le, [](const MapRun& r, uint64_t v) { return r.le < v; });
  assert(it != runs_.end() && it->le == le && it->striped() && leg < it->stripe_count());
  if (leg == 0) {
    it->pv = pv;
    it->pe = pe;
  } else {
    it->more_legs[leg - 1] = StripeLeg{pv, pe};
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
