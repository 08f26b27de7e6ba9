// A move another tool left unfinished in the metadata (VgMetadata::
// foreign_move: LVM2's pvmove0, docs/lvm2.md "LVM2's unfinished pvmove"),
// shown as job kForeignMoveJob, finished or aborted online.
//
// Finish does not copy on LVM2's terms: one commit replaces the pvmove LV by
// vgfs jobs, each moving one piece from its source to the destination PEs
// LVM2 chose, with the record and the write rules of any vgfs job (SPEC §6).
// The source is the truth at that instant whatever extents_moved says
// (LVM2's mirror wrote both legs, and without device-mapper nothing wrote
// the destination at all), so the jobs copy every piece whole: a crash
// before the commit leaves LVM2's pvmove as it was, one after it resumes
// the vgfs jobs. Abort is the one commit that puts every LV back on its
// source.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "manager/job.h"
#include "vgfs/log.h"
#include "vgfs/volume_manager.h"

namespace vgfs {

JobStatus foreign_move_status(const VgMetadata& md) {
  const ForeignMove& m = *md.foreign_move;
  JobStatus s;
  s.id = kForeignMoveJob;
  std::vector<std::string> lvs, sources, destinations;
  auto add = [](std::vector<std::string>& v, const std::string& name) {
    if (std::find(v.begin(), v.end(), name) == v.end()) v.push_back(name);
  };
  uint64_t moved = 0;
  for (const ForeignMove::Piece& p : m.pieces) {
    add(lvs, p.lv);
    add(sources, md.pvs[p.src_pv].name);
    add(destinations, md.pvs[p.dst_pv].name);
    s.count += p.count;
    moved += p.moved;
  }
  auto joined = [](const std::vector<std::string>& v) {
    std::string out;
    for (const std::string& x : v) out += (out.empty() ? "" : ",") + x;
    return out;
  };
  s.lv = joined(lvs);
  s.source_pv = joined(sources);
  s.destination_pv = joined(destinations);
  if (m.pieces.size() == 1) {  // one piece: its PE ranges mean something
    s.le = m.pieces[0].le;
    s.source_pe = m.pieces[0].src_pe;
    s.destination_pe = m.pieces[0].dst_pe;
  }
  s.region_size = md.region_size;
  s.size = s.count * md.extent_size;
  s.regions = s.region_size ? div_ceil(s.size, s.region_size) : 0;
  s.progress_pointer = s.checkpoint_pointer = moved * md.extent_size;
  s.sync_status = "stopped";
  s.reason = m.problem.empty()
                 ? fmt::format("{} left unfinished by LVM2 (it needs device-mapper to go on): `finish {}` moves it, "
                               "`abort {}` puts it back",
                               m.name, kForeignMoveJob, kForeignMoveJob)
                 : fmt::format("{}: {}", m.name, m.problem);
  return s;
}

// The jobs that take over the pieces of `move`, added to `md` (the metadata
// without the move): one per piece, to the PEs the other tool chose.
Status VolumeManager::add_foreign_move_jobs(VgMetadata& md, const ForeignMove& move, std::vector<JobInfo>* out) {
  for (const ForeignMove::Piece& p : move.pieces) {
    const int lv = md.find_lv(p.lv);
    const MapRun* run = lv < 0 ? nullptr : md.lvs[static_cast<size_t>(lv)].map.find(p.le);
    JobInfo j;
    j.lv = p.lv;
    j.count = p.count;
    j.src_pv = p.src_pv;
    j.src_pe = p.src_pe;
    j.dst_pv = p.dst_pv;
    j.dst_pe = p.dst_pe;
    if (p.stripes > 1) {  // one leg of a striped run, whole: a leg job
      if (!run || !run->striped() || run->le != p.le || p.stripe >= run->stripe_count() ||
          run->leg(p.stripe).pv != p.src_pv || run->leg(p.stripe).pe != p.src_pe)
        return Status::Error(EIO, fmt::format("{}: LV {} LE {} stripe {} is not on {} PE {} once the move is undone",
                                              move.name, p.lv, p.le, p.stripe, md.pvs[p.src_pv].name, p.src_pe));
      if (run->leg_extents() != p.count)
        return Status::Error(EINVAL, fmt::format("{} moves {} of the {} extents of stripe {} of LV {} LE {}; vgfs "
                                                 "moves a stripe whole; `abort {}` puts it back on its source",
                                                 move.name, p.count, run->leg_extents(), p.stripe, p.lv, run->le,
                                                 kForeignMoveJob));
      j.le = run->le;
      j.leg = p.stripe;
    } else {
      if (!run || run->striped() || run->pv != p.src_pv || run->pe + (p.le - run->le) != p.src_pe ||
          run->le_end() - p.le < p.count)  // without_foreign_move() broke its promise
        return Status::Error(EIO, fmt::format("{}: LV {} LE {} is not on {} PE {} once the move is undone", move.name,
                                              p.lv, format_range(p.le, p.count), md.pvs[p.src_pv].name, p.src_pe));
      j.le = p.le;
    }
    VGFS_RETURN_IF_ERROR(add_job(md, j, out));
  }
  return Status::Ok();
}

// After the commit that ended the move: its LVs are served, its own LV
// (hidden) is gone.
void VolumeManager::publish_without_foreign_move(const ForeignMove& move) {
  if (std::optional<uint32_t> slot = volume_.slot(move.name)) volume_.remove_lv(*slot);
  volume_.republish_all(store_.metadata());
}

Result<JobsStarted> VolumeManager::finish_foreign_move(uint64_t limit) {
  std::lock_guard command(commands_);
  Change change(*this);
  const VgMetadata& md = store_.metadata();
  if (!md.foreign_move)
    return Status::Error(ENOENT, fmt::format("VG {} holds no move left unfinished by another tool (job {})",
                                             printable(md.name), kForeignMoveJob));
  const ForeignMove move = *md.foreign_move;
  if (!move.problem.empty())
    return Status::Error(EINVAL, fmt::format("cannot finish {}: {}", move.name, move.problem));
  Result<VgMetadata> next = store_.format().without_foreign_move(md);
  if (!next.ok()) return next.status().prefixed(fmt::format("cannot finish {}", move.name));
  VGFS_RETURN_IF_ERROR(check_changeable(*next, "finish"));
  std::vector<JobInfo> created;
  VGFS_RETURN_IF_ERROR(add_foreign_move_jobs(*next, move, &created));
  Result<JobsStarted> started = start_jobs(std::move(*next), std::move(created), limit, /*ends_foreign_move=*/true);
  if (!started.ok()) return started;
  log::info(fmt::format("{} of LVM2 taken over by vgfs jobs", move.name));
  publish_without_foreign_move(move);
  return started;
}

Status VolumeManager::abort_foreign_move() {
  std::lock_guard command(commands_);
  Change change(*this);
  const VgMetadata& md = store_.metadata();
  if (!md.foreign_move) return Status::Error(ENOENT, fmt::format("no job {}", kForeignMoveJob));
  const ForeignMove move = *md.foreign_move;
  if (!move.problem.empty()) return Status::Error(EINVAL, fmt::format("cannot abort {}: {}", move.name, move.problem));
  Result<VgMetadata> next = store_.format().without_foreign_move(md);
  if (!next.ok()) return next.status().prefixed(fmt::format("cannot abort {}", move.name));
  VGFS_RETURN_IF_ERROR(check_changeable(*next, "abort"));
  VGFS_RETURN_IF_ERROR(commit(std::move(*next), /*ends_foreign_move=*/true));
  log::info(fmt::format("{} of LVM2 aborted: its LVs are on their source PVs", move.name));
  publish_without_foreign_move(move);
  return Status::Ok();
}

}  // namespace vgfs
