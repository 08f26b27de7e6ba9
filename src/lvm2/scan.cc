// Reading every metadata area of every PV of an LVM2 VG and choosing the
// newest text (include/vgfs/lvm2_scan.h, docs/lvm2.md "Choosing the
// metadata").
#include "vgfs/lvm2_scan.h"

#include <fmt/format.h>

#include <climits>

namespace vgfs::lvm2 {

namespace {
__extension__ typedef unsigned __int128 u128;
}  // namespace

Result<PvScan> scan_pv(const ByteSource& source) {
  PvScan scan;
  scan.source = source;
  Result<PvLabel> label = read_label(source, &scan.warnings);
  if (!label.ok()) return label.status();
  scan.label = *label;
  for (size_t i = 0; i < label->metadata_areas.size(); ++i) {
    const DiskArea& area = label->metadata_areas[i];
    const std::string where = fmt::format("{} mda{} (byte {})", source.name, i + 1, area.offset);
    Result<MdaText> mda = read_mda(source, area);
    if (!mda.ok()) {
      scan.warnings.push_back(fmt::format("{}: damaged, not used: {}", where, mda.status().message()));
      continue;
    }
    if (mda->header.ignored()) {
      ++scan.ignored_mdas;
      continue;
    }
    if (mda->empty()) {
      ++scan.empty_mdas;
      continue;
    }
    // The head only (VG name, id, seqno): read_vg_from() parses the newest
    // copy whole, and every other copy is compared with it byte for byte.
    Result<ConfigTree> tree = parse_config_head(mda->text, where);
    Result<VgSummary> summary = tree.ok() ? read_vg_summary(*tree, where) : Result<VgSummary>(tree.status());
    if (!summary.ok()) {
      scan.warnings.push_back(fmt::format("{}: text does not parse, not used: {}", where, summary.status().message()));
      continue;
    }
    scan.copies.push_back(MdaCopy{where, std::move(mda->text), std::move(*summary)});
  }
  return scan;
}

Result<VgRead> read_vg_from(const std::vector<PvScan>& scans, const std::string& vg_uuid) {
  VgRead out;
  const MdaCopy* newest = nullptr;
  for (const PvScan& s : scans)
    for (const MdaCopy& c : s.copies) {
      if (c.summary.uuid != vg_uuid) {
        out.warnings.push_back(fmt::format("{} holds VG {} ({}), not the VG read here", c.where, c.summary.name,
                                           format_lvm2_uuid(c.summary.uuid)));
        continue;
      }
      if (!newest || c.summary.seqno > newest->summary.seqno) newest = &c;
    }
  if (!newest)
    return Status::Error(EINVAL, fmt::format("no usable metadata of VG {} on its PVs", format_lvm2_uuid(vg_uuid)));
  for (const PvScan& s : scans)
    for (const MdaCopy& c : s.copies) {
      if (c.summary.uuid != vg_uuid || &c == newest) continue;
      if (c.summary.seqno == newest->summary.seqno && c.text != newest->text)
        return Status::Error(EINVAL, fmt::format("VG {}: {} and {} hold different metadata with the same seqno {}; "
                                                 "refusing to guess which is right",
                                                 newest->summary.name, newest->where, c.where, c.summary.seqno));
      if (c.summary.seqno < newest->summary.seqno)
        out.warnings.push_back(fmt::format("{} holds seqno {} of VG {}, older than seqno {} in {}: stale (LVM2 "
                                           "repairs it on its next write)",
                                           c.where, c.summary.seqno, c.summary.name, newest->summary.seqno,
                                           newest->where));
    }
  Result<Lvm2Vg> vg = read_vg_text(newest->text, newest->where);
  if (!vg.ok()) return vg.status();
  out.vg = std::move(*vg);
  out.text = newest->text;
  out.from = newest->where;
  const Lvm2Vg& v = out.vg;
  for (const Lvm2Pv& p : v.pvs) {
    size_t found = SIZE_MAX;
    for (size_t i = 0; i < scans.size(); ++i)
      if (scans[i].label.uuid == p.uuid) {
        if (found != SIZE_MAX)
          return Status::Error(EINVAL, fmt::format("VG {}: PV {} ({}) is on both {} and {}: duplicate PVs", v.name,
                                                   p.key, format_lvm2_uuid(p.uuid), scans[found].source.name,
                                                   scans[i].source.name));
        found = i;
      }
    out.pvs.push_back(found);
    if (found == SIZE_MAX) {
      out.warnings.push_back(fmt::format("VG {}: PV {} ({}, last seen as {}) is missing", v.name, p.key,
                                         format_lvm2_uuid(p.uuid), p.device_hint.empty() ? "?" : p.device_hint));
      continue;
    }
    const PvScan& s = scans[found];
    const u128 pe_end = (u128{p.pe_start} + u128{p.pe_count} * v.extent_size) * kSectorSize;
    if (pe_end > s.source.size)
      out.warnings.push_back(fmt::format("VG {}: PV {} on {}: its {} extents end past the device's {} bytes", v.name,
                                         p.key, s.source.name, p.pe_count, s.source.size));
    if (s.label.has_extension && !s.label.in_vg())
      out.warnings.push_back(fmt::format("VG {}: PV {} on {}: the label's in-VG flag is clear", v.name, p.key,
                                         s.source.name));
    if (!s.label.data_areas.empty() && s.label.pe_start() != p.pe_start * kSectorSize)
      out.warnings.push_back(fmt::format("VG {}: PV {} on {}: pe_start {} sectors, the label's data area at byte {}",
                                         v.name, p.key, s.source.name, p.pe_start, s.label.pe_start()));
  }
  for (const PvScan& s : scans)
    if (!v.pv_by_uuid(s.label.uuid))
      out.warnings.push_back(fmt::format("{}: PV {} is not in the newest metadata of VG {}", s.source.name,
                                         format_lvm2_uuid(s.label.uuid), v.name));
  return out;
}

}  // namespace vgfs::lvm2
