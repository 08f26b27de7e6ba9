// VgMetadata queries and validation (see include/vgfs/metadata.h).
#include <algorithm>
#include <fmt/format.h>
#include <set>

#include "vgfs/metadata.h"

namespace vgfs {

int VgMetadata::find_pv(std::string_view name) const {
  for (size_t i = 0; i < pvs.size(); ++i)
    if (pvs[i].name == name) return static_cast<int>(i);
  return -1;
}

const JobInfo* VgMetadata::find_job(uint64_t id) const {
  for (const JobInfo& j : jobs)
    if (j.id == id) return &j;
  return nullptr;
}

JobInfo* VgMetadata::find_job(uint64_t id) {
  for (JobInfo& j : jobs)
    if (j.id == id) return &j;
  return nullptr;
}

std::string_view job_state_name(JobState state) {
  switch (state) {
    case JobState::kRunning: return "running";
    case JobState::kCompleted: return "completed";
    case JobState::kAborted: return "aborted";
    case JobState::kFailed: return "failed";
  }
  return "unknown";
}

int VgMetadata::find_lv(std::string_view name) const {
  for (size_t i = 0; i < lvs.size(); ++i)
    if (lvs[i].name == name) return static_cast<int>(i);
  return -1;
}

namespace {

// The extents holding the record of running job `j` (JobInfo::record_pv set).
PvRun record_run(const VgMetadata& md, const JobInfo& j) {
  PvRun r{j.record_pe, j.record_extents(md.extent_size), md.find_lv(j.lv), j.le, static_cast<int64_t>(j.id)};
  r.record = true;
  return r;
}

// The destination PEs reserved by running job `j`; a leg job's show as
// that leg (PvRun::stripe) of its run.
PvRun destination_run(const VgMetadata& md, const JobInfo& j) {
  PvRun r{j.dst_pe, j.count, md.find_lv(j.lv), j.le, static_cast<int64_t>(j.id)};
  if (j.leg && r.lv >= 0)
    if (const MapRun* run = md.lvs[static_cast<size_t>(r.lv)].map.find(j.le); run && run->striped()) {
      r.stripe = *j.leg;
      r.stripes = run->stripe_count();
    }
  return r;
}

// Every used run of PV `pv`, sorted by PE (free runs not included): LV
// extents and the destinations reserved by running jobs.
std::vector<PvRun> used_runs(const VgMetadata& md, uint32_t pv) {
  std::vector<PvRun> used;
  for (size_t lv = 0; lv < md.lvs.size(); ++lv)
    for (const MapRun& r : md.lvs[lv].map.runs())
      for (uint32_t s = 0; s < r.stripe_count(); ++s)
        if (StripeLeg leg = r.leg(s); leg.pv == pv)
          used.push_back(PvRun{leg.pe, r.leg_extents(), static_cast<int64_t>(lv), r.le, -1, s, r.stripe_count()});
  for (const JobInfo& j : md.jobs) {
    if (j.running() && j.dst_pv == pv) used.push_back(destination_run(md, j));
    if (j.running() && j.record_pv == pv) used.push_back(record_run(md, j));
  }
  for (size_t lv = 0; lv < md.lvs.size(); ++lv)
    for (const HeldExtents& h : md.lvs[lv].held)
      if (h.pv == pv) used.push_back(PvRun{h.pe, h.count, static_cast<int64_t>(lv), 0, -1});
  std::sort(used.begin(), used.end(), [](const PvRun& a, const PvRun& b) { return a.pe < b.pe; });
  return used;
}

// Kept keys (vgfs/kept_keys.h): each a non-empty key of at most 128 bytes
// of letters, digits and _ . + -, none twice.
Status check_kept(const KeptKeys& kept, std::string_view where) {
  std::set<std::string_view> keys;
  for (const auto& [key, value] : kept) {
    bool ok = !key.empty() && key.size() <= 128;
    for (char c : key)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                  c == '.' || c == '+' || c == '-');
    if (!ok) return Status::Error(EINVAL, fmt::format("{}: kept key \"{}\" is not a key name", where,
                                                      printable(key.substr(0, 200))));
    if (!keys.insert(key).second)
      return Status::Error(EINVAL, fmt::format("{}: kept key \"{}\" appears twice", where, key));
  }
  return Status::Ok();
}

// One run of an LV: linear, or striped with a sane stripe geometry; every
// leg inside its PV.
Status check_run(const VgMetadata& md, const LvInfo& lv, const MapRun& r) {
  const std::string where = fmt::format("LV {}: LE {}", lv.name, format_range(r.le, r.count));
  if (r.count == 0) return Status::Error(EINVAL, where + " is empty");
  if (r.striped()) {
    if (r.stripe_count() > kMaxStripes)
      return Status::Error(EINVAL, fmt::format("{} has {} stripes, more than {}", where, r.stripe_count(), kMaxStripes));
    if (!is_power_of_two(r.stripe_size) || r.stripe_size < kMinStripeSize || r.stripe_size > md.extent_size)
      return Status::Error(EINVAL, fmt::format("{} has stripe size {}, not a power of two from {} to the extent "
                                               "size {}", where, r.stripe_size, format_size(kMinStripeSize),
                                               format_size(md.extent_size)));
    if (r.count % r.stripe_count() != 0)
      return Status::Error(EINVAL, fmt::format("{} has {} extents over {} stripes, not a whole number per stripe",
                                               where, r.count, r.stripe_count()));
  } else if (r.stripe_size != 0) {
    return Status::Error(EINVAL, fmt::format("{} is linear but has a stripe size {}", where, r.stripe_size));
  }
  for (uint32_t s = 0; s < r.stripe_count(); ++s) {
    const StripeLeg leg = r.leg(s);
    const uint64_t n = r.leg_extents();
    const std::string what = r.striped() ? fmt::format("{} stripe {}", where, s) : where;
    if (leg.pv >= md.pvs.size())
      return Status::Error(EINVAL, fmt::format("{} names PV #{} which does not exist", what, leg.pv));
    const PvInfo& pv = md.pvs[leg.pv];
    if (leg.pe >= pv.pe_count || n > pv.pe_count - leg.pe)
      return Status::Error(EINVAL, fmt::format("{} maps to PE {} of PV {}, which has only PEs 0-{}", what,
                                               format_range(leg.pe, n), pv.name,
                                               pv.pe_count == 0 ? 0 : pv.pe_count - 1));
  }
  return check_kept(r.kept, where);
}

}  // namespace

std::vector<PvRun> VgMetadata::pv_map(uint32_t pv) const {
  std::vector<PvRun> out;
  uint64_t next = 0;
  for (const PvRun& r : used_runs(*this, pv)) {
    if (r.pe > next) out.push_back(PvRun{next, r.pe - next, PvRun::kFree, 0, -1});
    // Merge with the previous run when it continues the same LV's LEs
    // linearly (a leg of a striped run stands alone).
    if (!out.empty() && !out.back().free() && out.back().lv == r.lv && out.back().job == r.job &&
        !out.back().record && !r.record && out.back().stripes == 1 && r.stripes == 1 && out.back().pe_end() == r.pe &&
        out.back().le + out.back().count == r.le)
      out.back().count += r.count;
    else
      out.push_back(r);
    next = r.pe_end();
  }
  if (next < pvs[pv].pe_count) out.push_back(PvRun{next, pvs[pv].pe_count - next, PvRun::kFree, 0, -1});
  return out;
}

uint64_t VgMetadata::free_extents(uint32_t pv) const {
  uint64_t used = 0;
  for (const LvInfo& lv : lvs)
    for (const MapRun& r : lv.map.runs())
      for (uint32_t s = 0; s < r.stripe_count(); ++s)
        if (r.leg(s).pv == pv) used += r.leg_extents();
  for (const JobInfo& j : jobs) {
    if (j.running() && j.dst_pv == pv) used += j.count;
    if (j.running() && j.record_pv == pv) used += j.record_extents(extent_size);
  }
  for (const LvInfo& lv : lvs)
    for (const HeldExtents& h : lv.held)
      if (h.pv == pv) used += h.count;
  return pvs[pv].pe_count - used;
}

uint64_t VgMetadata::total_free_extents() const {
  uint64_t total = 0;
  for (const PvInfo& pv : pvs) total += pv.pe_count;
  for (const LvInfo& lv : lvs) {
    total -= lv.map.extent_count();
    for (const HeldExtents& h : lv.held) total -= h.count;
  }
  for (const JobInfo& j : jobs)
    if (j.running()) total -= j.count + j.record_extents(extent_size);
  return total;
}

std::vector<std::string> VgMetadata::lvs_on_pv(uint32_t pv) const {
  std::vector<std::string> out;
  for (const LvInfo& lv : lvs) {
    bool on = false;
    for (const MapRun& r : lv.map.runs())
      for (uint32_t s = 0; s < r.stripe_count() && !on; ++s) on = r.leg(s).pv == pv;
    if (on) out.push_back(lv.name);
  }
  return out;
}

std::vector<std::string> VgMetadata::pvs_of_lv(uint32_t lv) const {
  std::vector<std::string> out;
  std::vector<bool> seen(pvs.size(), false);
  for (const MapRun& r : lvs[lv].map.runs())
    for (uint32_t s = 0; s < r.stripe_count(); ++s)
      if (StripeLeg leg = r.leg(s); leg.pv < pvs.size() && !seen[leg.pv]) {
        seen[leg.pv] = true;
        out.push_back(pvs[leg.pv].name);
      }
  return out;
}

Status VgMetadata::validate() const {
  // Names are checked in their printable form: the same verdict, and an
  // error line that no byte read from disk can break.
  VGFS_RETURN_IF_ERROR(check_name("VG", printable(name)));
  if (!is_power_of_two(extent_size) || extent_size < kMinExtentSize || extent_size > kMaxExtentSize)
    return Status::Error(EINVAL, fmt::format("extent size {} is not a power of two between 64KiB and 1GiB",
                                             format_size(extent_size)));
  if (!is_power_of_two(region_size) || region_size < 4 * KiB || extent_size % region_size != 0)
    return Status::Error(EINVAL, fmt::format("region size {} is not a power of two of at least 4KiB that "
                                             "divides the extent size {}",
                                             format_size(region_size), format_size(extent_size)));
  if (seqno > kMaxSeqno)
    return Status::Error(EINVAL, fmt::format("seqno {} is above the largest vgfs uses ({})", seqno, kMaxSeqno));
  if (next_job_id == 0 || next_job_id > kMaxJobId)
    return Status::Error(EINVAL, fmt::format("next_job_id {} is not between 1 and {}", next_job_id, kMaxJobId));
  if (pvs.empty()) return Status::Error(EINVAL, fmt::format("VG {} has no PV", name));
  if (pvs.size() > kMaxPvs) return Status::Error(EINVAL, fmt::format("VG {} has more than {} PVs", name, kMaxPvs));
  VGFS_RETURN_IF_ERROR(check_kept(kept, fmt::format("VG {}", name)));

  std::set<std::string_view> names;
  std::set<Uuid> uuids;
  for (const PvInfo& pv : pvs) {
    VGFS_RETURN_IF_ERROR(check_name("PV", printable(pv.name)));
    if (!names.insert(pv.name).second)
      return Status::Error(EINVAL, fmt::format("PV name {} is used twice", pv.name));
    if (!uuids.insert(pv.uuid).second)
      return Status::Error(EINVAL, fmt::format("PV UUID {} is used twice", format_uuid(pv.uuid)));
    if (pv.path.empty() || pv.path.size() > 4096 || pv.path.find('\0') != std::string::npos)
      return Status::Error(EINVAL, fmt::format("PV {}: path \"{}\" is empty, too long or holds a NUL byte", pv.name,
                                               printable(pv.path.substr(0, 200))));
    // 4 KiB, not 1 MiB: LVM2 PVs may start their PEs at 64 KiB or 192 KiB
    // (vgfs's own labels keep the 1 MiB rule: decode_label in vgfs/pv_format.h).
    if (pv.pe_start % (4 * KiB) != 0)
      return Status::Error(EINVAL, fmt::format("PV {}: pe_start {} is not aligned to 4KiB", pv.name, pv.pe_start));
    if (pv.pe_count > (UINT64_MAX - pv.pe_start) / extent_size)
      return Status::Error(EINVAL, fmt::format("PV {}: PE count {} is too large", pv.name, pv.pe_count));
    VGFS_RETURN_IF_ERROR(check_kept(pv.kept, fmt::format("PV {}", pv.name)));
  }
  names.clear();
  for (const LvInfo& lv : lvs) {
    VGFS_RETURN_IF_ERROR(check_name("LV", printable(lv.name)));
    if (!names.insert(lv.name).second)
      return Status::Error(EINVAL, fmt::format("LV name {} is used twice", lv.name));
    if (lv.map.empty() && lv.unsupported.empty())
      return Status::Error(EINVAL, fmt::format("LV {} has no extents", lv.name));
    if (!lv.unsupported.empty() && !lv.map.empty())
      return Status::Error(EINVAL, fmt::format("LV {} is not supported ({}) but has runs", lv.name,
                                               printable(lv.unsupported)));
    if (lv.unsupported.empty() && !lv.held.empty())
      return Status::Error(EINVAL, fmt::format("LV {} holds extents outside its runs", lv.name));
    for (const HeldExtents& h : lv.held)
      if (h.pv >= pvs.size() || h.count == 0 || h.pe >= pvs[h.pv].pe_count || h.count > pvs[h.pv].pe_count - h.pe)
        return Status::Error(EINVAL, fmt::format("LV {} holds PEs {} of a PV that has not them", lv.name,
                                                 format_range(h.pe, h.count)));
    if (lv.mode > 0777) return Status::Error(EINVAL, fmt::format("LV {}: mode {:o} is not a permission mode", lv.name, lv.mode));
    if (lv.uid && *lv.uid > kMaxOwnerId)
      return Status::Error(EINVAL, fmt::format("LV {}: uid {} is not a user id", lv.name, *lv.uid));
    if (lv.gid && *lv.gid > kMaxOwnerId)
      return Status::Error(EINVAL, fmt::format("LV {}: gid {} is not a group id", lv.name, *lv.gid));
    VGFS_RETURN_IF_ERROR(check_kept(lv.kept, fmt::format("LV {}", lv.name)));
    for (const MapRun& r : lv.map.runs()) VGFS_RETURN_IF_ERROR(check_run(*this, lv, r));
    // The LV file's size must be a valid off_t.
    if (lv.map.extent_count() > static_cast<uint64_t>(INT64_MAX) / extent_size)
      return Status::Error(EINVAL, fmt::format("LV {} has {} extents, more than a file can hold", lv.name,
                                               lv.map.extent_count()));
  }
  std::set<uint64_t> job_ids;
  // Record places of running jobs, per source PV: [offset, end).
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> records(pvs.size());
  for (const JobInfo& j : jobs) {
    if (j.id == 0 || j.id >= next_job_id || !job_ids.insert(j.id).second)
      return Status::Error(EINVAL, fmt::format("job {} has a bad or repeated id (ids run from 1 to next_job_id {})",
                                               j.id, next_job_id));
    if (j.src_pv >= pvs.size() || j.dst_pv >= pvs.size())
      return Status::Error(EINVAL, fmt::format("job {} names a PV that does not exist", j.id));
    VGFS_RETURN_IF_ERROR(check_name("LV", printable(j.lv)).prefixed(fmt::format("job {}", j.id)));
    if (!j.running()) continue;
    int lv = find_lv(j.lv);
    if (lv < 0) return Status::Error(EINVAL, fmt::format("job {} moves unknown LV {}", j.id, j.lv));
    if (j.count == 0 || j.dst_pe >= pvs[j.dst_pv].pe_count || j.count > pvs[j.dst_pv].pe_count - j.dst_pe)
      return Status::Error(EINVAL, fmt::format("job {} has an out-of-range source or destination", j.id));
    VGFS_RETURN_IF_ERROR(check_job_source(j));
    if (j.record_size == 0 || j.record_offset % (4 * KiB) != 0 || j.record_size % (4 * KiB) != 0 ||
        j.record_offset > UINT64_MAX - j.record_size)
      return Status::Error(EINVAL, fmt::format("job {}: record place {} {} is not a whole number of 4KiB blocks",
                                               j.id, j.record_offset, j.record_size));
    if (j.record_pv) {  // in extents of its own: inside the PV (overlaps are checked with the maps below)
      if (*j.record_pv >= pvs.size() || j.record_offset + j.record_size > UINT64_MAX - extent_size)
        return Status::Error(EINVAL, fmt::format("job {}: its record names a PV that does not exist", j.id));
      const uint64_t n = j.record_extents(extent_size), count = pvs[*j.record_pv].pe_count;
      if (j.record_pe >= count || n > count - j.record_pe)
        return Status::Error(EINVAL, fmt::format("job {}: its record at PE {} is outside PV {}", j.id,
                                                 format_range(j.record_pe, n), pvs[*j.record_pv].name));
      continue;
    }
    records[j.src_pv].emplace_back(j.record_offset, j.record_offset + j.record_size);
  }
  for (uint32_t pv = 0; pv < pvs.size(); ++pv) {
    std::sort(records[pv].begin(), records[pv].end());
    for (size_t i = 1; i < records[pv].size(); ++i)
      if (records[pv][i].first < records[pv][i - 1].second)
        return Status::Error(EINVAL, fmt::format("the records of two running jobs overlap at byte {} of the "
                                                 "migration area of PV {}", records[pv][i].first, pvs[pv].name));
  }
  // Every used run of every PV, sorted by PV then PE, in one pass (per-PV
  // passes would cost PVs x runs).
  struct Used {
    uint32_t pv;
    PvRun run;
  };
  std::vector<Used> used;
  for (size_t lv = 0; lv < lvs.size(); ++lv)
    for (const MapRun& r : lvs[lv].map.runs())
      for (uint32_t s = 0; s < r.stripe_count(); ++s) {
        const StripeLeg leg = r.leg(s);
        used.push_back(Used{leg.pv, PvRun{leg.pe, r.leg_extents(), static_cast<int64_t>(lv), r.le, -1, s,
                                          r.stripe_count()}});
      }
  for (const JobInfo& j : jobs) {
    if (j.running()) used.push_back(Used{j.dst_pv, destination_run(*this, j)});
    if (j.running() && j.record_pv) used.push_back(Used{*j.record_pv, record_run(*this, j)});
  }
  for (size_t lv = 0; lv < lvs.size(); ++lv)
    for (const HeldExtents& h : lvs[lv].held) used.push_back(Used{h.pv, PvRun{h.pe, h.count, static_cast<int64_t>(lv), 0, -1}});
  std::sort(used.begin(), used.end(),
            [](const Used& a, const Used& b) { return a.pv != b.pv ? a.pv < b.pv : a.run.pe < b.run.pe; });
  for (size_t i = 1; i < used.size(); ++i) {
    if (used[i].pv != used[i - 1].pv) continue;
    const uint32_t pv = used[i].pv;
    const PvRun& a = used[i - 1].run;
    const PvRun& b = used[i].run;
    if (b.pe < a.pe_end()) {
      uint64_t first = b.pe, last = std::min(a.pe_end(), b.pe_end()) - 1;
      if (a.job >= 0 || b.job >= 0)
        return Status::Error(EINVAL, fmt::format("PE {} of PV {} is reserved by job {} and used otherwise too",
                                                 format_range(first, last - first + 1), pvs[pv].name,
                                                 a.job >= 0 ? a.job : b.job));
      // Who uses the PEs: LEs of a linear run, or a stripe of a striped run.
      auto user = [&](const PvRun& r) {
        if (r.stripes == 1)
          return fmt::format("LV {} LE {}", lvs[r.lv].name, format_range(r.le + (first - r.pe), last - first + 1));
        return fmt::format("LV {} LE {} stripe {}", lvs[r.lv].name, format_range(r.le, r.count * r.stripes),
                           r.stripe);
      };
      return Status::Error(EINVAL, fmt::format("PE {} of PV {} is mapped twice: by {} and by {}",
                                               format_range(first, last - first + 1), pvs[pv].name, user(a), user(b)));
    }
  }
  return Status::Ok();
}

Status VgMetadata::check_job_source(const JobInfo& j) const {
  const int lv = find_lv(j.lv);
  if (lv < 0) return Status::Error(EINVAL, fmt::format("job {} moves unknown LV {}", j.id, printable(j.lv)));
  if (j.src_pv >= pvs.size()) return Status::Error(EINVAL, fmt::format("job {} names a PV that does not exist", j.id));
  const MapRun* run = lvs[static_cast<size_t>(lv)].map.find(j.le);
  if (!j.leg) {
    if (run && run->striped())
      return Status::Error(EINVAL, fmt::format("job {}: LV {} LE {} lies on a striped run, and the job names no leg",
                                               j.id, j.lv, format_range(j.le, j.count)));
    if (!run || j.count > run->le_end() - j.le || run->pv != j.src_pv || run->pe + (j.le - run->le) != j.src_pe)
      return Status::Error(EINVAL, fmt::format("job {}: LV {} LE {} is not mapped to its source PV {} PE {}", j.id,
                                               j.lv, format_range(j.le, j.count), pvs[j.src_pv].name,
                                               format_range(j.src_pe, j.count)));
    return Status::Ok();
  }
  // A leg job: LE `le` starts a striped run, the leg is one of its legs, and
  // the job moves the whole leg from where the run has it.
  if (!run || !run->striped() || run->le != j.le)
    return Status::Error(EINVAL, fmt::format("job {}: leg {}: LV {} LE {} does not start a striped run", j.id, *j.leg,
                                             j.lv, j.le));
  if (*j.leg >= run->stripe_count())
    return Status::Error(EINVAL, fmt::format("job {}: leg {} is out of range: LV {} LE {} is striped over {} PVs "
                                             "(legs 0-{})", j.id, *j.leg, j.lv, format_range(run->le, run->count),
                                             run->stripe_count(), run->stripe_count() - 1));
  const StripeLeg leg = run->leg(*j.leg);
  if (leg.pv != j.src_pv || leg.pe != j.src_pe || j.count != run->leg_extents())
    return Status::Error(EINVAL, fmt::format("job {}: leg {} of LV {} LE {} is PV {} PE {}, not its source PV {} PE {}",
                                             j.id, *j.leg, j.lv, format_range(run->le, run->count), pvs[leg.pv].name,
                                             format_range(leg.pe, run->leg_extents()), pvs[j.src_pv].name,
                                             format_range(j.src_pe, j.count)));
  return Status::Ok();
}

IndexRange VgMetadata::job_les(const JobInfo& j) const {
  if (j.leg)
    if (int lv = find_lv(j.lv); lv >= 0)
      if (const MapRun* run = lvs[static_cast<size_t>(lv)].map.find(j.le); run && run->striped())
        return {run->le, run->count};
  return {j.le, j.count};
}

}  // namespace vgfs
