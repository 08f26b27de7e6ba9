// Extent placement for new and growing LVs (see allocate_extents in
// include/vgfs/metadata.h and docs/allocation.md).
//
// Why this policy: one contiguous run keeps the LV's map a single run (the
// cheapest lookups and sequential I/O on one PV); best fit keeps large free
// runs intact for later large LVs. When nothing fits, largest-first gives the
// fewest runs for the request.
#include <algorithm>
#include <fmt/format.h>

#include "vgfs/metadata.h"

namespace vgfs {

Result<std::vector<MapRun>> allocate_extents(const VgMetadata& md, uint64_t extents,
                                             std::span<const uint32_t> candidates, uint64_t first_le) {
  if (extents == 0) return std::vector<MapRun>{};
  // Each PV once, in PV order (ties go to the lowest PV, whatever the order given).
  std::vector<uint32_t> pvs(candidates.begin(), candidates.end());
  if (pvs.empty())
    for (uint32_t i = 0; i < md.pvs.size(); ++i) pvs.push_back(i);
  std::sort(pvs.begin(), pvs.end());
  pvs.erase(std::unique(pvs.begin(), pvs.end()), pvs.end());

  std::vector<PvRun> free_runs;  // lv field unused; pe/count and the PV in `le`
  for (uint32_t pv : pvs)
    for (const PvRun& r : md.pv_map(pv))
      if (r.free()) free_runs.push_back(PvRun{r.pe, r.count, PvRun::kFree, pv});

  uint64_t available = 0;
  for (const PvRun& r : free_runs) available += r.count;
  if (available < extents)
    return Status::Error(ENOSPC, fmt::format("not enough free extents: {} needed, {} free on the candidate PVs",
                                             extents, available));

  std::vector<MapRun> out;
  // Best fit: the smallest free run that holds everything (ties: PV order, then PE).
  const PvRun* best = nullptr;
  for (const PvRun& r : free_runs)
    if (r.count >= extents && (!best || r.count < best->count)) best = &r;
  if (best) {
    out.push_back(MapRun{first_le, extents, static_cast<uint32_t>(best->le), best->pe});
    return out;
  }
  // Fewest runs: largest free runs first (stable: PV order, then PE on ties).
  std::stable_sort(free_runs.begin(), free_runs.end(),
                   [](const PvRun& a, const PvRun& b) { return a.count > b.count; });
  uint64_t le = first_le, left = extents;
  for (const PvRun& r : free_runs) {
    if (left == 0) break;
    uint64_t take = std::min(left, r.count);
    out.push_back(MapRun{le, take, static_cast<uint32_t>(r.le), r.pe});
    le += take;
    left -= take;
  }
  return out;
}

}  // namespace vgfs
