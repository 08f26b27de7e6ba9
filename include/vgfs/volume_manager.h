// VolumeManager: every metadata change of a mounted VG: the online migration
// jobs (docs/migration.md; README.md "Control file") and the LV and PV lifecycle (src/manager/lifecycle.cc).
//
// Invariant: every change of the VG metadata while mounted goes through one
// admin mutex and is one VgStore::commit(), and the snapshot readers see is
// published before that mutex is released; a job's destination is reserved
// by the commit that creates it, and its LV map switches to the destination
// in the commit that completes it, while writes to its range are held. A
// running job always has a Transfer published on its LV, so no write to its
// range escapes the write rules.
//
// Readers (metadata(), pv_names(), jobs(), job(), bitmap(): getattr, the
// `.vgfs/` views, `--wait` polling) never take the admin mutex: they read
// an immutable snapshot, the metadata of the last commit and the job list,
// published after every change, plus each running job's live counters
// (atomics of its Transfer and Copier). The admin mutex is for writers, and
// a writer does no long I/O under it: lvcreate and lvextend zero their new
// extents holding only the command mutex (docs/design.md "Locks").
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "vgfs/metadata.h"
#include "vgfs/status.h"
#include "vgfs/units.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"

namespace vgfs {

// A job's status as `.vgfs/jobs/<id>/status` shows it.
struct JobStatus {
  uint64_t id = 0;
  std::string lv;
  uint64_t le = 0, count = 0;
  // A leg job (JobInfo::leg): the leg, and the LEs of its striped run
  // (count is then the leg's PEs).
  std::optional<uint32_t> leg{};
  uint64_t le_count = 0;
  std::string source_pv, destination_pv;
  uint64_t source_pe = 0, destination_pe = 0;
  uint64_t region_size = 0, size = 0;
  uint64_t progress_pointer = 0, checkpoint_pointer = 0;
  std::string sync_status;  // copying, resyncing, synchronized, completed, aborted, failed
  bool paused = false;
  uint64_t regions = 0, dirty_regions = 0;
  uint64_t copied_bytes = 0, rate = 0, rate_limit = 0;
  std::string reason;
};

// The status of a job from the metadata alone (offline, or ended jobs).
JobStatus recorded_job_status(const VgMetadata& md, const JobInfo& job);
// The status of md.foreign_move (set), job kForeignMoveJob: sync_status
// "stopped", progress what the other tool reports copied, the reason says
// how to finish or abort it (src/manager/foreign_move.cc).
JobStatus foreign_move_status(const VgMetadata& md);

// What a command did, for the control layer to word (src/control/): the
// manager returns facts, never reply text.
struct JobsStarted {  // move, pvmove
  std::vector<uint64_t> jobs;  // the ids, one per contiguous run
  // pvmove only: the migration area of the PV could not hold a record for
  // every run, so `runs_moving` of its `runs` move now; 0 when all do.
  uint64_t runs_moving = 0, runs = 0;
  bool partial() const { return runs != 0; }
};
struct LvSized {  // lvcreate, lvextend, lvreduce
  std::string lv;
  uint64_t asked = 0;        // the size asked for, bytes
  uint64_t extents = 0;      // the LV's extents now (the size rounded up)
  uint64_t extent_size = 0;  // of the VG
};
// Owner and permission bits of an LV file (lvcreate's options, chmod and
// chown on the LV file); an unset field keeps what the LV has (for a new LV:
// mode 0600, owned by the mounting user).
struct LvOwnership {
  std::optional<uint32_t> mode{};  // permission bits only, <= 0777
  std::optional<uint32_t> uid{}, gid{};  // <= 2^32 - 2 (-1 means "no change" to chown)
  bool operator==(const LvOwnership&) const = default;
};
struct PvAdded {
  std::string pv;  // the name given, or the first free pvN
  uint64_t extents = 0, extent_size = 0;
};
struct PvRemoved {
  std::string pv, vg;
};

// Copier threads a mount runs, whatever the number of jobs.
constexpr size_t kCopierThreads = 4;

class VolumeManager {
 public:
  // Loads the jobs of the metadata and the records of the running ones
  // (their status shows on read-only mounts too).
  VolumeManager(VgStore& store, VolumeSet& volume);
  ~VolumeManager();
  // Resumes every running job (read-write mounts). Fails when no copier
  // thread can be started (the jobs then wait for the next command that
  // can start one).
  Status start();
  // Stops every copier and checkpoints its job (unmount).
  void shutdown();

  // `move LV[:LE-range] PV[:PE]`: one job per contiguous source run.
  // `limit` (bytes/s, 0 = none) is each new job's copy rate from its first
  // region on, and is in its persisted record before this returns.
  Result<JobsStarted> move(std::string_view lv, std::optional<IndexRange> les, std::string_view pv,
                           std::optional<uint64_t> pe, uint64_t limit = 0);
  // `pvmove PV [DEST...]`: every allocated extent of PV onto the others,
  // one job per run. When the PV's migration area cannot hold a record for
  // every run, the runs that fit start and the result says how many.
  Result<JobsStarted> pvmove(std::string_view pv, const std::vector<std::string>& destinations, uint64_t limit = 0);
  // abort(kForeignMoveJob) is abort_foreign_move().
  Status abort(uint64_t id);
  // LVM2's unfinished pvmove0 (VgMetadata::foreign_move), job
  // kForeignMoveJob. finish: one commit drops it and starts a vgfs job per
  // piece to the destination PEs it had reserved (its LVs served from then
  // on, on their source until each job switches). abort: one commit puts
  // every LV it names back on its source.
  Result<JobsStarted> finish_foreign_move(uint64_t limit = 0);
  Status abort_foreign_move();
  Status pause(uint64_t id);
  Status resume(uint64_t id);
  Status limit(uint64_t id, uint64_t bytes_per_second);

  // LV and PV lifecycle (README.md "Control file"): each is one metadata commit. Sizes
  // round up to whole extents.
  Result<LvSized> lvcreate(const std::string& name, uint64_t size, const std::vector<std::string>& pvs,
                           const LvOwnership& owner = {});
  // chmod/chown of the LV file: commits the set fields of `change` and
  // publishes them before returning, so the next getattr shows them. Who
  // may change what is the caller's check (src/fuse/vgfs_fs.cc setattr).
  Status lvchange(const std::string& name, const LvOwnership& change);
  Result<LvSized> lvextend(const std::string& name, uint64_t size);
  Result<LvSized> lvreduce(const std::string& name, uint64_t size);
  Status lvremove(const std::string& name);
  Status lvrename(const std::string& from, const std::string& to);
  // `force` overwrites a device that holds a label or data (a PV removed
  // earlier keeps its old metadata area); the OFD lock still refuses one in use.
  Result<PvAdded> pvadd(const std::string& path, std::string name, bool force = false);
  Result<PvRemoved> pvremove(const std::string& name);
  std::vector<std::string> pv_names() const;  // a reader, like jobs()

  // Readers: from the snapshot of the last change, never waiting for a
  // writer; a job's counters are read live.
  std::vector<JobStatus> jobs() const;
  Result<JobStatus> job(uint64_t id) const;
  Result<std::string> bitmap(uint64_t id) const;
  // A copy of the metadata of the last commit, consistent with jobs().
  VgMetadata metadata() const;

  // The problems of the metadata commits this thread made (a PV the commit
  // did not reach, an archive that could not be written) while an object
  // of this class lived; each is also logged. The control file appends
  // them to the reply.
  class CommitWarnings {
   public:
    CommitWarnings();
    ~CommitWarnings();
    CommitWarnings(const CommitWarnings&) = delete;
    CommitWarnings& operator=(const CommitWarnings&) = delete;
    const std::vector<std::string>& list() const { return list_; }

   private:
    friend class VolumeManager;
    std::vector<std::string> list_;
    CommitWarnings* outer_;
  };

  // The mount point this VG is served on: pvadd refuses any path on it
  // (a PV inside its own mount deadlocks the first fsync).
  void set_mount_point(const std::string& path);

  // Tests: hold the admin mutex (readers must not wait for it), whether it
  // is free now, and a callback run while lvcreate or lvextend zero their
  // new extents.
  std::unique_lock<std::mutex> hold_admin_for_testing() const { return std::unique_lock(admin_); }
  bool admin_free_for_testing() const;
  void on_zeroing_for_testing(std::function<void()> hook) { zeroing_hook_ = std::move(hook); }

  // Tests: make starting a copier thread fail as under a pids limit.
  void fail_thread_start_for_testing(bool fail) { fail_thread_start_ = fail; }
  size_t copier_threads() const;

 private:
  struct Job;
  // What readers see, immutable once published: the metadata of the last
  // commit and the jobs, each with its record as of the same moment and
  // its live side (transfer, copier) for the counters that change between
  // commits.
  struct Snapshot {
    struct JobEntry {
      JobInfo info;
      std::shared_ptr<const Job> job;
    };
    VgMetadata metadata;
    std::vector<JobEntry> jobs;
    std::vector<JobStatus> removed_pv_jobs;
  };
  // admin_ held for a change; publishes a snapshot when it lets go.
  class Change;
  void publish();  // under admin_
  std::shared_ptr<const Snapshot> snapshot() const;
  static JobStatus status_of(const VgMetadata& md, const JobInfo& info, const Job& job);
  // Zeroes the new extents of lvcreate or lvextend holding commands_ only,
  // then takes admin_ again into `change`.
  Status zero_unlocked(Change& change, const VgMetadata& md, const std::vector<MapRun>& runs);

  Result<JobsStarted> start_jobs(VgMetadata md, std::vector<JobInfo> jobs, uint64_t limit,
                                 bool ends_foreign_move = false);
  // The foreign move's pieces as vgfs jobs on `md`; its LVs served (foreign_move.cc).
  Status add_foreign_move_jobs(VgMetadata& md, const ForeignMove& move, std::vector<JobInfo>* out);
  void publish_without_foreign_move(const ForeignMove& move);
  // Punches an ended job's destination range on a sparse image (migration.cc).
  void release_destination(const JobInfo& info);
  // Logs a problem and adds it to this thread's CommitWarnings, if any.
  static void warn(std::string warning);
  // Adds a running job to `md` with its record place and id (migration.cc).
  Status add_job(VgMetadata& md, JobInfo job, std::vector<JobInfo>* out);
  Status add_job_with_record_extents(VgMetadata& md, JobInfo job, std::vector<JobInfo>* out);
  uint64_t next_job_id(const VgMetadata& md) const;
  bool record_fits(const VgMetadata& md, const JobInfo& job) const;
  // Gives a job with a transfer its copier (src/manager/copier.h), whose
  // hooks make the switch and end commits below.
  void attach_copier(Job& job);
  // The copier pool (src/manager/copier_pool.cc).
  Status ensure_copiers();             // at least one thread; tops up to kCopierThreads
  void schedule(Job& job);             // a new or resumed running job
  void wake(Job& job);                 // a control change: run its step soon
  void forget(Job& job);               // waits until no copier holds it (before destroying it)
  void copier_loop();
  void stop_copiers();
  // Every metadata commit: store_.commit (store_.commit_ending_foreign_move
  // when `ends_foreign_move`), then its problems reported.
  Status commit(VgMetadata md, bool ends_foreign_move = false);
  bool switch_over(Job& job, Status* st);
  Status finish(Job& job, JobState state, const std::string& reason);
  void publish_transfers(const std::string& lv);
  Job* find(uint64_t id) const;
  Result<Job*> running_job(uint64_t id) const;
  Status set(uint64_t id, const std::function<void(Transfer&)>& change, bool checkpoint);
  Status zero_extents(const VgMetadata& md, const std::vector<MapRun>& runs);
  Status check_idle(const VgMetadata& md, const std::string& lv, const char* verb) const;
  // Refused before a change touches anything (docs/lvm2.md "Mounting"): a
  // VG whose format says no metadata change may be committed
  // (VgMetadata::change_refused).
  Status check_changeable(const VgMetadata& md, std::string_view verb) const;

  Status check_not_on_mount(const std::string& path, const struct stat* opened) const;

  // Lock order and what each lock guards: docs/design.md "Locks".
  // Commands that change the metadata, one at a time, for their whole run
  // (outermost lock). Only they allocate extents or add and remove PVs, so
  // lvcreate's reserved extents stay free while it zeroes them without
  // admin_.
  std::mutex commands_;
  mutable std::mutex admin_;  // metadata changes and the job list
  VgStore& store_;      // guarded by admin_ (VgStore is serialized by its caller); its PV list also by commands_
  VolumeSet& volume_;   // thread-safe itself; its changes are made under admin_
  std::string mount_point_;  // guarded by admin_
  std::vector<std::shared_ptr<Job>> jobs_;  // guarded by admin_
  // Ended jobs that moved to or from a PV pvremove took out: the metadata
  // can no longer name that PV, so they stay listed (jobs(), job()) from
  // here for the life of the mount, the newest kMaxFinishedJobs.
  std::vector<JobStatus> removed_pv_jobs_;  // guarded by admin_

  mutable std::mutex snapshot_m_;             // a leaf: held only to copy or swap the pointer
  std::shared_ptr<const Snapshot> snapshot_;  // guarded by snapshot_m_
  std::function<void()> zeroing_hook_;        // tests

  mutable std::mutex pool_m_;  // the members below and each Job's scheduling fields
  std::condition_variable pool_cv_;
  std::vector<std::thread> copiers_;  // guarded by pool_m_
  std::vector<Job*> scheduled_;       // guarded by pool_m_; jobs a copier may run
  uint64_t turns_ = 0;                // guarded by pool_m_
  bool pool_stop_ = false;            // guarded by pool_m_
  std::atomic<bool> fail_thread_start_{false};
};

}  // namespace vgfs
