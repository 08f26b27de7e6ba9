// LV and PV lifecycle on a live mount (include/vgfs/volume_manager.h, SPEC §7,
// docs/allocation.md). Each command checks everything first, then makes one
// metadata commit, then shows the change in the VolumeSet.
#include <fmt/format.h>

#include <algorithm>

#include "manager/job.h"

namespace vgfs {

namespace {

uint64_t extents_for(const VgMetadata& md, uint64_t size) { return (size + md.extent_size - 1) / md.extent_size; }

// "N extents (SIZE)", with the rounding said when there was one.
std::string size_note(const VgMetadata& md, uint64_t asked, uint64_t extents) {
  std::string note = fmt::format("{} extents ({})", extents, format_size(extents * md.extent_size));
  if (extents * md.extent_size != asked) note += fmt::format(", rounded up from {}", format_size(asked));
  return note;
}

Result<std::vector<uint32_t>> pv_indices(const VgMetadata& md, const std::vector<std::string>& names) {
  std::vector<uint32_t> out;
  for (const std::string& n : names) {
    int i = md.find_pv(n);
    if (i < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", n));
    out.push_back(static_cast<uint32_t>(i));
  }
  return out;
}

}  // namespace

// New extents read as zeros, never as what an earlier LV left there; the
// zeroes are durable before the commit that hands the PEs out.
Status VolumeManager::zero_extents(const VgMetadata& md, const std::vector<MapRun>& runs) {
  std::vector<bool> touched(md.pvs.size(), false);
  for (const MapRun& r : runs) {
    VGFS_RETURN_IF_ERROR(store_.pv(r.pv).zero(md.pvs[r.pv].pe_start + r.pe * md.extent_size, r.count * md.extent_size));
    touched[r.pv] = true;
  }
  for (uint32_t i = 0; i < touched.size(); ++i)
    if (touched[i]) VGFS_RETURN_IF_ERROR(store_.pv(i).sync());
  return Status::Ok();
}

std::vector<std::string> VolumeManager::pv_names() const {
  std::lock_guard lock(admin_);
  std::vector<std::string> out;
  for (const PvInfo& pv : store_.metadata().pvs) out.push_back(pv.name);
  return out;
}

// An LV that is open or moving cannot shrink or go.
Status VolumeManager::check_idle(const VgMetadata& md, const std::string& lv, const char* verb) const {
  if (std::optional<uint32_t> slot = volume_.slot(lv); slot && volume_.open_count(*slot) > 0)
    return Status::Error(EBUSY, fmt::format("cannot {} LV {}: it is open", verb, lv));
  for (const JobInfo& j : md.jobs)
    if (j.running() && j.lv == lv)
      return Status::Error(EBUSY, fmt::format("cannot {} LV {}: job {} is moving it", verb, lv, j.id));
  return Status::Ok();
}

Result<std::string> VolumeManager::lvcreate(const std::string& name, uint64_t size, const std::vector<std::string>& pvs) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_name("LV", name));
  if (md.find_lv(name) >= 0) return Status::Error(EEXIST, fmt::format("LV {} exists already", name));
  Result<std::vector<uint32_t>> candidates = pv_indices(md, pvs);
  if (!candidates.ok()) return candidates.status();
  const uint64_t extents = extents_for(md, size);
  Result<std::vector<MapRun>> runs = allocate_extents(md, extents, *candidates);
  if (!runs.ok()) return runs.status().prefixed(fmt::format("LV {}", name));
  VGFS_RETURN_IF_ERROR(zero_extents(md, *runs));
  LvInfo lv{name, new_uuid(), 0600, {}};
  for (const MapRun& r : *runs) lv.map.append(r.pv, r.pe, r.count);
  md.lvs.push_back(std::move(lv));
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  const VgMetadata& now = store_.metadata();
  Result<uint32_t> slot = volume_.publish_lv(now, static_cast<uint32_t>(now.lvs.size() - 1));
  if (!slot.ok()) return slot.status();
  return fmt::format("LV {} created: {}", name, size_note(now, size, extents));
}

Result<std::string> VolumeManager::lvextend(const std::string& name, uint64_t size) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  ExtentMap& map = md.lvs[static_cast<size_t>(lv)].map;
  const uint64_t extents = extents_for(md, size), have = map.extent_count();
  if (extents <= have)
    return Status::Error(EINVAL, fmt::format("LV {} has {} extents ({}) already; lvextend only grows (use lvreduce)",
                                             name, have, format_size(have * md.extent_size)));
  const uint64_t need = extents - have;
  // The PEs right after the LV's last run first: the map stays one run longer.
  const MapRun& last = map.runs().back();
  std::vector<MapRun> runs;
  for (const PvRun& f : md.pv_map(last.pv))
    if (f.free() && f.pe == last.pe + last.count && f.count >= need) runs.push_back(MapRun{have, need, last.pv, f.pe});
  if (runs.empty()) {
    Result<std::vector<MapRun>> placed = allocate_extents(md, need, {}, have);
    if (!placed.ok()) return placed.status().prefixed(fmt::format("LV {}", name));
    runs = *placed;
  }
  VGFS_RETURN_IF_ERROR(zero_extents(md, runs));
  for (const MapRun& r : runs) map.append(r.pv, r.pe, r.count);
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  Result<uint32_t> slot = volume_.publish_lv(store_.metadata(), static_cast<uint32_t>(lv));
  if (!slot.ok()) return slot.status();
  return fmt::format("LV {} extended to {}", name, size_note(store_.metadata(), size, extents));
}

Result<std::string> VolumeManager::lvreduce(const std::string& name, uint64_t size) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  ExtentMap& map = md.lvs[static_cast<size_t>(lv)].map;
  const uint64_t extents = extents_for(md, size), have = map.extent_count();
  if (extents >= have)
    return Status::Error(EINVAL, fmt::format("LV {} has {} extents ({}); lvreduce only shrinks (use lvextend)", name,
                                             have, format_size(have * md.extent_size)));
  VGFS_RETURN_IF_ERROR(check_idle(md, name, "reduce"));
  map.truncate(extents);
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  Result<uint32_t> slot = volume_.publish_lv(store_.metadata(), static_cast<uint32_t>(lv));
  if (!slot.ok()) return slot.status();
  volume_.quiesce();  // the freed PEs go back to the allocator only after this
  return fmt::format("LV {} reduced to {}", name, size_note(store_.metadata(), size, extents));
}

Result<std::string> VolumeManager::lvremove(const std::string& name) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  VGFS_RETURN_IF_ERROR(check_idle(md, name, "remove"));
  md.lvs.erase(md.lvs.begin() + lv);
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  if (std::optional<uint32_t> slot = volume_.slot(name)) volume_.remove_lv(*slot);
  volume_.quiesce();
  return fmt::format("LV {} removed", name);
}

Result<std::string> VolumeManager::lvrename(const std::string& from, const std::string& to) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  int lv = md.find_lv(from);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", from));
  VGFS_RETURN_IF_ERROR(check_name("LV", to));
  if (md.find_lv(to) >= 0) return Status::Error(EEXIST, fmt::format("LV {} exists already", to));
  md.lvs[static_cast<size_t>(lv)].name = to;
  for (JobInfo& j : md.jobs)
    if (j.lv == from) j.lv = to;
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  for (auto& job : jobs_)
    if (job->info.lv == from) job->info.lv = to;
  if (std::optional<uint32_t> slot = volume_.slot(from)) volume_.rename_lv(*slot, to);
  return fmt::format("LV {} renamed to {}", from, to);
}

Result<std::string> VolumeManager::pvadd(const std::string& path, std::string name) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  if (name.empty())
    for (int n = 0; name.empty(); ++n)
      if (md.find_pv(fmt::format("pv{}", n)) < 0) name = fmt::format("pv{}", n);
  VGFS_RETURN_IF_ERROR(check_name("PV", name));
  if (md.find_pv(name) >= 0) return Status::Error(EEXIST, fmt::format("PV {} exists already", name));
  for (const PvInfo& pv : md.pvs)
    if (pv.path == path) return Status::Error(EEXIST, fmt::format("{} is PV {} of this VG already", path, pv.name));
  Result<PvDevice> dev = PvDevice::open(path, true, fmt::format("PV {} ({})", name, path));
  if (!dev.ok()) return dev.status();
  VGFS_RETURN_IF_ERROR(dev->lock(true));
  VGFS_RETURN_IF_ERROR(check_unused(*dev));
  PvLabel label{new_uuid(), md.uuid, PvLayout::standard(dev->size(), md.extent_size)};
  if (label.layout.pe_count == 0)
    return Status::Error(ENOSPC, fmt::format("{}: {} bytes is too small for one {} extent after {} bytes of label and "
                                             "metadata", dev->label(), dev->size(), format_size(md.extent_size),
                                             label.layout.pe_start));
  md.pvs.push_back(PvInfo{name, label.pv_uuid, path, label.layout.pe_start, label.layout.pe_count});
  VGFS_RETURN_IF_ERROR(store_.add_pv(std::move(*dev), label));
  Status st = commit(std::move(md));
  if (!st.ok()) {
    std::unique_ptr<PvDevice> gone = store_.remove_pv(static_cast<uint32_t>(store_.pv_count() - 1));
    (void)wipe_label(*gone);
    return st;
  }
  volume_.republish_all(store_.metadata());
  return fmt::format("PV {} added: {} extents of {}", name, label.layout.pe_count, format_size(md.extent_size));
}

Result<std::string> VolumeManager::pvremove(const std::string& name) {
  std::lock_guard lock(admin_);
  VgMetadata md = store_.metadata();
  int index = md.find_pv(name);
  if (index < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", name));
  const uint32_t pv = static_cast<uint32_t>(index);
  std::vector<std::string> users = md.lvs_on_pv(pv);
  if (!users.empty())
    return Status::Error(EBUSY, fmt::format("PV {} holds extents of LV {}; pvmove {} first", name,
                                            fmt::join(users, ", "), name));
  for (const JobInfo& j : md.jobs)
    if (j.running() && (j.src_pv == pv || j.dst_pv == pv))
      return Status::Error(EBUSY, fmt::format("PV {} is used by running job {}", name, j.id));
  if (md.pvs.size() == 1) return Status::Error(EINVAL, fmt::format("PV {} is the last PV of VG {}", name, md.name));

  // PV indices above it move down one, in the maps and the jobs.
  auto shift = [&](uint32_t i) { return i > pv ? i - 1 : i; };
  md.pvs.erase(md.pvs.begin() + index);
  for (LvInfo& lv : md.lvs) {
    ExtentMap shifted;
    for (const MapRun& r : lv.map.runs()) shifted.append(shift(r.pv), r.pe, r.count);
    lv.map = std::move(shifted);
  }
  auto uses = [&](const JobInfo& j) { return j.src_pv == pv || j.dst_pv == pv; };
  std::erase_if(md.jobs, uses);
  for (JobInfo& j : md.jobs) {
    j.src_pv = shift(j.src_pv);
    j.dst_pv = shift(j.dst_pv);
  }
  const PvLabel label = store_.label(pv);
  std::unique_ptr<PvDevice> dev = store_.remove_pv(pv);
  Status st = commit(std::move(md));
  if (!st.ok()) {
    store_.restore_pv(pv, std::move(dev), label);
    return st;
  }
  std::erase_if(jobs_, [&](const std::unique_ptr<Job>& j) {
    if (!uses(j->info)) return false;
    forget(*j);  // ended, but a copier may still be leaving its last step
    return true;
  });
  for (auto& j : jobs_) {
    j->info.src_pv = shift(j->info.src_pv);
    j->info.dst_pv = shift(j->info.dst_pv);
  }
  volume_.republish_all(store_.metadata());
  volume_.quiesce();  // no request holds the device any more
  (void)wipe_label(*dev);
  return fmt::format("PV {} removed from VG {}; take it out of the config file too", name, store_.metadata().name);
}

}  // namespace vgfs
