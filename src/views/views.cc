// Renderings of the VG records (src/views/views.h).
#include "views/views.h"

#include <fmt/format.h>

#include "vgfs/escape.h"
#include "vgfs/lvm2_move.h"

namespace vgfs::views {

namespace {


// Every string that came from disk or a command goes out escaped
// (include/vgfs/escape.h): a path or reason can neither forge a line of a
// `key: value` view, nor drive a terminal, nor make the JSON encoder throw
// (nlohmann's dump throws on invalid UTF-8, which killed a FUSE worker).
std::string e(std::string_view s) { return escape_bytes(s); }

// A record's uuid as its format writes it: an LVM2 record keeps its own
// 32-character id (`id = "..."`, include/vgfs/lvm2_format.h), which LVM2's
// reports show; vgfs's records have only the 16-byte uuid.
std::string shown_uuid(const Uuid& uuid, const KeptKeys& kept) {
  for (const auto& [key, value] : kept)
    if (key == "id" && value.size() >= 2 && value.front() == '"' && value.back() == '"')
      return e(value.substr(1, value.size() - 2));
  return format_uuid(uuid);
}

// The extents of an LV vgfs does not serve (an LVM2 segment type it does not
// model): its segments are kept verbatim as `segmentN` sections of LVM2's
// text, so sum their `extent_count = N` lines. 0 when there are none.
uint64_t kept_extent_count(const LvInfo& lv) {
  uint64_t total = 0;
  for (const auto& [key, value] : lv.kept) {
    if (key.rfind("segment", 0) != 0 || key == "segment_count") continue;
    const std::string_view want = "extent_count = ";
    for (size_t at = value.find(want); at != std::string::npos; at = value.find(want, at + 1)) {
      if (at != 0 && value[at - 1] != '\n' && value[at - 1] != '\t' && value[at - 1] != ' ') continue;
      uint64_t n = 0;
      size_t i = at + want.size();
      for (; i < value.size() && value[i] >= '0' && value[i] <= '9' && n < (uint64_t{1} << 40); ++i)
        n = n * 10 + static_cast<uint64_t>(value[i] - '0');
      total += n;
      break;
    }
  }
  return total;
}

// A string of vg_json() output for a table: escaped already, but a table
// never trusts its input to be.
std::string t(const nlohmann::json& v) { return printable(v.get<std::string>()); }

std::vector<std::string> escaped(const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (const std::string& n : names) out.push_back(e(n));
  return out;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : " ") + e(n);
  return out;
}

uint64_t vg_size(const VgMetadata& md) {
  uint64_t extents = 0;
  for (const PvInfo& pv : md.pvs) extents += pv.pe_count;
  return extents * md.extent_size;
}

}  // namespace

std::string vg_summary(const VgMetadata& md) {
  return fmt::format(
      "name: {}\nuuid: {}\nextent_size: {}\nregion_size: {}\nseqno: {}\npv_count: {}\nlv_count: {}\nsize: {}\n"
      "allocated: {}\nfree: {}\n",
      e(md.name), shown_uuid(md.uuid, md.kept), md.extent_size, md.region_size, md.seqno, md.pvs.size(), md.lvs.size(),
      vg_size(md), vg_size(md) - md.total_free_extents() * md.extent_size, md.total_free_extents() * md.extent_size);
}

std::string lv_info(const VgMetadata& md, uint32_t lv) {
  const LvInfo& l = md.lvs[lv];
  return fmt::format("name: {}\nuuid: {}\nsize: {}\nle_count: {}\nle_size: {}\npvs: {}\nmode: {:04o}\n", e(l.name),
                     shown_uuid(l.uuid, l.kept), l.map.extent_count() * md.extent_size, l.map.extent_count(), md.extent_size,
                     joined(md.pvs_of_lv(lv)), l.mode);
}

std::string lv_map(const VgMetadata& md, uint32_t lv) {
  std::string out;
  for (const MapRun& r : md.lvs[lv].map.runs()) {
    if (!r.striped()) {
      out += fmt::format("{} {} {}\n", format_range(r.le, r.count), e(md.pvs[r.pv].name), format_range(r.pe, r.count));
      continue;
    }
    out += fmt::format("{} striped {}", format_range(r.le, r.count), r.stripe_size);  // as docs/format.md writes it
    for (uint32_t s = 0; s < r.stripe_count(); ++s)
      out += fmt::format(" {} {}", e(md.pvs[r.leg(s).pv].name), format_range(r.leg(s).pe, r.leg_extents()));
    out += "\n";
  }
  return out;
}

std::string pv_info(const VgMetadata& md, uint32_t pv) {
  const PvInfo& p = md.pvs[pv];
  return fmt::format("name: {}\nuuid: {}\npath: {}\npe_count: {}\npe_size: {}\npe_start: {}\nfree_pe: {}\nlvs: {}\n",
                     e(p.name), shown_uuid(p.uuid, p.kept), e(p.path), p.pe_count, md.extent_size, p.pe_start, md.free_extents(pv),
                     joined(md.lvs_on_pv(pv)));
}

std::string pv_map(const VgMetadata& md, uint32_t pv) {
  std::string out;
  for (const PvRun& r : md.pv_map(pv)) {
    if (r.free())
      out += fmt::format("{} free\n", format_range(r.pe, r.count));
    else if (r.record)  // a job's record in extents of its own (LVM2 VGs)
      out += fmt::format("{} {} record job {}\n", format_range(r.pe, r.count), e(md.lvs[static_cast<size_t>(r.lv)].name),
                         r.job);
    else
      out += fmt::format("{} {} {}{}\n", format_range(r.pe, r.count), e(md.lvs[static_cast<size_t>(r.lv)].name),
                         r.stripes == 1 ? format_range(r.le, r.count)
                                        : fmt::format("{} stripe {}", format_range(r.le, r.count * r.stripes), r.stripe),
                         r.job >= 0 ? fmt::format(" job {}", r.job) : "");
  }
  return out;
}

// The LEs a job touches: a leg job's whole striped run.
static std::string le_range(const JobStatus& j) { return format_range(j.le, j.leg ? j.le_count : j.count); }

std::string job_status(const JobStatus& j) {
  return fmt::format(
      "job: {}\nlv: {}\nle_range: {}\n{}source: {} {}\ndestination: {} {}\nregion_size: {}\nsize: {}\n"
      "progress_pointer: {}\ncheckpoint_pointer: {}\nsync_status: {}\npaused: {}\nregions: {}\ndirty_regions: {}\n"
      "copied_bytes: {}\nrate: {}\nrate_limit: {}\nreason: {}\n",
      j.id, e(j.lv), le_range(j), j.leg ? fmt::format("leg: {}\n", *j.leg) : "", e(j.source_pv), format_range(j.source_pe, j.count), e(j.destination_pv),
      format_range(j.destination_pe, j.count), j.region_size, j.size, j.progress_pointer, j.checkpoint_pointer,
      e(j.sync_status), j.paused ? "yes" : "no", j.regions, j.dirty_regions, j.copied_bytes, j.rate, j.rate_limit,
      e(j.reason));
}

nlohmann::json job_json(const JobStatus& j) {
  nlohmann::json out = {{"job", j.id},
          {"lv", e(j.lv)},
          {"le_range", le_range(j)},
          {"source", fmt::format("{} {}", e(j.source_pv), format_range(j.source_pe, j.count))},
          {"destination", fmt::format("{} {}", e(j.destination_pv), format_range(j.destination_pe, j.count))},
          {"region_size", j.region_size},
          {"size", j.size},
          {"progress_pointer", j.progress_pointer},
          {"checkpoint_pointer", j.checkpoint_pointer},
          {"sync_status", e(j.sync_status)},
          {"paused", j.paused},
          {"regions", j.regions},
          {"dirty_regions", j.dirty_regions},
          {"copied_bytes", j.copied_bytes},
          {"rate", j.rate},
          {"rate_limit", j.rate_limit},
          {"reason", e(j.reason)}};
  if (j.leg) out["leg"] = *j.leg;  // leg jobs only
  return out;
}

std::string jobs_table(const nlohmann::json& vg) {
  std::string out = fmt::format("{:>4} {:<12} {:<10} {:<16} {:<16} {:>6} {:<13} {:>10}  {}\n", "Job", "LV", "LEs",
                                "Source", "Destination", "Done", "Status", "Rate", "Reason");
  for (const auto& j : vg["jobs"]) {
    uint64_t size = j["size"].get<uint64_t>();
    double done = size ? 100.0 * static_cast<double>(j["progress_pointer"].get<uint64_t>()) / static_cast<double>(size) : 100.0;
    std::string status = t(j["sync_status"]) + (j["paused"].get<bool>() ? ",paused" : "");
    out += fmt::format("{:>4} {:<12} {:<10} {:<16} {:<16} {:>5.1f}% {:<13} {:>8}/s  {}\n", j["job"].get<uint64_t>(),
                       t(j["lv"]), t(j["le_range"]), t(j["source"]),
                       t(j["destination"]), done, status, human_size(j["rate"].get<uint64_t>()),
                       t(j["reason"]));
  }
  return out;
}

nlohmann::json vg_json(const VgMetadata& md, const std::vector<JobStatus>& job_statuses) {
  using nlohmann::json;
  json pvs = json::array(), lvs = json::array();
  for (uint32_t i = 0; i < md.pvs.size(); ++i) {
    const PvInfo& p = md.pvs[i];
    json map = json::array();
    for (const PvRun& r : md.pv_map(i)) {
      if (r.free()) {
        map.push_back({{"pe", format_range(r.pe, r.count)}, {"free", true}});
        continue;
      }
      json run = {{"pe", format_range(r.pe, r.count)},
                  {"lv", e(md.lvs[static_cast<size_t>(r.lv)].name)},
                  {"le", format_range(r.le, r.count * r.stripes)}};
      if (r.stripes > 1) run["stripe"] = r.stripe;
      if (r.job >= 0) run["job"] = r.job;
      if (r.record) {  // no LEs: the job's record
        run["le"] = "record";
        run["record"] = true;
      }
      map.push_back(std::move(run));
    }
    pvs.push_back({{"name", e(p.name)}, {"uuid", shown_uuid(p.uuid, p.kept)}, {"path", e(p.path)}, {"pe_start", p.pe_start},
                   {"pe_count", p.pe_count}, {"pe_size", md.extent_size}, {"free_pe", md.free_extents(i)},
                   {"lvs", escaped(md.lvs_on_pv(i))}, {"map", std::move(map)}});
  }
  for (uint32_t i = 0; i < md.lvs.size(); ++i) {
    const LvInfo& l = md.lvs[i];
    json map = json::array();
    for (const MapRun& r : l.map.runs()) {
      json run = {{"le", format_range(r.le, r.count)}, {"pv", e(md.pvs[r.pv].name)}, {"pe", format_range(r.pe, r.leg_extents())}};
      if (r.striped()) {  // "pv"/"pe" are then leg 0's; "stripes" lists every leg
        json legs = json::array();
        for (uint32_t s = 0; s < r.stripe_count(); ++s)
          legs.push_back({{"pv", e(md.pvs[r.leg(s).pv].name)}, {"pe", format_range(r.leg(s).pe, r.leg_extents())}});
        run["stripe_size"] = r.stripe_size;
        run["stripes"] = std::move(legs);
      }
      map.push_back(std::move(run));
    }
    lvs.push_back({{"name", e(l.name)}, {"uuid", shown_uuid(l.uuid, l.kept)}, {"mode", fmt::format("{:04o}", l.mode)},
                   {"size", l.map.extent_count() * md.extent_size}, {"le_count", l.map.extent_count()},
                   {"le_size", md.extent_size}, {"pvs", escaped(md.pvs_of_lv(i))}, {"map", std::move(map)}});
    if (l.hidden) lvs.back()["hidden"] = true;  // no LV file; lvs -a lists it in brackets
    if (!l.unsupported.empty()) {  // no LV file; lvs says why and how large LVM2 says it is
      lvs.back()["unsupported"] = e(l.unsupported);
      const uint64_t extents = kept_extent_count(l);
      lvs.back()["size"] = extents * md.extent_size;
      lvs.back()["le_count"] = extents;
    }
  }
  // The two hidden LVs an LVM2 VG holds for each running job (docs/lvm2.md,
  // "Moves"): the model keeps them as the job, never as LVs, but LVM2's
  // `lvs -a` lists them, and so must vgfs's.
  for (const LvInfo& l : lvm2::job_lvs(md)) {
    const MapRun& r = l.map.runs().front();
    lvs.push_back({{"name", e(l.name)}, {"uuid", shown_uuid(l.uuid, l.kept)}, {"mode", fmt::format("{:04o}", l.mode)},
                   {"size", r.count * md.extent_size}, {"le_count", r.count}, {"le_size", md.extent_size},
                   {"pvs", json::array({e(md.pvs[r.pv].name)})},
                   {"map", json::array({{{"le", format_range(0, r.count)}, {"pv", e(md.pvs[r.pv].name)},
                                         {"pe", format_range(r.pe, r.count)}}})},
                   {"hidden", true}});
  }
  json jobs = json::array();
  for (const JobStatus& j : job_statuses) jobs.push_back(job_json(j));
  return {{"name", e(md.name)},
          {"uuid", shown_uuid(md.uuid, md.kept)},
          {"extent_size", md.extent_size},
          {"region_size", md.region_size},
          {"seqno", md.seqno},
          {"pv_count", md.pvs.size()},
          {"lv_count", md.lvs.size()},
          {"size", vg_size(md)},
          {"free", md.total_free_extents() * md.extent_size},
          {"pvs", std::move(pvs)},
          {"lvs", std::move(lvs)},
          {"jobs", std::move(jobs)}};
}

std::string lvs_table(const nlohmann::json& vg, bool maps) {
  std::string out = fmt::format("{:<16} {:<8} {:>10} {:>8}  {}\n", "LV", "VG", "Size", "LEs", "PVs");
  for (const auto& lv : vg["lvs"]) {
    std::string pvs;
    for (const auto& p : lv["pvs"]) pvs += (pvs.empty() ? "" : ",") + t(p);
    out += fmt::format("{:<16} {:<8} {:>10} {:>8}  {}\n", t(lv["name"]), t(vg["name"]),
                       human_size(lv["size"].get<uint64_t>()), lv["le_count"].get<uint64_t>(), pvs);
    if (maps)
      for (const auto& r : lv["map"])
        out += fmt::format("  LE {:<16} {:<10} PE {}\n", t(r["le"]), t(r["pv"]),
                           t(r["pe"]));
  }
  return out;
}

std::string pvs_table(const nlohmann::json& vg, bool maps) {
  std::string out = fmt::format("{:<12} {:<8} {:>10} {:>10} {:>8} {:>8}  {}\n", "PV", "VG", "Size", "Free", "PEs",
                                "Free PE", "Path");
  for (const auto& pv : vg["pvs"]) {
    uint64_t pe_size = pv["pe_size"].get<uint64_t>();
    out += fmt::format("{:<12} {:<8} {:>10} {:>10} {:>8} {:>8}  {}\n", t(pv["name"]),
                       t(vg["name"]), human_size(pv["pe_count"].get<uint64_t>() * pe_size),
                       human_size(pv["free_pe"].get<uint64_t>() * pe_size), pv["pe_count"].get<uint64_t>(),
                       pv["free_pe"].get<uint64_t>(), t(pv["path"]));
    if (maps)
      for (const auto& r : pv["map"]) {
        if (r.contains("free"))
          out += fmt::format("  PE {:<16} free\n", t(r["pe"]));
        else
          out += fmt::format("  PE {:<16} {:<10} LE {}\n", t(r["pe"]), t(r["lv"]),
                             t(r["le"]));
      }
  }
  return out;
}

}  // namespace vgfs::views
