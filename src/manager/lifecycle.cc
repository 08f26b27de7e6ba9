// LV and PV lifecycle on a live mount (include/vgfs/volume_manager.h, README.md "Control file",
// docs/allocation.md). Each command checks everything first, then makes one
// metadata commit, then shows the change in the VolumeSet.
#include <fmt/format.h>

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "manager/job.h"

namespace vgfs {

namespace {

// Whole extents for `size` bytes, without the overflow of size + extent - 1.
uint64_t extents_for(const VgMetadata& md, uint64_t size) {
  return size / md.extent_size + (size % md.extent_size != 0);
}

// A size no VG of this extent size could hold is refused by name before any
// arithmetic on it: every later product (extents x extent size) fits 64 bits.
Status check_size(const VgMetadata& md, const std::string& lv, uint64_t size) {
  uint64_t total = 0;
  for (const PvInfo& p : md.pvs) total += p.pe_count;
  if (extents_for(md, size) > total)
    return Status::Error(ENOSPC, fmt::format("LV {}: {} is too large: VG {} has {} extents ({}) in all", lv,
                                             format_size(size), md.name, total,
                                             format_size(total * md.extent_size)));
  return Status::Ok();
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

// The device number of the filesystem mounted at `mount_point`, from
// /proc/self/mountinfo (stat on our own mount point would wait for this
// very daemon). The last entry for it is the one on top.
std::optional<dev_t> mount_device(const std::string& mount_point) {
  std::ifstream in("/proc/self/mountinfo");
  std::optional<dev_t> found;
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string id, parent, majmin, root, point;
    if (!(f >> id >> parent >> majmin >> root >> point)) continue;
    std::string unescaped;  // mountinfo writes space, tab, newline and backslash as \ooo
    for (size_t i = 0; i < point.size(); ++i) {
      auto octal = [&](size_t k) { return point[k] >= '0' && point[k] <= '7'; };
      if (point[i] == '\\' && i + 3 < point.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
        unescaped += static_cast<char>((point[i + 1] - '0') * 64 + (point[i + 2] - '0') * 8 + (point[i + 3] - '0'));
        i += 3;
      } else {
        unescaped += point[i];
      }
    }
    if (unescaped != mount_point) continue;
    unsigned maj = 0, min = 0;
    if (std::sscanf(majmin.c_str(), "%u:%u", &maj, &min) == 2) found = makedev(maj, min);
  }
  return found;
}

// The file behind a loop device, if `st` is one.
std::optional<std::string> loop_backing_file(const struct stat& st) {
  if (!S_ISBLK(st.st_mode)) return std::nullopt;
  std::ifstream in(fmt::format("/sys/dev/block/{}:{}/loop/backing_file", major(st.st_rdev), minor(st.st_rdev)));
  std::string path;
  if (!std::getline(in, path) || path.empty()) return std::nullopt;
  return path;
}

}  // namespace

// mountinfo shows the mount point with symlinks resolved. Only its parent
// is resolved here: resolving the mount point itself would stat the root of
// this mount, which waits for this daemon.
void VolumeManager::set_mount_point(const std::string& path) {
  std::string resolved = path;
  const size_t slash = path.find_last_of('/');
  if (slash != std::string::npos && slash + 1 < path.size()) {
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    if (char* real = ::realpath(parent.c_str(), nullptr)) {
      resolved = (std::string(real) == "/" ? "" : std::string(real)) + path.substr(slash);
      std::free(real);
    }
  }
  std::lock_guard lock(admin_);
  mount_point_ = std::move(resolved);
}

// A PV on the VG's own mount (an LV file, or a loop device backed by one)
// would route the PV's I/O back into this daemon: its first fsync waits for
// itself. `opened` is the fstat of the open device, to check the file that
// was opened, not only the path's target a moment before.
Status VolumeManager::check_not_on_mount(const std::string& path, const struct stat* opened) const {
  if (mount_point_.empty()) return Status::Ok();
  std::optional<dev_t> mount = mount_device(mount_point_);
  if (!mount) return Status::Ok();
  struct stat st {};
  if (opened) st = *opened;
  else if (::stat(path.c_str(), &st) != 0) return Status::Ok();  // PvDevice::open reports it
  const std::string refusal =
      fmt::format("{} is on this VG's own mount {}; a PV cannot live inside the VG it serves", path, mount_point_);
  if (st.st_dev == *mount) return Status::Error(EINVAL, refusal);
  if (std::optional<std::string> backing = loop_backing_file(st)) {
    struct stat b {};
    // A backing file on this mount, or one that cannot be checked (the
    // kernel appends " (deleted)") is refused the same way.
    if (::stat(backing->c_str(), &b) != 0 || b.st_dev == *mount)
      return Status::Error(EINVAL, fmt::format("{} is a loop device backed by {}, which is on this VG's own mount "
                                               "{} or cannot be checked; a PV cannot live inside the VG it serves",
                                               path, *backing, mount_point_));
  }
  return Status::Ok();
}

// New extents read as zeros, never as what an earlier LV left there; the
// zeroes are durable before the commit that hands the PEs out. Runs holding
// commands_ (the PV list cannot change), with or without admin_.
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
  std::shared_ptr<const Snapshot> s = snapshot();
  std::vector<std::string> out;
  for (const PvInfo& pv : s->metadata.pvs) out.push_back(pv.name);
  return out;
}

namespace {

// Whether every run is still free in `md`.
Status check_still_free(const VgMetadata& md, const std::vector<MapRun>& runs) {
  for (const MapRun& r : runs) {
    bool free = false;
    for (const PvRun& f : md.pv_map(r.pv))
      if (f.free() && f.pe <= r.pe && r.pe + r.count <= f.pe_end()) free = true;
    if (!free)
      return Status::Error(EAGAIN, fmt::format("PE {} of PV {} was handed out while it was being zeroed; nothing was "
                                               "changed, run the command again",
                                               format_range(r.pe, r.count), md.pvs[r.pv].name));
  }
  return Status::Ok();
}

}  // namespace

// lvcreate and lvextend zero the extents they reserved without admin_:
// zeroing a large LV takes long, and readers, job control and the copiers'
// commits need not wait for it. The extents stay free meanwhile because
// only commands allocate, and commands_ (held by the caller) keeps every
// other command out; the copiers' commits only free extents. A failure
// here leaves the metadata as it was (zeros in free extents change nothing).
Status VolumeManager::zero_unlocked(Change& change, const VgMetadata& md, const std::vector<MapRun>& runs) {
  change.unlock();
  Status st = zero_extents(md, runs);
  if (st.ok() && zeroing_hook_) zeroing_hook_();
  change.lock();
  VGFS_RETURN_IF_ERROR(st);
  return check_still_free(store_.metadata(), runs);
}

// An LV that is open or moving cannot shrink or go.
Status VolumeManager::check_changeable(const VgMetadata& md, std::string_view verb) const {
  // VgStore::commit refuses these too; refusing first means lvcreate and
  // lvextend zero nothing and pvadd labels nothing.
  if (!md.change_refused.empty())
    return Status::Error(EPERM, fmt::format("{}: VG {} refuses metadata changes: {}", verb, printable(md.name),
                                            printable(md.change_refused)));
  return Status::Ok();
}

Status VolumeManager::check_idle(const VgMetadata& md, const std::string& lv, const char* verb) const {
  if (std::optional<uint32_t> slot = volume_.slot(lv); slot && volume_.open_count(*slot) > 0)
    return Status::Error(EBUSY, fmt::format("cannot {} LV {}: it is open", verb, lv));
  for (const JobInfo& j : md.jobs)
    if (j.running() && j.lv == lv)
      return Status::Error(EBUSY, fmt::format("cannot {} LV {}: job {} is moving it", verb, lv, j.id));
  return Status::Ok();
}

namespace {

// The values a chmod/chown or lvcreate option may set (docs/format.md: an
// owner id is 0 to 2^32 - 2; (uint32_t)-1 is chown's "no change").
Status check_ownership(const std::string& name, const LvOwnership& o) {
  // No setuid, setgid or sticky bit: an LV file runs nothing and holds no
  // entries (the metadata keeps modes <= 0777, docs/format.md).
  if (o.mode && *o.mode > 0777)
    return Status::Error(EINVAL, fmt::format("LV {}: mode {:o} has bits beyond the permission bits 0777", name, *o.mode));
  if (o.uid && *o.uid == UINT32_MAX) return Status::Error(EINVAL, fmt::format("LV {}: uid 4294967295 is not an owner", name));
  if (o.gid && *o.gid == UINT32_MAX) return Status::Error(EINVAL, fmt::format("LV {}: gid 4294967295 is not a group", name));
  return Status::Ok();
}

// An owner, group or mode the format cannot keep would be lost at the next
// open (LVM2's text has no place for them): refused, nothing written.
Status check_keeps_ownership(const VgStore& store, const VgMetadata& md, std::string_view verb) {
  if (store.format().keeps_lv_ownership()) return Status::Ok();
  return Status::Error(ENOTSUP, fmt::format("{}: VG {} is an {} VG, whose metadata has no place for an LV's owner, "
                                            "group or mode; its LV files stay owned by the mounting user, mode 0600",
                                            verb, printable(md.name), store.format().name()));
}

void apply_ownership(LvInfo& lv, const LvOwnership& o) {
  if (o.mode) lv.mode = *o.mode;
  if (o.uid) lv.uid = *o.uid;
  if (o.gid) lv.gid = *o.gid;
}

}  // namespace

Result<LvSized> VolumeManager::lvcreate(const std::string& name, uint64_t size, const std::vector<std::string>& pvs,
                                        const LvOwnership& owner) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvcreate"));
  VGFS_RETURN_IF_ERROR(check_name("LV", name));
  VGFS_RETURN_IF_ERROR(store_.format().check_new_lv_name(name));
  VGFS_RETURN_IF_ERROR(check_ownership(name, owner));
  if (owner.uid || owner.gid || owner.mode) VGFS_RETURN_IF_ERROR(check_keeps_ownership(store_, md, "lvcreate"));
  if (md.find_lv(name) >= 0) return Status::Error(EEXIST, fmt::format("LV {} exists already", name));
  // The slot first: a commit whose LV then cannot be served would leave a
  // ghost LV behind an error reply.
  if (!volume_.slot_available())
    return Status::Error(ENOSPC, fmt::format("cannot create LV {}: this mount serves {} LVs, its most; remove one "
                                             "first", name, kMaxLvSlots));
  VGFS_RETURN_IF_ERROR(check_size(md, name, size));
  Result<std::vector<uint32_t>> candidates = pv_indices(md, pvs);
  if (!candidates.ok()) return candidates.status();
  const uint64_t extents = extents_for(md, size);
  Result<std::vector<MapRun>> runs = allocate_extents(md, extents, *candidates);
  if (!runs.ok()) return runs.status().prefixed(fmt::format("LV {}", name));
  VGFS_RETURN_IF_ERROR(zero_unlocked(change, md, *runs));
  md = store_.metadata();  // the copiers may have committed meanwhile
  LvInfo lv{name, new_uuid(), 0600, {}};
  apply_ownership(lv, owner);
  for (const MapRun& r : *runs) lv.map.append(r.pv, r.pe, r.count);
  md.lvs.push_back(std::move(lv));
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  const VgMetadata& now = store_.metadata();
  Result<uint32_t> slot = volume_.publish_lv(now, static_cast<uint32_t>(now.lvs.size() - 1));
  if (!slot.ok()) return slot.status();
  return LvSized{name, size, extents, now.extent_size};
}

Result<LvSized> VolumeManager::lvextend(const std::string& name, uint64_t size) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvextend"));
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  VGFS_RETURN_IF_ERROR(check_size(md, name, size));
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
  VGFS_RETURN_IF_ERROR(zero_unlocked(change, md, runs));
  // The copiers may have committed meanwhile (a switch remaps LEs of this
  // LV, never its length); the LV keeps its index: only commands remove LVs.
  md = store_.metadata();
  ExtentMap& now = md.lvs[static_cast<size_t>(lv)].map;
  if (md.lvs[static_cast<size_t>(lv)].name != name || now.extent_count() != have)
    return Status::Error(EAGAIN, fmt::format("LV {} changed while its new extents were being zeroed; nothing was "
                                             "changed, run the command again", name));
  for (const MapRun& r : runs) now.append(r.pv, r.pe, r.count);
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  Result<uint32_t> slot = volume_.publish_lv(store_.metadata(), static_cast<uint32_t>(lv));
  if (!slot.ok()) return slot.status();
  return LvSized{name, size, extents, store_.metadata().extent_size};
}

Result<LvSized> VolumeManager::lvreduce(const std::string& name, uint64_t size) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvreduce"));
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  VGFS_RETURN_IF_ERROR(check_size(md, name, size));
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
  return LvSized{name, size, extents, store_.metadata().extent_size};
}

Status VolumeManager::lvremove(const std::string& name) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvremove"));
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  VGFS_RETURN_IF_ERROR(check_idle(md, name, "remove"));
  md.lvs.erase(md.lvs.begin() + lv);
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  if (std::optional<uint32_t> slot = volume_.slot(name)) volume_.remove_lv(*slot);
  volume_.quiesce();
  return Status::Ok();
}

Status VolumeManager::lvrename(const std::string& from, const std::string& to) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvrename"));
  int lv = md.find_lv(from);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", from));
  VGFS_RETURN_IF_ERROR(check_name("LV", to));
  VGFS_RETURN_IF_ERROR(store_.format().check_new_lv_name(to));
  if (md.find_lv(to) >= 0) return Status::Error(EEXIST, fmt::format("LV {} exists already", to));
  md.lvs[static_cast<size_t>(lv)].name = to;
  for (JobInfo& j : md.jobs)
    if (j.lv == from) j.lv = to;
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  for (auto& job : jobs_)
    if (job->info.lv == from) job->info.lv = to;
  if (std::optional<uint32_t> slot = volume_.slot(from)) volume_.rename_lv(*slot, to);
  return Status::Ok();
}

Status VolumeManager::lvchange(const std::string& name, const LvOwnership& o) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "lvchange"));
  int lv = md.find_lv(name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", name));
  VGFS_RETURN_IF_ERROR(check_ownership(name, o));
  LvInfo& info = md.lvs[static_cast<size_t>(lv)];
  const LvInfo before = info;
  apply_ownership(info, o);
  if (info.mode == before.mode && info.uid == before.uid && info.gid == before.gid) return Status::Ok();  // no commit
  VGFS_RETURN_IF_ERROR(check_keeps_ownership(store_, md, "lvchange"));
  VGFS_RETURN_IF_ERROR(commit(std::move(md)));
  // Like lvrename: the layout snapshot carries the owner, so publishing it
  // again is what makes getattr show the change.
  Result<uint32_t> slot = volume_.publish_lv(store_.metadata(), static_cast<uint32_t>(lv));
  return slot.ok() ? Status::Ok() : slot.status();
}

Result<PvAdded> VolumeManager::pvadd(const std::string& path, std::string name, bool force) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "pvadd"));
  if (name.empty())
    for (int n = 0; name.empty(); ++n)
      if (md.find_pv(fmt::format("pv{}", n)) < 0) name = fmt::format("pv{}", n);
  VGFS_RETURN_IF_ERROR(check_name("PV", name));
  if (md.find_pv(name) >= 0) return Status::Error(EEXIST, fmt::format("PV {} exists already", name));
  for (const PvInfo& pv : md.pvs)
    if (pv.path == path) return Status::Error(EEXIST, fmt::format("{} is PV {} of this VG already", path, pv.name));
  VGFS_RETURN_IF_ERROR(check_not_on_mount(path, nullptr));  // before opening: the open itself may come back here
  Result<PvDevice> dev = PvDevice::open(path, true, fmt::format("PV {} ({})", name, path));
  if (!dev.ok()) return dev.status();
  if (struct stat st {}; dev->capabilities().local_fd >= 0 && ::fstat(dev->capabilities().local_fd, &st) == 0)
    VGFS_RETURN_IF_ERROR(check_not_on_mount(path, &st));
  VGFS_RETURN_IF_ERROR(dev->lock(true));
  if (!force)
    if (Status unused = check_unused(*dev); !unused.ok())
      return unused.code() != EEXIST ? unused
                                     : Status::Error(EEXIST, unused.message() + "; force=yes (vgfs pvadd --force) overwrites it");
  PvLabel label;
  VGFS_ASSIGN_OR_RETURN(label, store_.format().new_pv_label(dev->size(), md));
  if (label.layout.pe_count == 0)
    return Status::Error(ENOSPC, fmt::format("{}: {} bytes is too small for one {} extent after {} bytes of label and "
                                             "metadata", dev->label(), dev->size(), format_size(md.extent_size),
                                             label.layout.pe_start));
  if (std::optional<uint64_t> at = store_.format().lease_offset(label))  // an NBD export: docs/nbd.md
    VGFS_RETURN_IF_ERROR(dev->backend().take_lease(*at));
  md.pvs.push_back(PvInfo{name, label.pv_uuid, path, label.layout.pe_start, label.layout.pe_count, label.record});
  VGFS_RETURN_IF_ERROR(store_.add_pv(std::move(*dev), label));
  Status st = commit(std::move(md));
  if (!st.ok()) {
    std::unique_ptr<PvDevice> gone = store_.remove_pv(static_cast<uint32_t>(store_.pv_count() - 1));
    (void)store_.format().wipe_pv(*gone);
    return st;
  }
  volume_.republish_all(store_.metadata());
  return PvAdded{name, label.layout.pe_count, store_.metadata().extent_size};
}

Result<PvRemoved> VolumeManager::pvremove(const std::string& name) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "pvremove"));
  int index = md.find_pv(name);
  if (index < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", name));
  const uint32_t pv = static_cast<uint32_t>(index);
  std::vector<std::string> users = md.lvs_on_pv(pv);
  if (!users.empty())
    return Status::Error(EBUSY, fmt::format("PV {} holds extents of LV {}; pvmove {} first", name,
                                            fmt::join(users, ", "), name));
  for (const JobInfo& j : md.jobs)
    if (j.running() && (j.src_pv == pv || j.dst_pv == pv || j.record_pv == pv))
      return Status::Error(EBUSY, fmt::format("PV {} is used by running job {}", name, j.id));
  if (md.pvs.size() == 1) return Status::Error(EINVAL, fmt::format("PV {} is the last PV of VG {}", name, md.name));

  // PV indices above it move down one, in the maps and the jobs.
  auto shift = [&](uint32_t i) { return i > pv ? i - 1 : i; };
  md.pvs.erase(md.pvs.begin() + index);
  for (LvInfo& lv : md.lvs) {
    ExtentMap shifted;
    for (MapRun r : lv.map.runs()) {  // every leg of striped runs too; kept keys stay
      r.pv = shift(r.pv);
      for (StripeLeg& leg : r.more_legs) leg.pv = shift(leg.pv);
      shifted.append_run(std::move(r));
    }
    lv.map = std::move(shifted);
  }
  auto uses = [&](const JobInfo& j) { return j.src_pv == pv || j.dst_pv == pv; };
  std::vector<JobStatus> history;  // kept in memory (removed_pv_jobs_): the metadata cannot name the PV any more
  for (const JobInfo& j : md.jobs)
    if (uses(j)) {
      const Job* live = find(j.id);  // its counters (copied bytes) too, while this mount has it
      history.push_back(live ? status_of(store_.metadata(), j, *live) : recorded_job_status(store_.metadata(), j));
    }
  std::erase_if(md.jobs, uses);
  for (JobInfo& j : md.jobs) {
    j.src_pv = shift(j.src_pv);
    j.dst_pv = shift(j.dst_pv);
    if (j.record_pv) j.record_pv = shift(*j.record_pv);
  }
  const PvLabel label = store_.label(pv);
  std::unique_ptr<PvDevice> dev = store_.remove_pv(pv);
  Status st = commit(std::move(md));
  if (!st.ok()) {
    store_.restore_pv(pv, std::move(dev), label);
    return st;
  }
  removed_pv_jobs_.insert(removed_pv_jobs_.end(), history.begin(), history.end());
  if (removed_pv_jobs_.size() > kMaxFinishedJobs)
    removed_pv_jobs_.erase(removed_pv_jobs_.begin(),
                           removed_pv_jobs_.end() - static_cast<ptrdiff_t>(kMaxFinishedJobs));
  std::erase_if(jobs_, [&](const std::shared_ptr<Job>& j) {
    if (!uses(j->info)) return false;
    forget(*j);  // ended, but a copier may still be leaving its last step
    return true;
  });
  for (auto& j : jobs_) {
    j->info.src_pv = shift(j->info.src_pv);
    j->info.dst_pv = shift(j->info.dst_pv);
    if (j->info.record_pv) j->info.record_pv = shift(*j->info.record_pv);
  }
  volume_.republish_all(store_.metadata());
  volume_.quiesce();  // no request holds the device any more
  (void)store_.format().wipe_pv(*dev);
  return PvRemoved{name, store_.metadata().name};
}

}  // namespace vgfs
