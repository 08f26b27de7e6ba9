// A typed, checked view of one LVM2 VG's metadata text (docs/lvm2.md,
// "What the VG text must satisfy"), built from the generic tree of
// vgfs/lvm2_config.h, which stays the source of every key vgfs does not
// model.
//
// Invariant: a Vg returned by read_vg() has a valid name and uuid, known
// status flags, an extent size > 0, PVs with distinct keys and uuids, and
// LVs whose segments cover LEs 0..n-1 in order without gaps or overlaps,
// each with start + count inside 32 bits as LVM2 reads them. Every striped
// segment names known PVs, has stripe_count pairs, a count divisible by the
// stripes, and PE ranges inside its PV; no PE is used twice. A segment of
// another type is kept with `unsupported` saying why vgfs cannot serve it.
// Arithmetic on sizes from the text is done in 128 bits or checked.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/lvm2_config.h"
#include "vgfs/status.h"

namespace vgfs::lvm2 {

struct Lvm2Pv {
  std::string key;   // the section name: pv0, pv1, ...
  std::string uuid;  // 32 characters, no dashes
  std::string device_hint;
  std::vector<std::string> status;  // ALLOCATABLE, EXPORTED, MISSING
  std::vector<std::string> flags;
  uint64_t dev_size = 0;  // sectors (0 when the text has none)
  uint64_t pe_start = 0;  // sectors
  uint64_t pe_count = 0;
  uint64_t ba_start = 0, ba_size = 0;  // sectors; both 0 when absent
  bool missing() const;
};

struct StripeArea {
  std::string pv;  // a PV key (pv0, ...), or an LV name for layered types
  uint64_t pe = 0;  // first PE (or LE of that LV) of this leg
  bool operator==(const StripeArea&) const = default;
};

struct Lvm2Segment {
  std::string name;  // segment1, ...
  uint64_t start_extent = 0;
  uint64_t extent_count = 0;
  std::string type;  // as written: "striped", "thin-pool", "raid1", ...
  uint64_t stripe_count = 0;
  uint64_t stripe_size = 0;  // sectors; 0 when stripe_count is 1
  std::vector<StripeArea> stripes;
  std::string unsupported;  // empty when vgfs can serve the segment
  bool striped() const { return unsupported.empty(); }
};

struct Lvm2Lv {
  std::string name;
  std::string uuid;
  std::vector<std::string> status;  // READ WRITE VISIBLE LOCKED ...
  std::vector<std::string> flags;
  std::vector<Lvm2Segment> segments;
  bool visible() const;
  uint64_t extent_count() const;
  // Empty when every segment is linear or striped; else the first reason.
  std::string unsupported() const;
};

struct Lvm2Vg {
  std::string name;
  std::string uuid;  // 32 characters, no dashes
  uint64_t seqno = 0;
  std::string format;  // "lvm2"
  std::vector<std::string> status;  // RESIZEABLE READ WRITE EXPORTED ...
  std::vector<std::string> flags;
  uint64_t extent_size = 0;  // sectors
  uint64_t max_lv = 0, max_pv = 0, metadata_copies = 0;
  std::string system_id;
  std::string lock_type;
  std::vector<Lvm2Pv> pvs;
  std::vector<Lvm2Lv> lvs;
  ConfigTree tree;  // the whole text, every key kept

  bool has_status(std::string_view flag) const;
  const Lvm2Pv* pv_by_key(std::string_view key) const;
  const Lvm2Pv* pv_by_uuid(std::string_view uuid) const;
};

// The VG name and seqno of a text without the full check, for choosing the
// newest copy before the full read (LVM2's vgsummary). EINVAL when the text
// does not parse or lacks them.
struct VgSummary {
  std::string name;
  std::string uuid;
  uint64_t seqno = 0;
};
Result<VgSummary> read_vg_summary(const ConfigTree& tree, std::string_view origin);

// Builds and checks the typed view. `origin` names the text in errors, which
// also name the VG, PV, LV and segment.
Result<Lvm2Vg> read_vg(ConfigTree tree, std::string_view origin);
// parse_config() and read_vg() in one.
Result<Lvm2Vg> read_vg_text(std::string_view text, std::string_view origin);

// LVM2's name rule (docs/lvm2.md): [A-Za-z0-9+_.-], 1-128 characters, not
// starting with '-', not "." or "..".
bool valid_lvm2_name(std::string_view name);

}  // namespace vgfs::lvm2
