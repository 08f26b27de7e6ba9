// vgfs's migration jobs in LVM2's text (docs/lvm2.md, "Moves"): LVM2 PVs
// have no migration area, so while a job runs on an LVM2 VG its reserved
// destination and its transfer-region record are two hidden LVs of the VG:
//
//   vgfs_move<ID>      the destination PEs (one linear segment), tags
//                      "vgfs.lv=LV", "vgfs.le=FIRST_LE", "vgfs.source=PV:PE"
//   vgfs_move<ID>_rec  the extents holding the job record (job_record.h,
//                      both copies from byte 0), tag "vgfs.record"
//
// Both without VISIBLE, so LVM2 lists them with `lvs -a`, counts their PEs as
// used and `vgck` passes. The commit that starts a job adds them; the switch
// commit (the LV remapped) and the abort commit drop them, because encode
// writes them for running jobs only. lvcreate/lvrename refuse the prefix
// (check_new_lv_name), so no user LV takes these names.
//
// Invariant: decode(encode(md)) gives back md's running jobs exactly (id, LV,
// LEs, source, destination, record place). A pair that does not describe a
// running job vgfs could resume (a tag missing or malformed, the LV gone or
// renamed, its LEs no longer on the source the tags name, the record too
// small, two jobs on one LE) stays a pair of ordinary hidden LVs: the source
// is then the truth, and `lvremove` (LVM2's) can drop them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/metadata.h"

namespace vgfs::lvm2 {

inline constexpr std::string_view kMoveLvPrefix = "vgfs_move";
inline constexpr std::string_view kRecordLvSuffix = "_rec";

std::string move_lv_name(uint64_t job);
std::string record_lv_name(uint64_t job);

// The hidden LVs of every running job of `md` whose record is in extents of
// its own (JobInfo::record_pv), two per job, in job order. Their ids are
// derived from the VG id and the LV name, so every commit writes the same.
std::vector<LvInfo> job_lvs(const VgMetadata& md);

// Takes the hidden LV pairs that describe running jobs out of md->lvs into
// md->jobs, and sets md->next_job_id past them. Anything else is left alone.
void jobs_from_lvs(VgMetadata* md);

}  // namespace vgfs::lvm2
