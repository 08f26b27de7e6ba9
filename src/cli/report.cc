// LVM2-style reports from vg.json (src/cli/report.h).
#include "cli/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <string_view>

#include "cli/lvm_display.h"

namespace vgfs::cli {

namespace {

using nlohmann::json;

// One row: the VG, and the LV, LV segment (map run) or PV it is about.
struct Row {
  const json* vg = nullptr;
  const json* lv = nullptr;
  const json* run = nullptr;
  const json* pv = nullptr;
};

enum class Type { kString, kNumber, kSize };

// What a field shows for a row: text, a count, or a size in bytes that the
// --units decide how to write.
struct Value {
  std::string text;
  uint64_t number = 0;
};

// Where a field belongs: an LV, a segment of an LV (a row per map run, as
// LVM2 makes a row per segment), a PV, or the VG (valid in every report).
enum class Scope { kLv, kSegment, kPv, kVg };

struct Field {
  std::string_view name;
  std::string_view heading;  // LVM2's, with '_' for a blank so that awk sees one word
  Scope scope;
  Type type;
  std::string_view help;
  std::function<Value(const Row&)> get;
};

std::string str(const json& v) { return v.get<std::string>(); }
uint64_t num(const json& v) { return v.get<uint64_t>(); }

// "0-7" or "5" (a map range of vg.json) as first and count.
std::pair<uint64_t, uint64_t> range_of(const std::string& text) {
  size_t dash = text.find('-');
  uint64_t first = std::stoull(text.substr(0, dash));
  uint64_t last = dash == std::string::npos ? first : std::stoull(text.substr(dash + 1));
  return {first, last - first + 1};
}

// The job moving part of an LV now, if any.
const json* running_job(const Row& r) {
  for (const json& j : r.vg->at("jobs")) {
    const std::string state = str(j.at("sync_status"));
    if (str(j.at("lv")) == str(r.lv->at("name")) && state != "completed" && state != "aborted" && state != "failed")
      return &j;
  }
  return nullptr;
}

// An LV that is no file of the mount (LVM2's LVs without VISIBLE): listed
// only with -a, as LVM2 does.
bool hidden(const json& lv) { return lv.contains("hidden") && lv.at("hidden").get<bool>(); }
// Why vgfs does not serve an LV (an LVM2 segment type it does not model), or "".
std::string unsupported(const json& lv) { return lv.contains("unsupported") ? str(lv.at("unsupported")) : ""; }

// The legs of a segment row: each stripe of a striped run (as LVM2 lists
// them in seg_pe_ranges and devices), or the run itself.
std::vector<const json*> legs(const Row& r) {
  std::vector<const json*> out;
  if (r.run->contains("stripes"))
    for (const json& leg : r.run->at("stripes")) out.push_back(&leg);
  else
    out.push_back(r.run);
  return out;
}

uint64_t extent(const Row& r) { return num(r.vg->at("extent_size")); }

Value text(std::string s) { return Value{std::move(s), 0}; }
Value number(uint64_t n) { return Value{std::to_string(n), n}; }
Value size(uint64_t bytes) { return Value{"", bytes}; }

const std::vector<Field>& fields() {
  static const std::vector<Field> all = {
      // LV fields
      {"lv_name", "LV", Scope::kLv, Type::kString, "Name; a hidden LV's in brackets (lvs -a).",
       [](const Row& r) { return text(hidden(*r.lv) ? "[" + str(r.lv->at("name")) + "]" : str(r.lv->at("name"))); }},
      {"lv_full_name", "LV", Scope::kLv, Type::kString, "Full name of LV including its VG, namely VG/LV.",
       [](const Row& r) { return text(str(r.vg->at("name")) + "/" + str(r.lv->at("name"))); }},
      {"lv_uuid", "LV_UUID", Scope::kLv, Type::kString, "Unique identifier.",
       [](const Row& r) { return text(str(r.lv->at("uuid"))); }},
      {"lv_size", "LSize", Scope::kLv, Type::kSize, "Size of LV in current units.",
       [](const Row& r) { return size(num(r.lv->at("size"))); }},
      {"lv_attr", "Attr", Scope::kLv, Type::kString,
       "LV attributes as LVM2 writes them: -wi-a----- (writeable, active: served as a file), -wi------- for an LV "
       "vgfs does not serve (hidden, or a segment type it does not model).",
       [](const Row& r) { return text(hidden(*r.lv) || !unsupported(*r.lv).empty() ? "-wi-------" : "-wi-a-----"); }},
      {"lv_served", "Served", Scope::kLv, Type::kString,
       "vgfs: yes when the LV is served as a file, else why not (an LVM2 segment type vgfs does not model; "
       "hidden LVs: hidden). In the default report when an LV is not served.",
       [](const Row& r) {
         if (!unsupported(*r.lv).empty()) return text("no: " + unsupported(*r.lv));
         return text(hidden(*r.lv) ? "hidden" : "yes");
       }},
      {"seg_count", "#Seg", Scope::kLv, Type::kNumber, "Number of segments in LV (runs of its map).",
       [](const Row& r) { return number(r.lv->at("map").size()); }},
      {"move_pv", "Move", Scope::kLv, Type::kString, "For a LV being moved, the PV its extents leave.",
       [](const Row& r) {
         const json* j = running_job(r);
         if (!j) return text("");
         std::string source = str(j->at("source"));
         return text(source.substr(0, source.find(' ')));
       }},
      {"copy_percent", "Cpy%Sync", Scope::kLv, Type::kString, "For a LV being moved, the percentage copied.",
       [](const Row& r) {
         const json* j = running_job(r);
         if (!j) return text("");
         const uint64_t total = num(j->at("size")), done = num(j->at("progress_pointer"));
         return text(fmt::format("{:.2f}", total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0));
       }},
      {"lv_mode", "Mode", Scope::kLv, Type::kString, "vgfs: the LV file's permission bits.",
       [](const Row& r) { return text(r.lv->contains("mode") ? str(r.lv->at("mode")) : ""); }},
      // Segment fields: a row per run of the LV's map.
      {"segtype", "Type", Scope::kSegment, Type::kString, "Type of LV segment: linear or striped.",
       [](const Row& r) { return text(r.run->contains("stripes") ? "striped" : "linear"); }},
      {"seg_start", "Start", Scope::kSegment, Type::kSize, "Offset within the LV to the start of the segment in current units.",
       [](const Row& r) { return size(range_of(str(r.run->at("le"))).first * extent(r)); }},
      {"seg_start_pe", "Start", Scope::kSegment, Type::kNumber, "Offset within the LV to the start of the segment in physical extents.",
       [](const Row& r) { return number(range_of(str(r.run->at("le"))).first); }},
      {"seg_size", "SSize", Scope::kSegment, Type::kSize, "Size of segment in current units.",
       [](const Row& r) { return size(range_of(str(r.run->at("le"))).second * extent(r)); }},
      {"seg_size_pe", "SSize", Scope::kSegment, Type::kNumber, "Size of segment in physical extents.",
       [](const Row& r) { return number(range_of(str(r.run->at("le"))).second); }},
      {"seg_le_ranges", "LE_Ranges", Scope::kSegment, Type::kString, "Ranges of Logical Extents of the segment.",
       [](const Row& r) {
         auto [first, count] = range_of(str(r.run->at("le")));
         return text(fmt::format("{}-{}", first, first + count - 1));
       }},
      {"seg_pe_ranges", "PE_Ranges", Scope::kSegment, Type::kString,
       "Ranges of Physical Extents of underlying devices in command line format (PV:FIRST-LAST).",
       [](const Row& r) {
         std::string out;
         for (const json* leg : legs(r)) {
           auto [first, count] = range_of(str(leg->at("pe")));
           out += fmt::format("{}{}:{}-{}", out.empty() ? "" : " ", str(leg->at("pv")), first, first + count - 1);
         }
         return text(out);
       }},
      {"devices", "Devices", Scope::kSegment, Type::kString, "Underlying devices used with starting extent numbers (PV(FIRST)).",
       [](const Row& r) {
         std::string out;
         for (const json* leg : legs(r))
           out += fmt::format("{}{}({})", out.empty() ? "" : ",", str(leg->at("pv")), range_of(str(leg->at("pe"))).first);
         return text(out);
       }},
      // PV fields
      {"pv_name", "PV", Scope::kPv, Type::kString, "Name (vgfs: the name commands take; pv_path is the file or device).",
       [](const Row& r) { return text(str(r.pv->at("name"))); }},
      {"pv_path", "Path", Scope::kPv, Type::kString, "vgfs: the image file or block device of the PV.",
       [](const Row& r) { return text(str(r.pv->at("path"))); }},
      {"pv_uuid", "PV_UUID", Scope::kPv, Type::kString, "Unique identifier.",
       [](const Row& r) { return text(str(r.pv->at("uuid"))); }},
      {"pv_fmt", "Fmt", Scope::kPv, Type::kString, "Type of metadata.", [](const Row&) { return text("vgfs"); }},
      {"pv_size", "PSize", Scope::kPv, Type::kSize, "Size of PV in current units.",
       [](const Row& r) { return size(num(r.pv->at("pe_count")) * num(r.pv->at("pe_size"))); }},
      {"pv_free", "PFree", Scope::kPv, Type::kSize, "Total amount of unallocated space in current units.",
       [](const Row& r) { return size(num(r.pv->at("free_pe")) * num(r.pv->at("pe_size"))); }},
      {"pv_used", "Used", Scope::kPv, Type::kSize, "Total amount of allocated space in current units.",
       [](const Row& r) {
         return size((num(r.pv->at("pe_count")) - num(r.pv->at("free_pe"))) * num(r.pv->at("pe_size")));
       }},
      {"pe_start", "1st_PE", Scope::kPv, Type::kSize, "Offset to the start of data on the underlying device.",
       [](const Row& r) { return size(num(r.pv->at("pe_start"))); }},
      {"pv_pe_count", "PE", Scope::kPv, Type::kNumber, "Total number of Physical Extents.",
       [](const Row& r) { return number(num(r.pv->at("pe_count"))); }},
      {"pv_pe_alloc_count", "Alloc", Scope::kPv, Type::kNumber, "Total number of allocated Physical Extents.",
       [](const Row& r) { return number(num(r.pv->at("pe_count")) - num(r.pv->at("free_pe"))); }},
      // VG fields, valid in every report
      {"vg_name", "VG", Scope::kVg, Type::kString, "Name.", [](const Row& r) { return text(str(r.vg->at("name"))); }},
      {"vg_uuid", "VG_UUID", Scope::kVg, Type::kString, "Unique identifier.",
       [](const Row& r) { return text(str(r.vg->at("uuid"))); }},
      {"vg_fmt", "Fmt", Scope::kVg, Type::kString, "Type of metadata.", [](const Row&) { return text("vgfs"); }},
      {"vg_size", "VSize", Scope::kVg, Type::kSize, "Total size of VG in current units.",
       [](const Row& r) { return size(num(r.vg->at("size"))); }},
      {"vg_free", "VFree", Scope::kVg, Type::kSize, "Total amount of free space in current units.",
       [](const Row& r) { return size(num(r.vg->at("free"))); }},
      {"vg_extent_size", "Ext", Scope::kVg, Type::kSize, "Size of Physical Extents in current units.",
       [](const Row& r) { return size(extent(r)); }},
      {"vg_extent_count", "#Ext", Scope::kVg, Type::kNumber, "Total number of Physical Extents.",
       [](const Row& r) { return number(num(r.vg->at("size")) / extent(r)); }},
      {"vg_free_count", "Free", Scope::kVg, Type::kNumber, "Total number of unallocated Physical Extents.",
       [](const Row& r) { return number(num(r.vg->at("free")) / extent(r)); }},
      {"pv_count", "#PV", Scope::kVg, Type::kNumber, "Number of PVs in VG.",
       [](const Row& r) { return number(r.vg->at("pvs").size()); }},
      {"lv_count", "#LV", Scope::kVg, Type::kNumber, "Number of LVs.",
       [](const Row& r) { return number(r.vg->at("lvs").size()); }},
      {"vg_seqno", "Seq", Scope::kVg, Type::kNumber, "Revision number of internal metadata.",
       [](const Row& r) { return number(num(r.vg->at("seqno"))); }},
  };
  return all;
}

bool in_report(const Field& f, ReportKind kind) {
  switch (kind) {
    case ReportKind::kLv: return f.scope == Scope::kLv || f.scope == Scope::kSegment || f.scope == Scope::kVg;
    case ReportKind::kPv: return f.scope == Scope::kPv || f.scope == Scope::kVg;
    case ReportKind::kVg: return f.scope == Scope::kVg;
  }
  return false;
}

std::string_view kind_name(ReportKind kind) {
  return kind == ReportKind::kLv ? "lv" : kind == ReportKind::kPv ? "pv" : "vg";
}

std::string default_fields(ReportKind kind, bool any_not_served = false) {
  switch (kind) {
    case ReportKind::kLv:
      return any_not_served ? "lv_name,vg_name,lv_attr,lv_size,seg_count,move_pv,copy_percent,lv_served"
                            : "lv_name,vg_name,lv_size,seg_count,move_pv,copy_percent";
    case ReportKind::kPv: return "pv_name,vg_name,pv_fmt,pv_size,pv_free,pv_path";
    case ReportKind::kVg: return "vg_name,pv_count,lv_count,vg_size,vg_free";
  }
  return "";
}

// A field by its name, or, as LVM2 allows, without its report's prefix
// ("name" for lv_name in lvs).
const Field* find_field(std::string_view name, ReportKind kind) {
  const std::string prefixed = fmt::format("{}_{}", kind_name(kind), name);
  for (const std::string_view want : {name, std::string_view(prefixed)})
    for (const Field& f : fields())
      if (f.name == want && in_report(f, kind)) return &f;
  return nullptr;
}

Result<std::vector<const Field*>> selected_fields(const ReportOptions& o, bool any_not_served) {
  std::vector<std::string> lists = o.fields;
  if (lists.empty() || (!lists[0].empty() && lists[0][0] == '+')) lists.insert(lists.begin(), default_fields(o.kind, any_not_served));
  std::vector<const Field*> out;
  for (std::string list : lists) {
    if (!list.empty() && list[0] == '+') list.erase(0, 1);
    else out.clear();
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(',', start);
      std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      start = comma == std::string::npos ? list.size() + 1 : comma + 1;
      if (name.empty()) continue;
      const Field* f = find_field(name, o.kind);
      if (!f)
        return Status::Error(EINVAL, fmt::format("{}s: unknown field \"{}\" (vgfs {}s -o help lists the fields)",
                                                 kind_name(o.kind), name, kind_name(o.kind)));
      out.push_back(f);
    }
  }
  if (out.empty()) return Status::Error(EINVAL, fmt::format("{}s: -o names no field", kind_name(o.kind)));
  return out;
}

std::vector<Row> rows_of(const json& vg, ReportKind kind, bool segments, bool all) {
  std::vector<Row> rows;
  if (kind == ReportKind::kVg) {
    rows.push_back(Row{&vg});
  } else if (kind == ReportKind::kPv) {
    for (const json& pv : vg.at("pvs")) rows.push_back(Row{&vg, nullptr, nullptr, &pv});
    std::stable_sort(rows.begin(), rows.end(),
                     [](const Row& a, const Row& b) { return str(a.pv->at("name")) < str(b.pv->at("name")); });
  } else {
    std::vector<const json*> lvs;
    for (const json& lv : vg.at("lvs"))
      if (all || !hidden(lv)) lvs.push_back(&lv);
    std::stable_sort(lvs.begin(), lvs.end(), [](const json* a, const json* b) { return str(a->at("name")) < str(b->at("name")); });
    for (const json* lv : lvs) {
      if (!segments) rows.push_back(Row{&vg, lv});
      else
        for (const json& run : lv->at("map")) rows.push_back(Row{&vg, lv, &run});
    }
  }
  return rows;
}

// The runs printed under a row with --maps, as `vgfs lvs|pvs --maps` always has.
std::vector<std::string> map_lines(const Row& r) {
  std::vector<std::string> out;
  if (r.lv) {
    for (const json& run : r.lv->at("map"))
      out.push_back(fmt::format("  LE {:<16} {:<10} PE {}", str(run.at("le")), str(run.at("pv")), str(run.at("pe"))));
  } else if (r.pv) {
    for (const json& run : r.pv->at("map")) {
      if (run.contains("free") && run.at("free").get<bool>())
        out.push_back(fmt::format("  PE {:<16} free", str(run.at("pe"))));
      else
        out.push_back(fmt::format("  PE {:<16} {:<10} LE {}", str(run.at("pe")), str(run.at("lv")), str(run.at("le"))));
    }
  }
  return out;
}

}  // namespace

std::string report_fields_help(ReportKind kind) {
  std::string out;
  const std::pair<Scope, const char*> groups[] = {{Scope::kLv, "Logical Volume Fields"},
                                                  {Scope::kSegment, "Logical Volume Segment Fields (a row per segment)"},
                                                  {Scope::kPv, "Physical Volume Fields"},
                                                  {Scope::kVg, "Volume Group Fields"}};
  for (auto [scope, title] : groups) {
    std::string lines;
    for (const Field& f : fields())
      if (f.scope == scope && in_report(f, kind)) lines += fmt::format("    {:<18} - {} [{}]\n", f.name, f.help, f.heading);
    if (!lines.empty()) out += fmt::format("  {}\n  {}\n{}", title, std::string(std::string_view(title).size(), '-'), lines);
  }
  return out + fmt::format("\n  Defaults: -o {}; -o +FIELD,... appends to them.\n", default_fields(kind));
}

Result<std::string> render_report(const json& vg, const ReportOptions& o) {
  if (Status st = check_report_unit(o.units); !st.ok()) return st;
  bool any_not_served = false;
  if (o.kind == ReportKind::kLv)
    for (const json& lv : vg.at("lvs"))
      if (!unsupported(lv).empty() && (o.all || !hidden(lv))) any_not_served = true;
  Result<std::vector<const Field*>> selected = selected_fields(o, any_not_served);
  if (!selected.ok()) return selected.status();
  bool segments = false;
  for (const Field* f : *selected) segments |= f->scope == Scope::kSegment;
  const std::vector<Row> rows = rows_of(vg, o.kind, segments, o.all);
  // Every cell as text first: sizes by the units.
  std::vector<std::vector<std::string>> cells;
  for (const Row& r : rows) {
    std::vector<std::string> line;
    for (const Field* f : *selected) {
      Value v = f->get(r);
      line.push_back(f->type == Type::kSize ? lvm_display_size(v.number, o.units[0], o.suffix, SuffixForm::kLetter)
                                            : v.text);
    }
    cells.push_back(std::move(line));
  }
  const std::string_view kind = kind_name(o.kind);
  if (o.json) {
    // LVM2's layout, byte for byte: its log prefix of two blanks, four per
    // level, one object per row on a line.
    std::string out = fmt::format("  {{\n      \"report\": [\n          {{\n              \"{}\": [\n", kind);
    for (size_t i = 0; i < cells.size(); ++i) {
      std::string row;
      for (size_t k = 0; k < selected->size(); ++k)
        row += fmt::format("{}{}:{}", k ? ", " : "", json((*selected)[k]->name).dump(), json(cells[i][k]).dump());
      out += fmt::format("                  {{{}}}{}\n", row, i + 1 < cells.size() ? "," : "");
    }
    return out + "              ]\n          }\n      ]\n  }\n";
  }
  std::string out;
  if (o.separator_given) {
    auto line = [&](const std::vector<std::string>& v) {
      std::string s;
      for (size_t k = 0; k < v.size(); ++k) s += (k ? o.separator : "") + v[k];
      return s + "\n";
    };
    if (o.headings) {
      std::vector<std::string> h;
      for (const Field* f : *selected) h.emplace_back(f->heading);
      out += line(h);
    }
    for (size_t i = 0; i < cells.size(); ++i) {
      out += line(cells[i]);
      if (o.maps)
        for (const std::string& m : map_lines(rows[i])) out += m + "\n";
    }
    return out;
  }
  // Aligned: headings to the left; numbers and sizes to the right, text to
  // the left, as LVM2 aligns them. The last column is not padded.
  std::vector<size_t> width(selected->size(), 0);
  for (size_t k = 0; k < selected->size(); ++k) {
    if (o.headings) width[k] = (*selected)[k]->heading.size();
    for (const auto& line : cells) width[k] = std::max(width[k], line[k].size());
  }
  auto line = [&](const std::vector<std::string>& v, bool heading) {
    std::string s;
    for (size_t k = 0; k < v.size(); ++k) {
      const bool last = k + 1 == v.size();
      const bool right = !heading && (*selected)[k]->type != Type::kString;
      const std::string pad(width[k] - v[k].size(), ' ');
      s += (k ? " " : "") + (right ? pad + v[k] : last ? v[k] : v[k] + pad);
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s + "\n";
  };
  if (o.headings) {
    std::vector<std::string> h;
    for (const Field* f : *selected) h.emplace_back(f->heading);
    out += line(h, true);
  }
  for (size_t i = 0; i < cells.size(); ++i) {
    out += line(cells[i], false);
    if (o.maps)
      for (const std::string& m : map_lines(rows[i])) out += m + "\n";
  }
  return out;
}

}  // namespace vgfs::cli
