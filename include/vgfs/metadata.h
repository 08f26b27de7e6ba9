// VgMetadata: the whole committed state of a volume group.
//
// It holds the VG record, the PV management information (one PvInfo per PV)
// and the LV management information (one LvInfo per LV, each with its
// ExtentMap). The PE→LE maps are not stored: pv_map() derives them from the
// LE→PE maps, and validate() proves they are a true inverse (no PE used
// twice, none out of range). Any VgMetadata that is written to a PV, served
// by a mount, or returned by decode_metadata() has passed validate().
//
// The text form (encode_metadata/decode_metadata) is YAML; it is what the
// metadata slots on every PV hold and what `vgfs dump` prints.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/escape.h"  // printable(): every string from disk goes into messages through it
#include "vgfs/extent_map.h"
#include "vgfs/kept_keys.h"
#include "vgfs/ranges.h"
#include "vgfs/status.h"
#include "vgfs/units.h"

namespace vgfs {

constexpr uint64_t kDefaultExtentSize = 4 * MiB;
constexpr uint64_t kDefaultRegionSize = 256 * KiB;
constexpr uint64_t kMinExtentSize = 64 * KiB;
constexpr uint64_t kMaxExtentSize = 1 * GiB;
// Bounds on what a metadata text may say (docs/format.md, "Checks"). A
// commit never goes past kMaxSeqno, so seqno + 1 can never wrap; job ids stay
// below kMaxJobId so the FUSE inodes derived from them cannot wrap either.
constexpr uint64_t kMaxSeqno = uint64_t{1} << 62;
constexpr uint64_t kMaxJobId = uint64_t{1} << 40;
constexpr uint64_t kMaxMetadataText = 64 * MiB;
constexpr size_t kMaxPvs = 65536;
// Striped runs (docs/format.md, "Striped segments"): LVM2's own limits on
// the leg count; a stripe size of at least 4 KiB (LVM2's minimum too) bounds
// the pieces one request splits into (kMaxPieces in vgfs/volume.h).
constexpr uint32_t kMaxStripes = 128;
constexpr uint64_t kMinStripeSize = 4 * KiB;
// Owner ids: "unset" means the mounting user, as for LVs made by vgfs;
// (uint32_t)-1 is chown's "no change" and never an owner.
constexpr uint32_t kMaxOwnerId = UINT32_MAX - 1;

struct PvInfo {
  std::string name;
  Uuid uuid{};
  std::string path;       // absolute path the PV was created or last seen at
  uint64_t pe_start = 0;  // byte offset of PE 0 in the image
  uint64_t pe_count = 0;
  KeptKeys kept{};  // keys vgfs does not understand, kept verbatim
};

// PEs an unsupported LV's segments name directly (LvInfo::held).
struct HeldExtents {
  uint32_t pv = 0;
  uint64_t pe = 0;
  uint64_t count = 0;
  bool operator==(const HeldExtents&) const = default;
};

struct LvInfo {
  std::string name;
  Uuid uuid{};
  uint32_t mode = 0600;
  // Owner of the LV file; unset = the user who mounts the VG.
  std::optional<uint32_t> uid{};
  std::optional<uint32_t> gid{};
  // Hidden LVs (LVM2's LVs without VISIBLE: pvmove's, a RAID's legs, ...)
  // are not served as LV files, but their extents are used like any LV's.
  bool hidden = false;
  ExtentMap map{};
  KeptKeys kept{};
  // Not empty: why vgfs neither serves nor changes this LV (an LVM2 segment
  // type it does not model: thin, raid, pvmove's mirror, ...). Such an LV has
  // no runs; its segments stay in `kept`, and the PV extents they name
  // directly are in `held`, counted as used like any LV's.
  std::string unsupported{};
  std::vector<HeldExtents> held{};
};

// A migration job as the metadata records it (docs/records.md, "Transfer region record"). While `running`, its
// destination PEs are reserved: they count as used, by nobody else. Finished
// jobs stay listed (newest kMaxFinishedJobs) so their status survives a remount.
enum class JobState { kRunning, kCompleted, kAborted, kFailed };
std::string_view job_state_name(JobState state);

struct JobInfo {
  uint64_t id = 0;
  std::string lv;        // LV name
  uint64_t le = 0;       // first LE moved
  uint64_t count = 0;    // extents moved
  uint32_t src_pv = 0;   // source range: PV index and first PE
  uint64_t src_pe = 0;
  uint32_t dst_pv = 0;   // destination range
  uint64_t dst_pe = 0;
  // Set: the job moves leg `*leg` of the striped run that starts at LE `le`
  // (docs/records.md, "Moving a leg of a striped run"): `count` is then the
  // leg's PEs (MapRun::leg_extents(), the whole leg), src_pe the leg's first
  // PE, and the regions are over the leg's PEs in PE order. The run's LEs
  // are le .. le + count * stripes - 1. Unset: a linear range, LEs le ..
  // le + count - 1 at src_pe ...
  std::optional<uint32_t> leg{};
  JobState state = JobState::kRunning;
  std::string reason;    // why it failed
  uint64_t record_offset = 0;  // of its record in the source PV's migration area
  uint64_t record_size = 0;    // bytes of the record area (both copies)
  // Formats without a migration area (LVM2, docs/lvm2.md "Moves"): the
  // record is at byte record_offset of extents of its own, PE record_pe..
  // of PV *record_pv (record_extents() of them), reserved while the job
  // runs like its destination. Unset: in the source PV's migration area.
  std::optional<uint32_t> record_pv{};
  uint64_t record_pe = 0;

  bool running() const { return state == JobState::kRunning; }
  uint64_t record_extents(uint64_t extent_size) const {
    return record_pv ? (record_offset + record_size + extent_size - 1) / extent_size : 0;
  }
};
constexpr size_t kMaxFinishedJobs = 32;

// A move another tool began and left unfinished in the metadata: LVM2's
// `pvmove0`, which LVM2 cannot finish nor abort without device-mapper
// (docs/lvm2.md "LVM2's unfinished pvmove"). Set by the format's decode();
// the LVs it moves are `unsupported` meanwhile. The manager shows it as job
// kForeignMoveJob, aborts it with VgFormat::without_foreign_move() and
// finishes it by a commit that hands every piece to a vgfs job.
struct ForeignMove {
  struct Piece {
    std::string lv;          // the LV whose extents move
    uint64_t le = 0;         // first LE of the LV's segment that names the move
    uint64_t count = 0;      // extents that move (one leg of that segment)
    uint32_t stripes = 1;    // that segment's stripe count; leg `stripe` moves
    uint32_t stripe = 0;
    uint32_t src_pv = 0;     // PV indices and first PEs
    uint64_t src_pe = 0;
    uint32_t dst_pv = 0;
    uint64_t dst_pe = 0;
    uint64_t moved = 0;      // extents the other tool reports copied
  };
  std::string name;          // "pvmove0"
  std::vector<Piece> pieces;
  std::string problem{};     // not empty: why vgfs can neither finish nor abort it
};
// The job id a foreign move shows as (vgfs's own ids start at 1).
constexpr uint64_t kForeignMoveJob = 0;

struct VgMetadata {
  std::string name;
  Uuid uuid{};
  uint64_t extent_size = kDefaultExtentSize;
  uint64_t region_size = kDefaultRegionSize;
  uint64_t seqno = 0;
  std::vector<PvInfo> pvs;
  std::vector<LvInfo> lvs;
  std::vector<JobInfo> jobs;
  uint64_t next_job_id = 1;
  KeptKeys kept{};
  // Not empty: why no metadata change may be committed to this VG (an LVM2
  // VG that is exported, foreign, shared, has missing PVs, locked or
  // unsupported LVs, ...); set by the format's decode(), VgStore::commit
  // refuses with it. vgfs's own format never sets it.
  std::string change_refused{};
  // An unfinished move of another tool, or none.
  std::optional<ForeignMove> foreign_move{};

  // Index of the PV / LV with this name, or -1.
  int find_pv(std::string_view name) const;
  int find_lv(std::string_view name) const;
  // The job with this id, or nullptr.
  const JobInfo* find_job(uint64_t id) const;
  JobInfo* find_job(uint64_t id);

  // The PE→LE map of PV `pv` as runs covering PE 0 .. pe_count-1, free runs
  // included; destinations reserved by running jobs carry the job id; each
  // leg of a striped run is one run of its own (PvRun::stripe). Assumes
  // validate() passed.
  std::vector<PvRun> pv_map(uint32_t pv) const;
  uint64_t free_extents(uint32_t pv) const;
  uint64_t total_free_extents() const;
  // Names of the LVs with extents on PV `pv`, in LV order.
  std::vector<std::string> lvs_on_pv(uint32_t pv) const;
  // Names of the PVs holding extents of LV `lv`, in order of first use.
  std::vector<std::string> pvs_of_lv(uint32_t lv) const;

  // Checks names, sizes, extent/region sizes, the seqno and job id bounds,
  // owners and modes, striped runs (2..kMaxStripes legs, count a multiple of
  // them, stripe size a power of two from kMinStripeSize to the extent
  // size), kept keys (unique, non-empty), and that the maps (every leg of
  // every striped run) and running jobs' destinations are a consistent,
  // in-range, non-overlapping assignment of PEs, that every running job's
  // source is what its LV maps there (check_job_source), and that the record places of the
  // running jobs of one source PV are 4 KiB aligned and do not overlap. (That
  // they fit the PV's migration area is checked against its label:
  // check_against_labels in vgfs/vg_store.h.)
  Status validate() const;
  // That running job `j`'s source is what its LV maps there: a linear job's
  // LEs on one linear run at src_pv:src_pe.., a leg job's leg (in range) of
  // the striped run starting at LE j.le, whole, at src_pv:src_pe. The error
  // names the field that does not match (LV, LE, leg, source).
  Status check_job_source(const JobInfo& j) const;
  // The LEs job `j` touches: its range, or all of its striped run's for a
  // leg job (j.count when the run is gone). Assumes the LV exists.
  IndexRange job_les(const JobInfo& j) const;
};

// Paths and reasons are carried byte-exact: as double-quoted YAML when they
// are UTF-8, as `!!binary` base64 otherwise.
std::string encode_metadata(const VgMetadata& md);
// `origin` names where the text came from for error messages. The text is
// untrusted: anchors, aliases, several documents and more nodes than its size
// can honestly hold are refused before anything is built, so the work done
// is bounded by the text size.
Result<VgMetadata> decode_metadata(std::string_view text, std::string_view origin);


// Places `extents` extents on the PVs listed in `candidates` (all PVs when
// empty): one contiguous run when any single free run fits (the smallest
// such, lowest PV then PE on ties), otherwise the fewest runs, taking the
// largest free runs first. Returned runs start at LE `first_le`. ENOSPC when
// the candidates hold too few free extents.
Result<std::vector<MapRun>> allocate_extents(const VgMetadata& md, uint64_t extents,
                                             std::span<const uint32_t> candidates,
                                             uint64_t first_le = 0);

}  // namespace vgfs
