// Text and JSON renderings of the VG records: the `.vgfs/` files of a mount
// and the listings of `vgfs lvs|pvs`.
//
// Invariant: every rendering is a pure function of the metadata (or of the
// JSON made from it), so a mount and an offline command print the same
// thing for the same VG.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "vgfs/metadata.h"
#include "vgfs/volume_manager.h"

namespace vgfs::views {

std::string vg_summary(const VgMetadata& md);
std::string lv_info(const VgMetadata& md, uint32_t lv);
std::string lv_map(const VgMetadata& md, uint32_t lv);  // LE→PE form (docs/records.md)
std::string pv_info(const VgMetadata& md, uint32_t pv);
std::string pv_map(const VgMetadata& md, uint32_t pv);  // PE→LE form (docs/records.md)

std::string job_status(const JobStatus& job);  // `key: value` lines
nlohmann::json job_json(const JobStatus& job);
nlohmann::json vg_json(const VgMetadata& md, const std::vector<JobStatus>& jobs);
// Jobs table for `vgfs jobs`, from vg_json() output.
std::string jobs_table(const nlohmann::json& vg);

// Tables for `vgfs lvs` / `vgfs pvs` from vg_json() output; with `maps`, each
// row is followed by its map runs.
std::string lvs_table(const nlohmann::json& vg, bool maps);
std::string pvs_table(const nlohmann::json& vg, bool maps);

}  // namespace vgfs::views
