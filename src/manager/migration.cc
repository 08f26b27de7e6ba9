// Migration jobs: creation, switch and abort (include/vgfs/volume_manager.h,
// docs/migration.md). The copier state machine that moves a job's data is
// src/manager/copier.h; this file gives it the commits it asks for.
#include "vgfs/volume_manager.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <chrono>
#include <condition_variable>
#include <thread>

#include "manager/job.h"
#include "vgfs/job_record.h"
#include "vgfs/log.h"

namespace vgfs {


// "job 3 started: LV lv0 LE 0-9 from pv0 PE 5 to pv1 PE 0" (and "completed").
static std::string job_line(const VgMetadata& md, const JobInfo& j, std::string_view what) {
  auto pv = [&](uint32_t i) { return i < md.pvs.size() ? md.pvs[i].name : fmt::format("PV #{}", i); };
  const IndexRange les = md.job_les(j);
  return fmt::format("job {} {}: LV {} LE {}-{}{} from {} PE {} to {} PE {}", j.id, what, j.lv, les.first, les.last(),
                     j.leg ? fmt::format(" leg {}", *j.leg) : "", pv(j.src_pv), j.src_pe, pv(j.dst_pv), j.dst_pe);
}

Transfer::Geometry geometry_of(const VgStore& store, const JobInfo& j) {
  const VgMetadata& md = store.metadata();
  Transfer::Geometry g;
  g.job_id = j.id;
  g.lv_begin = j.le * md.extent_size;
  g.leg = j.leg.has_value();
  g.size = j.count * md.extent_size;
  g.region_size = md.region_size;
  g.source = {&store.pv(j.src_pv), md.pvs[j.src_pv].pe_start + j.src_pe * md.extent_size};
  g.destination = {&store.pv(j.dst_pv), md.pvs[j.dst_pv].pe_start + j.dst_pe * md.extent_size};
  if (j.record_pv)  // in extents of its own (LVM2 VGs: the hidden LV vgfs_move<ID>_rec)
    g.record = {&store.pv(*j.record_pv),
                md.pvs[*j.record_pv].pe_start + j.record_pe * md.extent_size + j.record_offset};
  else
    g.record = {&store.pv(j.src_pv), store.label(j.src_pv).layout.migration_offset + j.record_offset};
  return g;
}

VolumeManager::VolumeManager(VgStore& store, VolumeSet& volume) : store_(store), volume_(volume) {
  for (const JobInfo& info : store.metadata().jobs) {
    auto job = std::make_shared<Job>();
    job->info = info;
    job->done = !info.running();
    if (info.running()) {
      // The newest valid copy of the record; none means start again from 0,
      // which is always safe: nothing is below P = 0.
      Transfer::Geometry g = geometry_of(store, info);
      const uint64_t regions = div_ceil(g.size, g.region_size);
      const uint64_t copy = job_record_copy_size(regions);
      std::optional<JobRecord> best;
      for (int c = 0; c < 2; ++c) {
        std::string bytes(copy, '\0');
        if (!g.record.dev->read_at(bytes.data(), copy, g.record.offset + c * copy).ok()) continue;
        Result<JobRecord> rec = decode_job_record(bytes, info.id, regions);
        if (rec.ok() && (!best || rec->generation > best->generation)) best = std::move(*rec);
      }
      job->transfer = std::make_unique<Transfer>(g, best ? &*best : nullptr);
      attach_copier(*job);
    }
    jobs_.push_back(std::move(job));
  }
  std::lock_guard lock(admin_);
  publish();
}

VolumeManager::~VolumeManager() { shutdown(); }

void VolumeManager::publish() {
  auto next = std::make_shared<Snapshot>();
  next->metadata = store_.metadata();
  next->jobs.reserve(jobs_.size());
  for (const auto& j : jobs_) next->jobs.push_back({j->info, j});
  next->removed_pv_jobs = removed_pv_jobs_;
  std::lock_guard lock(snapshot_m_);
  snapshot_ = std::move(next);
}

std::shared_ptr<const VolumeManager::Snapshot> VolumeManager::snapshot() const {
  std::lock_guard lock(snapshot_m_);
  return snapshot_;
}

bool VolumeManager::admin_free_for_testing() const {
  if (!admin_.try_lock()) return false;
  admin_.unlock();
  return true;
}

// The job's copier asks for its commits through these hooks; they run on
// the copier's thread between regions, holding no region lock.
void VolumeManager::attach_copier(Job& job) {
  Copier::Hooks hooks;
  hooks.request = [&job] {
    std::lock_guard lock(job.m);
    return job.abort ? Copier::Request::kAbort : job.stop ? Copier::Request::kStop : Copier::Request::kNone;
  };
  hooks.switch_over = [this, &job](Status* st) { return switch_over(job, st); };
  hooks.end = [this, &job](JobState state, const std::string& reason) {
    (void)finish(job, state, reason);  // takes admin_: not under job.m
    std::lock_guard lock(job.m);
    job.done = true;
    job.cv.notify_all();
  };
  job.copier = std::make_unique<Copier>(*job.transfer, std::move(hooks));
}

VolumeManager::Job* VolumeManager::find(uint64_t id) const {
  for (const auto& j : jobs_)
    if (j->info.id == id) return j.get();
  return nullptr;
}


void VolumeManager::publish_transfers(const std::string& name) {
  std::optional<uint32_t> slot = volume_.slot(name);
  if (!slot) return;
  std::vector<Transfer*> list;
  for (const auto& j : jobs_)
    if (j->info.running() && j->transfer && j->info.lv == name) list.push_back(j->transfer.get());
  volume_.publish_transfers(*slot, std::move(list));
}

Status VolumeManager::start() {
  Change change(*this);
  std::vector<std::string> lvs;
  for (auto& job : jobs_)
    if (job->info.running()) lvs.push_back(job->info.lv);
  for (const std::string& lv : lvs) publish_transfers(lv);
  volume_.quiesce();
  bool any = false;
  for (auto& job : jobs_)
    if (job->info.running() && job->transfer) {
      log::info(job_line(store_.metadata(), job->info, "resumed"));
      schedule(*job);
      any = true;
    }
  if (!any) return Status::Ok();  // copiers start with the first job
  // Without a copier the jobs stay scheduled: the next command that starts
  // one runs them.
  Status st = ensure_copiers();
  if (!st.ok()) log::warning(fmt::format("the running jobs wait: {}", st.message()));
  return st;
}

void VolumeManager::shutdown() {
  for (auto& job : jobs_) {
    {
      std::lock_guard lock(job->m);
      job->stop = true;
    }
    job->cv.notify_all();
  }
  stop_copiers();
}

namespace {

// Where the two record copies of `job` go in its source PV's migration area
// (first fit among the running jobs' records), or nothing when they do not
// fit now.
std::optional<uint64_t> record_place(const VgMetadata& md, uint64_t area, const JobInfo& job, uint64_t need) {
  std::vector<std::pair<uint64_t, uint64_t>> used;
  for (const JobInfo& j : md.jobs)
    if (j.running() && j.src_pv == job.src_pv) used.emplace_back(j.record_offset, j.record_offset + j.record_size);
  std::sort(used.begin(), used.end());
  uint64_t at = 0;
  for (auto [begin, end] : used) {
    if (at + need <= begin) break;
    at = std::max(at, end);
  }
  if (at + need > area) return std::nullopt;
  return at;
}

uint64_t record_need(const VgMetadata& md, const JobInfo& job) {
  const uint64_t regions = div_ceil(job.count * md.extent_size, md.region_size);
  return 2 * job_record_copy_size(regions);
}

}  // namespace

bool VolumeManager::record_fits(const VgMetadata& md, const JobInfo& job) const {
  const uint64_t area = store_.label(job.src_pv).layout.migration_size;
  if (area == 0) return true;  // records in extents of their own: add_job says when none is free
  return record_place(md, area, job, record_need(md, job)).has_value();
}

// A job id no job of this mount has had: the metadata's next_job_id, or
// past it when the format keeps no finished jobs (LVM2: the decoded
// metadata holds only the running ones, whose hidden LVs name them).
uint64_t VolumeManager::next_job_id(const VgMetadata& md) const {
  uint64_t id = md.next_job_id;
  for (const auto& j : jobs_) id = std::max(id, j->info.id + 1);
  for (const JobStatus& j : removed_pv_jobs_) id = std::max(id, j.id + 1);
  return id;
}

// A PV without a migration area (LVM2's): the record goes into free
// extents of its own, on the source PV when it has room (they are freed
// with the job), else on any PV; the job's destination is reserved first.
Status VolumeManager::add_job_with_record_extents(VgMetadata& md, JobInfo job, std::vector<JobInfo>* out) {
  const uint64_t need = record_need(md, job);
  const uint64_t extents = div_ceil(need, md.extent_size);
  job.id = next_job_id(md);
  job.record_offset = 0;
  job.record_size = need;
  job.state = JobState::kRunning;
  md.jobs.push_back(job);
  std::optional<MapRun> place;
  for (bool anywhere : {false, true}) {
    std::vector<uint32_t> candidates;
    if (!anywhere) candidates.push_back(job.src_pv);
    Result<std::vector<MapRun>> runs = allocate_extents(md, extents, candidates);
    if (runs.ok() && runs->size() == 1) {
      place = (*runs)[0];
      break;
    }
  }
  if (!place) {
    md.jobs.pop_back();
    return Status::Error(ENOSPC, fmt::format("no PV of VG {} has {} free extent{} in a row for the record of a job "
                                             "moving {} extents (an {} VG keeps it in a hidden LV)",
                                             md.name, extents, extents == 1 ? "" : "s", job.count,
                                             store_.format().name()));
  }
  md.jobs.back().record_pv = place->pv;
  md.jobs.back().record_pe = place->pe;
  md.next_job_id = job.id + 1;
  out->push_back(md.jobs.back());
  return Status::Ok();
}

Status VolumeManager::add_job(VgMetadata& md, JobInfo job, std::vector<JobInfo>* out) {
  // The record goes into the source PV's migration area, first fit.
  const uint64_t need = record_need(md, job);
  const uint64_t area = store_.label(job.src_pv).layout.migration_size;
  if (area == 0)  // LVM2 PVs have no migration area (docs/lvm2.md, "Moves")
    return add_job_with_record_extents(md, job, out);
  std::optional<uint64_t> at = record_place(md, area, job, need);
  if (!at) {
    size_t running = 0;
    for (const JobInfo& j : md.jobs) running += j.running() && j.src_pv == job.src_pv;
    if (running == 0)
      return Status::Error(ENOSPC, fmt::format("the migration area of PV {} ({}) cannot hold the {} record of a job "
                                               "moving {} extents; move fewer extents at a time (LV:LE-range)",
                                               md.pvs[job.src_pv].name, format_size(area), format_size(need),
                                               job.count));
    return Status::Error(ENOSPC, fmt::format("the migration area of PV {} ({}) is full: it holds the records of {} "
                                             "running jobs moving extents off it; run the command again when some "
                                             "have ended",
                                             md.pvs[job.src_pv].name, format_size(area), running));
  }
  job.id = next_job_id(md);
  md.next_job_id = job.id + 1;
  job.record_offset = *at;
  job.record_size = need;
  job.state = JobState::kRunning;
  md.jobs.push_back(job);
  out->push_back(job);
  return Status::Ok();
}

Result<JobsStarted> VolumeManager::start_jobs(VgMetadata md, std::vector<JobInfo> created, uint64_t limit,
                                              bool ends_foreign_move) {
  // A copier first: a job committed with nothing to run it would hold its
  // destination forever, and a daemon at its thread limit must say so, not die.
  VGFS_RETURN_IF_ERROR(ensure_copiers());
  // Keep the newest finished jobs only.
  size_t finished = 0;
  for (auto it = md.jobs.rbegin(); it != md.jobs.rend(); ++it)
    if (!it->running()) ++finished;
  for (auto it = md.jobs.begin(); it != md.jobs.end() && finished > kMaxFinishedJobs;) {
    if (!it->running()) {
      uint64_t id = it->id;
      it = md.jobs.erase(it);
      --finished;
      std::erase_if(jobs_, [&](const std::shared_ptr<Job>& j) {
        if (j->info.id != id) return false;
        forget(*j);
        return true;
      });
    } else {
      ++it;
    }
  }
  // A record in extents of its own is zeroed before the commit that names
  // it: those PEs were free and may hold an older job's record with the same
  // id (LVM2 VGs do not keep finished jobs, so ids come round again), which
  // a resume after a crash must not take for this job's.
  for (const JobInfo& info : created)
    if (info.record_pv) {
      const PvDevice& dev = store_.pv(*info.record_pv);
      const uint64_t at = md.pvs[*info.record_pv].pe_start + info.record_pe * md.extent_size + info.record_offset;
      const std::string zeros(info.record_size, '\0');
      Status st = dev.write_at(zeros.data(), zeros.size(), at);
      if (st.ok()) st = dev.sync();
      if (!st.ok()) return st.prefixed(fmt::format("the record of the job moving LV {} LE {}", info.lv,
                                                   format_range(info.le, info.count)));
    }
  VGFS_RETURN_IF_ERROR(commit(std::move(md), ends_foreign_move));
  JobsStarted ids;
  std::vector<Job*> started;
  for (const JobInfo& info : created) {
    auto job = std::make_shared<Job>();
    job->info = info;
    job->transfer = std::make_unique<Transfer>(geometry_of(store_, info), nullptr);
    if (limit != 0) {
      // In the record before `ok`, as the `limit` command does, so a crash
      // right after the reply resumes the job at this rate.
      job->transfer->set_rate_limit(limit);
      Status s = job->transfer->checkpoint();
      if (!s.ok())
        warn(fmt::format("job {} runs at its limit, but the record holding the limit was not written: {}",
                         info.id, s.message()));
    }
    attach_copier(*job);
    log::info(job_line(store_.metadata(), info, "started"));
    ids.jobs.push_back(info.id);
    started.push_back(job.get());
    jobs_.push_back(std::move(job));
  }
  std::vector<std::string> lvs;
  for (const JobInfo& info : created) lvs.push_back(info.lv);
  std::sort(lvs.begin(), lvs.end());
  lvs.erase(std::unique(lvs.begin(), lvs.end()), lvs.end());
  for (const std::string& lv : lvs) publish_transfers(lv);
  // Writes that began before the transfers were published did not see them:
  // let them end before the first region is copied.
  volume_.quiesce();
  for (Job* j : started) schedule(*j);
  return ids;
}

Result<JobsStarted> VolumeManager::move(std::string_view lv_name, std::optional<IndexRange> les,
                                        std::string_view pv_name, std::optional<uint64_t> pe,
                                        uint64_t limit) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "move"));
  int lv = md.find_lv(lv_name);
  if (lv < 0) return Status::Error(ENOENT, fmt::format("no LV named {}", lv_name));
  int dst = md.find_pv(pv_name);
  if (dst < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", pv_name));
  const ExtentMap& map = md.lvs[static_cast<size_t>(lv)].map;
  IndexRange range = les.value_or(IndexRange{0, map.extent_count()});
  if (range.first >= map.extent_count() || range.count > map.extent_count() - range.first)
    return Status::Error(EINVAL, fmt::format("LE {} is outside LV {}, which has LEs 0-{}",
                                             format_range(range.first, range.count), lv_name, map.extent_count() - 1));
  for (const JobInfo& j : md.jobs)
    if (IndexRange busy = md.job_les(j);
        j.running() && j.lv == lv_name && busy.first < range.first + range.count && range.first < busy.first + busy.count)
      return Status::Error(EBUSY, fmt::format("LE {} of LV {} is being moved by job {}",
                                              format_range(busy.first, busy.count), lv_name, j.id));
  const PvInfo& dpv = md.pvs[static_cast<size_t>(dst)];
  if (pe && *pe >= dpv.pe_count)
    return Status::Error(EINVAL, fmt::format("PE {} is outside PV {}, which has PEs 0-{}", *pe, dpv.name, dpv.pe_count - 1));

  std::vector<JobInfo> created;
  uint64_t cursor = pe.value_or(0);
  for (const MapRun& r : map.runs()) {
    uint64_t first = std::max(r.le, range.first), last = std::min(r.le_end(), range.first + range.count);
    if (first >= last) continue;
    if (r.striped())  // which leg would go where is pvmove's to say
      return Status::Error(EINVAL, fmt::format("LE {} of LV {} is striped over {} PVs; move its legs with pvmove "
                                               "of the PV that holds them", format_range(r.le, r.count), lv_name,
                                               r.stripe_count()));
    if (r.pv == static_cast<uint32_t>(dst) && !pe) continue;  // already there
    JobInfo base;
    base.lv = std::string(lv_name);
    base.src_pv = r.pv;
    base.dst_pv = static_cast<uint32_t>(dst);
    if (pe) {
      uint64_t count = last - first;
      for (const PvRun& f : md.pv_map(static_cast<uint32_t>(dst)))
        if (!f.free() && f.pe < cursor + count && cursor < f.pe_end())
          return Status::Error(ENOSPC, fmt::format("PE {} of PV {} is not free", format_range(cursor, count), dpv.name));
      if (cursor + count > dpv.pe_count)
        return Status::Error(ENOSPC, fmt::format("PE {} is past the end of PV {} (PEs 0-{})",
                                                 format_range(cursor, count), dpv.name, dpv.pe_count - 1));
      base.le = first;
      base.count = count;
      base.src_pe = r.pe + (first - r.le);
      base.dst_pe = cursor;
      cursor += count;
      VGFS_RETURN_IF_ERROR(add_job(md, base, &created));
      continue;
    }
    uint32_t candidates[] = {static_cast<uint32_t>(dst)};
    Result<std::vector<MapRun>> places = allocate_extents(md, last - first, candidates, first);
    if (!places.ok()) return places.status().prefixed(fmt::format("PV {}", dpv.name));
    for (const MapRun& p : *places) {
      JobInfo j = base;
      j.le = p.le;
      j.count = p.count;
      j.src_pe = r.pe + (p.le - r.le);
      j.dst_pe = p.pe;
      VGFS_RETURN_IF_ERROR(add_job(md, j, &created));
    }
  }
  if (created.empty())
    return Status::Error(EINVAL, fmt::format("LE {} of LV {} is on PV {} already; nothing to move",
                                             format_range(range.first, range.count), lv_name, dpv.name));
  return start_jobs(std::move(md), std::move(created), limit);
}

// The job moving the leg of striped run `r` of `lv` that PV `src` holds,
// whole, to one free run of a candidate PV that holds no other leg of the
// run: LVM2 keeps a run's legs on distinct PVs (its pvmove refuses such a
// destination too), and two legs on one PV would halve what striping gives.
// `any` says the candidates are every other PV (no destination was named).
static Result<JobInfo> leg_job(const VgMetadata& md, const LvInfo& lv, const MapRun& r, uint32_t src,
                        const std::vector<uint32_t>& candidates, bool any) {
  std::optional<uint32_t> leg;
  for (uint32_t s = 0; s < r.stripe_count(); ++s)
    if (r.leg(s).pv == src) {
      if (leg)
        return Status::Error(EINVAL, fmt::format("LE {} of LV {} has legs {} and {} on PV {}; vgfs moves one leg of a "
                                                 "striped run at a time, and only off a PV holding one",
                                                 format_range(r.le, r.count), lv.name, *leg, s, md.pvs[src].name));
      leg = s;
    }
  std::vector<uint32_t> dests;
  std::vector<std::string> holding;  // candidates refused: they hold another leg
  for (uint32_t c : candidates) {
    bool holds = false;
    for (uint32_t s = 0; s < r.stripe_count(); ++s) holds = holds || r.leg(s).pv == c;
    if (holds) holding.push_back(md.pvs[c].name);
    else dests.push_back(c);
  }
  const std::string what = fmt::format("leg {} of LV {} LE {} (striped over {} PVs)", *leg, lv.name,
                                       format_range(r.le, r.count), r.stripe_count());
  if (dests.empty())
    return Status::Error(EINVAL, any ? fmt::format("{} cannot move: every other PV holds a leg of the same run",
                                                   what)
                                     : fmt::format("{} cannot move to PV {}: it holds another leg of the same striped "
                                                   "run", what, fmt::join(holding, ", ")));
  Result<std::vector<MapRun>> places = allocate_extents(md, r.leg_extents(), dests, r.le);
  if (!places.ok() || places->size() != 1)
    return Status::Error(ENOSPC, fmt::format("{} needs {} free extents in a row on one PV, and no candidate PV has "
                                             "them", what, r.leg_extents()));
  JobInfo j;
  j.lv = lv.name;
  j.le = r.le;
  j.count = r.leg_extents();
  j.leg = *leg;
  j.src_pv = src;
  j.src_pe = r.leg(*leg).pe;
  j.dst_pv = (*places)[0].pv;
  j.dst_pe = (*places)[0].pe;
  return j;
}

Result<JobsStarted> VolumeManager::pvmove(std::string_view pv_name, const std::vector<std::string>& dest_names,
                                          uint64_t limit) {
  std::lock_guard command(commands_);
  Change change(*this);
  VgMetadata md = store_.metadata();
  VGFS_RETURN_IF_ERROR(check_changeable(md, "pvmove"));
  int src = md.find_pv(pv_name);
  if (src < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", pv_name));
  std::vector<uint32_t> candidates;
  for (const std::string& d : dest_names) {
    int i = md.find_pv(d);
    if (i < 0) return Status::Error(ENOENT, fmt::format("no PV named {}", d));
    if (i == src) return Status::Error(EINVAL, fmt::format("PV {} cannot be its own destination", d));
    candidates.push_back(static_cast<uint32_t>(i));
  }
  if (candidates.empty())
    for (uint32_t i = 0; i < md.pvs.size(); ++i)
      if (i != static_cast<uint32_t>(src)) candidates.push_back(i);
  if (candidates.empty()) return Status::Error(ENOSPC, fmt::format("VG {} has no PV besides {}", md.name, pv_name));

  // One job per run; each needs a record in the migration area of the PV
  // (kDefaultMigrationAreaSize holds 256 small ones). When it is full, the
  // jobs that fit start and the reply says to run pvmove again.
  std::vector<JobInfo> created;
  uint64_t runs = 0, moving = 0;
  bool full = false;
  for (const LvInfo& lv : md.lvs) {
    std::vector<MapRun> lv_runs = lv.map.runs();  // md changes below; keep this LV's runs
    for (const MapRun& r : lv_runs) {
      bool on_src = false;
      for (uint32_t leg = 0; leg < r.stripe_count(); ++leg) on_src = on_src || r.leg(leg).pv == static_cast<uint32_t>(src);
      if (!on_src) continue;
      ++runs;
      if (full) continue;
      for (const JobInfo& j : md.jobs)
        if (IndexRange busy = md.job_les(j);
            j.running() && j.lv == lv.name && busy.first < r.le_end() && r.le < busy.first + busy.count)
          return Status::Error(EBUSY, fmt::format("LE {} of LV {} is being moved by job {}",
                                                  format_range(busy.first, busy.count), lv.name, j.id));
      if (r.striped()) {
        Result<JobInfo> j = leg_job(md, lv, r, static_cast<uint32_t>(src), candidates, dest_names.empty());
        if (!j.ok()) return j.status();
        if (!created.empty() && !record_fits(md, *j)) {
          full = true;
          continue;
        }
        VGFS_RETURN_IF_ERROR(add_job(md, *j, &created));
        ++moving;
        continue;
      }
      Result<std::vector<MapRun>> places = allocate_extents(md, r.count, candidates, r.le);
      if (!places.ok()) return places.status();
      for (const MapRun& p : *places) {
        JobInfo j;
        j.lv = lv.name;
        j.le = p.le;
        j.count = p.count;
        j.src_pv = r.pv;
        j.src_pe = r.pe + (p.le - r.le);
        j.dst_pv = p.pv;
        j.dst_pe = p.pe;
        if (!created.empty() && !record_fits(md, j)) {
          full = true;
          break;
        }
        VGFS_RETURN_IF_ERROR(add_job(md, j, &created));
      }
      if (!full) ++moving;
    }
  }
  if (created.empty()) return Status::Error(EINVAL, fmt::format("PV {} holds no allocated extents; nothing to move", pv_name));
  Result<JobsStarted> started = start_jobs(std::move(md), std::move(created), limit);
  if (started.ok() && full) {
    started->runs_moving = moving;
    started->runs = runs;
  }
  return started;
}

// Ends a job as aborted or failed: writes held, one commit frees the
// destination, the LV stays on its source.
Status VolumeManager::finish(Job& job, JobState state, const std::string& reason) {
  Transfer& t = *job.transfer;
  // admin_ before the write barrier, always: quiesce() runs under admin_ and
  // waits for writers, which may wait for the barrier.
  Change change(*this);
  t.block_writes();
  VgMetadata md = store_.metadata();
  if (JobInfo* j = md.find_job(job.info.id)) {
    j->state = state;
    j->reason = reason;
  }
  Status st = commit(std::move(md));
  job.info.state = state;
  job.info.reason = st.ok() ? reason : fmt::format("{} (and the metadata commit failed: {})", reason, st.message());
  log::write(state == JobState::kAborted ? log::Level::kInfo : log::Level::kError,
             fmt::format("job {} {}: {}", job.info.id, job_state_name(state), job.info.reason));
  publish();  // before the status says so: a reader that sees it ended sees the commit too
  publish_transfers(job.info.lv);  // writes stop going through the transfer
  t.finish();
  volume_.quiesce();
  if (st.ok()) release_destination(job.info);
  // Last: a reader that sees the job ended (`--wait`, a script checking the
  // image's allocation) sees its destination given back too.
  t.set_sync_status(state == JobState::kAborted ? SyncStatus::kAborted : SyncStatus::kFailed);
  return st;
}

// What an ended job copied to its destination is garbage now: on a sparse
// image, give the blocks back (a failed 100 GiB move must not leave 100 GiB
// allocated). Only after the commit that freed the PEs is durable (before,
// a resumed job would trust the copied regions) and still under admin_,
// which every allocation takes, so no LV can own these PEs yet. Advisory: a
// punch that fails changes nothing that matters. An image is sparse when it
// has holes outside the range; a fully allocated one stays allocated, as its
// owner made it, and a block device is not discarded (LVM2's
// issue_discards = 0).
void VolumeManager::release_destination(const JobInfo& info) {
  const VgMetadata& md = store_.metadata();
  if (info.dst_pv >= store_.pv_count()) return;
  const PvDevice& dev = store_.pv(info.dst_pv);
  const PvCapabilities caps = dev.capabilities();
  struct ::stat st {};
  if (caps.is_block_device || !caps.can_punch || caps.local_fd < 0 || ::fstat(caps.local_fd, &st) != 0 ||
      !S_ISREG(st.st_mode))
    return;
  const uint64_t offset = md.pvs[info.dst_pv].pe_start + info.dst_pe * md.extent_size;
  const uint64_t length = info.count * md.extent_size;
  // Bytes allocated inside the range (SEEK_DATA/SEEK_HOLE), so the rest of
  // the file can be told apart from what this job wrote.
  const off_t file_size = st.st_size;
  const off_t first = static_cast<off_t>(std::min<uint64_t>(offset + caps.local_fd_offset, static_cast<uint64_t>(file_size)));
  const off_t last = static_cast<off_t>(std::min<uint64_t>(offset + length + caps.local_fd_offset, static_cast<uint64_t>(file_size)));
  uint64_t inside = 0;
  for (off_t at = first; at < last;) {
    off_t data = ::lseek(caps.local_fd, at, SEEK_DATA);
    if (data < 0 || data >= last) break;
    off_t hole = ::lseek(caps.local_fd, data, SEEK_HOLE);
    if (hole < 0) return;
    inside += static_cast<uint64_t>(std::min(hole, last) - data);
    at = hole;
  }
  const uint64_t allocated = static_cast<uint64_t>(st.st_blocks) * 512;
  const uint64_t outside_allocated = allocated > inside ? allocated - inside : 0;
  // Outside the range is the rest of the file and, when the image is shorter
  // than the PV it holds, the missing tail: that reads as zeros, a hole too.
  const uint64_t pv_end = caps.local_fd_offset + md.pvs[info.dst_pv].pe_start +
                          md.pvs[info.dst_pv].pe_count * md.extent_size;
  const uint64_t outside = std::max<uint64_t>(static_cast<uint64_t>(file_size), pv_end) -
                           static_cast<uint64_t>(last - first);
  if (outside_allocated + 64 * 1024 >= outside) return;  // no holes elsewhere: preallocated by its owner
  if (Status punched = dev.backend().discard(offset, length); !punched.ok())
    log::write(log::Level::kInfo, fmt::format("job {}: the destination's blocks were not given back: {}", info.id,
                                              punched.message()));
}

// The switch (rule 4): with writes held, make the destination durable and
// commit the map change; writes wait for this commit only. Returns true when
// the job completed; false with *st ok when a write slipped in and the copier
// must go on, or with *st the error that fails the job.
bool VolumeManager::switch_over(Job& job, Status* st) {
  Transfer& t = *job.transfer;
  if (std::string failure = t.write_failure(); !failure.empty()) {
    *st = Status::Error(EIO, failure);
    return false;
  }
  Change change(*this);
  t.block_writes();
  if (t.pending_count() != 0) {  // a write that saw the state before synchronized
    t.unblock_writes();
    return false;
  }
  // A checkpoint, not only the destination's flush: a destination that lost
  // acknowledged copies (an NBD server restarted) gets them marked for a
  // recopy here, and the copier goes on instead of switching.
  *st = t.checkpoint();
  if (st->ok() && t.pending_count() != 0) {
    t.unblock_writes();
    return false;
  }
  VgMetadata md = store_.metadata();
  const int lv = md.find_lv(job.info.lv);
  if (st->ok()) {
    ExtentMap& map = md.lvs[static_cast<size_t>(lv)].map;
    if (job.info.leg)  // the run keeps its LEs and other legs; this leg's PEs are the destination's now
      map.remap_leg(job.info.le, *job.info.leg, job.info.dst_pv, job.info.dst_pe);
    else
      map.remap(job.info.le, job.info.count, job.info.dst_pv, job.info.dst_pe);
    md.find_job(job.info.id)->state = JobState::kCompleted;
    *st = commit(std::move(md));
  }
  if (!st->ok()) {
    t.unblock_writes();
    return false;
  }
  job.info.state = JobState::kCompleted;
  log::info(job_line(store_.metadata(), job.info, "completed"));
  publish();  // before the status says so: a reader that sees it completed sees the new map
  t.set_sync_status(SyncStatus::kCompleted);
  (void)volume_.publish_lv(store_.metadata(), static_cast<uint32_t>(lv));
  publish_transfers(job.info.lv);
  t.finish();  // held writers retry through the new map
  // Freed source PEs are handed out again only under admin_, still held
  // until every request that saw the old map has ended.
  volume_.quiesce();
  change.unlock();
  std::lock_guard done(job.m);
  job.done = true;
  job.cv.notify_all();
  return true;
}

// The running job `id`, or why a control command cannot act on it.
Result<VolumeManager::Job*> VolumeManager::running_job(uint64_t id) const {
  std::lock_guard lock(admin_);
  Job* job = find(id);
  if (!job) return Status::Error(ENOENT, fmt::format("no job {}", id));
  if (!job->info.running() || !job->transfer)
    return Status::Error(EINVAL, fmt::format("job {} is {} already", id, job_state_name(job->info.state)));
  return job;
}

Status VolumeManager::abort(uint64_t id) {
  if (id == kForeignMoveJob) return abort_foreign_move();
  VGFS_RETURN_IF_ERROR(ensure_copiers());  // the abort runs on a copier
  Result<Job*> found = running_job(id);
  if (!found.ok()) return found.status();
  Job* job = *found;
  {
    std::lock_guard lock(job->m);
    job->abort = true;
  }
  wake(*job);
  std::unique_lock lock(job->m);
  job->cv.wait(lock, [&] { return job->done || job->stop; });
  if (job->info.state == JobState::kCompleted)
    return Status::Error(EINVAL, fmt::format("job {} completed before it could be aborted", id));
  return Status::Ok();
}

// pause, resume and limit change a copier setting under the job's lock and
// wake the copier; pause and resume also checkpoint (rule 6).
Status VolumeManager::pause(uint64_t id) { return set(id, [](Transfer& t) { t.set_paused(true); }, true); }
Status VolumeManager::resume(uint64_t id) { return set(id, [](Transfer& t) { t.set_paused(false); }, true); }
// The limit is durable before the reply: the record carries it (and
// `paused`), so a crash right after "ok" resumes with it.
Status VolumeManager::limit(uint64_t id, uint64_t rate) {
  return set(id, [rate](Transfer& t) { t.set_rate_limit(rate); }, true);
}

Status VolumeManager::set(uint64_t id, const std::function<void(Transfer&)>& change, bool checkpoint) {
  Result<Job*> found = running_job(id);
  if (!found.ok()) return found.status();
  Job* job = *found;
  {
    std::lock_guard lock(job->m);
    change(*job->transfer);
  }
  wake(*job);
  return checkpoint ? job->transfer->checkpoint() : Status::Ok();
}

JobStatus recorded_job_status(const VgMetadata& md, const JobInfo& i) {
  JobStatus s;
  s.id = i.id;
  s.lv = i.lv;
  s.le = i.le;
  s.count = i.count;
  s.leg = i.leg;
  if (i.leg && md.find_lv(i.lv) >= 0) s.le_count = md.job_les(i).count;
  s.source_pv = md.pvs[i.src_pv].name;
  s.source_pe = i.src_pe;
  s.destination_pv = md.pvs[i.dst_pv].name;
  s.destination_pe = i.dst_pe;
  s.region_size = md.region_size;
  s.size = i.count * md.extent_size;
  s.regions = div_ceil(s.size, s.region_size);
  s.reason = i.reason;
  s.sync_status = std::string(job_state_name(i.state));
  if (i.state == JobState::kCompleted) s.progress_pointer = s.checkpoint_pointer = s.size;
  return s;
}

// A job's status from a snapshot: its record as of the snapshot, and the
// live counters of its transfer and copier.
JobStatus VolumeManager::status_of(const VgMetadata& md, const JobInfo& info, const Job& j) {
  JobStatus s = recorded_job_status(md, info);
  s.rate = j.copier ? j.copier->rate() : 0;
  if (s.rate == 0 && j.transfer && !j.done && !j.transfer->paused()) {  // before the first rate sample
    double secs = std::chrono::duration<double>(Clock::now() - j.started).count();
    if (secs > 0.05) s.rate = static_cast<uint64_t>(static_cast<double>(j.transfer->copied_bytes()) / secs);
  }
  if (const Transfer* t = j.transfer.get()) {
    s.progress_pointer = t->progress_pointer();
    s.checkpoint_pointer = t->persisted_pointer();
    s.sync_status = std::string(sync_status_name(t->sync_status()));
    s.paused = t->paused();
    s.dirty_regions = t->dirty_count();
    s.copied_bytes = t->copied_bytes();
    s.rate_limit = t->rate_limit();
  }
  return s;
}

// The readers below take the snapshot, never admin_.
std::vector<JobStatus> VolumeManager::jobs() const {
  std::shared_ptr<const Snapshot> s = snapshot();
  std::vector<JobStatus> out;
  out.reserve(s->jobs.size() + 1);
  if (s->metadata.foreign_move) out.push_back(foreign_move_status(s->metadata));  // job 0 comes first
  for (const Snapshot::JobEntry& e : s->jobs) out.push_back(status_of(s->metadata, e.info, *e.job));
  if (!s->removed_pv_jobs.empty()) {
    out.insert(out.end(), s->removed_pv_jobs.begin(), s->removed_pv_jobs.end());
    std::sort(out.begin(), out.end(), [](const JobStatus& a, const JobStatus& b) { return a.id < b.id; });
  }
  return out;
}

Result<JobStatus> VolumeManager::job(uint64_t id) const {
  std::shared_ptr<const Snapshot> s = snapshot();
  if (id == kForeignMoveJob && s->metadata.foreign_move) return foreign_move_status(s->metadata);
  for (const Snapshot::JobEntry& e : s->jobs)
    if (e.info.id == id) return status_of(s->metadata, e.info, *e.job);
  for (const JobStatus& j : s->removed_pv_jobs)
    if (j.id == id) return j;
  return Status::Error(ENOENT, fmt::format("no job {}", id));
}

Result<std::string> VolumeManager::bitmap(uint64_t id) const {
  std::shared_ptr<const Snapshot> s = snapshot();
  if (id == kForeignMoveJob && s->metadata.foreign_move) return std::string();  // no vgfs record
  for (const Snapshot::JobEntry& e : s->jobs)
    if (e.info.id == id) return e.job->transfer ? e.job->transfer->bitmap_bytes() : std::string();
  for (const JobStatus& j : s->removed_pv_jobs)
    if (j.id == id) return std::string();  // ended: no transfer, like any ended job
  return Status::Error(ENOENT, fmt::format("no job {}", id));
}

VgMetadata VolumeManager::metadata() const { return snapshot()->metadata; }

}  // namespace vgfs
