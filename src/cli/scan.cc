// `vgfs scan` (src/cli/scan.h, docs/lvm2.md "vgfs scan"): finds LVM2 and
// vgfs PVs on whole images and devices and, through libblkid, in the
// partitions of disk images; reads every metadata area of the LVM2 PVs and
// lists each VG with its LVs and whether vgfs can serve their segments.
#include "cli/scan.h"

#include <fmt/format.h>

#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/pv_finder.h"
#include "vgfs/escape.h"
#include "vgfs/lvm2_scan.h"
#include "vgfs/metadata.h"
#include "vgfs/pv_format.h"
#include "vgfs/units.h"

namespace vgfs::cli {

namespace {

std::string segment_kind(const lvm2::Lvm2Segment& s) {
  if (s.type == "striped") return s.stripe_count == 1 ? "linear" : "striped";
  return s.type;
}

nlohmann::json vg_json(const lvm2::VgRead& read, const std::vector<const FoundPv*>& members) {
  const lvm2::Lvm2Vg& vg = read.vg;
  const uint64_t extent_bytes = vg.extent_size * lvm2::kSectorSize;
  nlohmann::json j = {{"name", vg.name}, {"uuid", lvm2::format_lvm2_uuid(vg.uuid)}, {"seqno", vg.seqno},
                      {"format", "lvm2"},  {"status", vg.status},   {"flags", vg.flags},
                      {"extent_size", extent_bytes}, {"system_id", vg.system_id}, {"lock_type", vg.lock_type},
                      {"metadata_from", read.from}, {"warnings", read.warnings}};
  j["pvs"] = nlohmann::json::array();
  for (size_t i = 0; i < vg.pvs.size(); ++i) {
    const lvm2::Lvm2Pv& p = vg.pvs[i];
    nlohmann::json pj = {{"key", p.key},           {"uuid", lvm2::format_lvm2_uuid(p.uuid)},
                         {"device_hint", p.device_hint}, {"pe_start", p.pe_start * lvm2::kSectorSize},
                         {"pe_count", p.pe_count}, {"status", p.status}};
    if (read.pvs[i] == SIZE_MAX) {
      pj["path"] = nullptr;
      pj["missing"] = true;
    } else {
      const FoundPv& f = *members[read.pvs[i]];
      pj["path"] = f.path;
      pj["partition"] = f.partition;
      pj["offset"] = f.offset;
      pj["missing"] = false;
    }
    j["pvs"].push_back(pj);
  }
  j["lvs"] = nlohmann::json::array();
  for (const lvm2::Lvm2Lv& l : vg.lvs) {
    nlohmann::json lj = {{"name", l.name}, {"uuid", lvm2::format_lvm2_uuid(l.uuid)}, {"visible", l.visible()},
                         {"status", l.status}, {"extent_count", l.extent_count()},
                         {"size", l.extent_count() * extent_bytes}, {"servable", l.unsupported().empty()},
                         {"reason", l.unsupported()}};
    lj["segments"] = nlohmann::json::array();
    for (const lvm2::Lvm2Segment& s : l.segments) {
      nlohmann::json sj = {{"start_extent", s.start_extent}, {"extent_count", s.extent_count}, {"type", s.type},
                           {"kind", segment_kind(s)}, {"stripe_count", s.stripe_count},
                           {"stripe_size", s.stripe_size * lvm2::kSectorSize}, {"reason", s.unsupported}};
      sj["stripes"] = nlohmann::json::array();
      for (const lvm2::StripeArea& a : s.stripes) sj["stripes"].push_back({{"pv", a.pv}, {"pe", a.pe}});
      lj["segments"].push_back(sj);
    }
    j["lvs"].push_back(lj);
  }
  return j;
}


}  // namespace

ScanCommand::ScanCommand(CLI::App& app) {
  command_ = app.add_subcommand("scan", "list the PVs and VGs (LVM2 or vgfs) on images, devices and their partitions");
  command_->add_option("PATH", paths_, "image files or block devices")->required();
  command_->add_flag("--json", json_, "print JSON");
}

int ScanCommand::run() const {
  FoundPvs r = find_pvs(paths_);
  std::vector<Lvm2VgFound> vgs = group_lvm2_vgs(r, &r.errors);

  std::map<const FoundPv*, std::string> vg_of;
  for (const Lvm2VgFound& v : vgs)
    for (const FoundPv* f : v.members) vg_of[f] = v.read.vg.name;

  if (json_) {
    nlohmann::json out = {{"pvs", nlohmann::json::array()}, {"vgs", nlohmann::json::array()},
                          {"no_pv", r.no_pv}, {"warnings", r.warnings}, {"errors", r.errors}};
    for (const FoundPv& f : r.pvs) {
      nlohmann::json pj = {{"path", f.path}, {"partition", f.partition}, {"offset", f.offset}};
      if (f.lvm2) {
        const lvm2::PvLabel& l = f.lvm2->label;
        pj.update({{"format", "lvm2"}, {"uuid", lvm2::format_lvm2_uuid(l.uuid)}, {"label_sector", l.sector},
                   {"device_size", l.device_size}, {"pe_start", l.pe_start()},
                   {"metadata_areas", l.metadata_areas.size()}, {"in_vg", l.in_vg()},
                   {"bootloader_areas", l.bootloader_areas.size()},
                   {"vg", vg_of.count(&f) ? nlohmann::json(vg_of[&f]) : nlohmann::json(nullptr)}});
      } else {
        pj.update({{"format", "vgfs"}, {"uuid", format_uuid(f.vgfs->label.pv_uuid)},
                   {"vg_uuid", format_uuid(f.vgfs->label.vg_uuid)}, {"vg", f.vgfs->vg_name},
                   {"seqno", f.vgfs->seqno}, {"pe_start", f.vgfs->label.layout.pe_start}});
      }
      out["pvs"].push_back(pj);
    }
    for (const Lvm2VgFound& v : vgs) out["vgs"].push_back(vg_json(v.read, v.members));
    fmt::print("{}\n", out.dump(2));
  } else {
    for (const FoundPv& f : r.pvs) {
      if (f.lvm2) {
        const lvm2::PvLabel& l = f.lvm2->label;
        fmt::print("PV {}  format lvm2  uuid {}  VG {}  {} mda{}{}\n", printable(f.where()),
                   lvm2::format_lvm2_uuid(l.uuid), vg_of.count(&f) ? printable(vg_of[&f]) : "-",
                   l.metadata_areas.size(), l.metadata_areas.size() == 1 ? "" : "s",
                   l.bootloader_areas.empty() ? "" : "  bootloader area");
      } else {
        fmt::print("PV {}  format vgfs  uuid {}  VG {}  seqno {}\n", printable(f.where()),
                   format_uuid(f.vgfs->label.pv_uuid), f.vgfs->vg_name.empty() ? "?" : printable(f.vgfs->vg_name),
                   f.vgfs->seqno);
      }
    }
    for (const std::string& p : r.no_pv)
      fmt::print("{}: no PV (no LVM2 or vgfs label on it or in a partition of it)\n", printable(p));
    for (const Lvm2VgFound& v : vgs) {
      const lvm2::Lvm2Vg& vg = v.read.vg;
      const uint64_t extent_bytes = vg.extent_size * lvm2::kSectorSize;
      size_t present = 0;
      for (size_t i : v.read.pvs) present += i != SIZE_MAX;
      fmt::print("VG {}  format lvm2  uuid {}  seqno {}  extent {}  PVs {}/{}  LVs {}\n", printable(vg.name),
                 lvm2::format_lvm2_uuid(vg.uuid), vg.seqno, human_size(extent_bytes), present, vg.pvs.size(),
                 vg.lvs.size());
      for (const lvm2::Lvm2Lv& l : vg.lvs) {
        std::string kinds;
        for (const lvm2::Lvm2Segment& s : l.segments) {
          std::string k = segment_kind(s);
          if (k == "striped") k += fmt::format("({}x{})", s.stripe_count, human_size(s.stripe_size * lvm2::kSectorSize));
          if (kinds.find(k) == std::string::npos) kinds += (kinds.empty() ? "" : ",") + k;
        }
        const std::string why = l.unsupported();
        fmt::print("  LV {:<20} {:>9}  {:<24} {}\n", printable(l.visible() ? l.name : "[" + l.name + "]"),
                   human_size(l.extent_count() * extent_bytes), printable(kinds),
                   why.empty() ? "vgfs can serve it" : "not served: " + printable(why));
      }
    }
    for (const Lvm2VgFound& v : vgs)
      for (const std::string& w : v.read.warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  }
  if (!json_)
    for (const std::string& w : r.warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  for (const std::string& e : r.errors) fmt::print(stderr, "vgfs: {}\n", printable(e));
  return r.errors.empty() ? 0 : 1;
}

}  // namespace vgfs::cli
