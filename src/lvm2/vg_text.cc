// LVM2's metadata text to and from vgfs's VgMetadata (include/vgfs/lvm2_format.h,
// docs/lvm2.md "Writing LVM2 metadata"): what vgfs models is read into the
// model, every other key is kept verbatim in text order and written back in
// LVM2's order and style (LVM2's lib/format_text/export.c, read to learn).
#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid.hpp>
#include <fmt/format.h>
#include <sys/utsname.h>

#include <algorithm>
#include <ctime>
#include <map>
#include <random>
#include <set>

#include "vgfs/lvm2_config.h"
#include "vgfs/lvm2_format.h"
#include "vgfs/lvm2_label.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/lvm2_move.h"
#include "vgfs/lvm2_pvmove.h"

namespace vgfs::lvm2 {

namespace {

__extension__ typedef unsigned __int128 u128;

constexpr uint64_t kSector = 512;

// The namespace of short_uuid(): a fixed, arbitrary UUID ("vgfs lvm2 ids").
constexpr boost::uuids::uuid kLvm2IdNamespace = {{0x6c, 0x76, 0x6d, 0x32, 0x2d, 0x69, 0x64, 0x73, 0x9a, 0x1e,
                                                  0x4b, 0x7d, 0x8f, 0x21, 0x5c, 0x03}};

std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

// A node's value as a kept key holds it: the text after `key = ` (a value)
// or after `key ` (a section, "{ ... }"), in the emitter's style.
std::string kept_value(const ConfigNode& n) { return emit_value(n); }

// The node a kept key stands for, parsed back.
Result<ConfigNode> kept_node(const std::string& key, const std::string& value) {
  const bool section = !value.empty() && value[0] == '{';
  Result<ConfigTree> t = parse_config((section ? "k " : "k = ") + value, fmt::format("kept key {}", key));
  if (!t.ok()) return t.status();
  if (t->top.size() != 1 || t->top[0].section != section)
    return Status::Error(EINVAL, fmt::format("kept key {}: its value is not one value or section", key));
  ConfigNode n = std::move(t->top[0]);
  n.key = key;
  return n;
}

const std::string* find_kept(const KeptKeys& kept, std::string_view key) {
  for (const auto& [k, v] : kept)
    if (k == key) return &v;
  return nullptr;
}

// Every key of `section` but the `modeled` ones (a handful: a linear
// search, no set to build per record).
KeptKeys kept_except(const ConfigNode& section, std::initializer_list<std::string_view> modeled, bool keep_sections,
                     std::string_view also_modeled = {}) {
  KeptKeys out;
  out.reserve(section.children.size());
  for (const ConfigNode& c : section.children) {
    if (c.section && !keep_sections) continue;
    if ((!also_modeled.empty() && c.key == also_modeled) ||
        std::find(modeled.begin(), modeled.end(), c.key) != modeled.end())
      continue;
    out.emplace_back(c.key, kept_value(c));
  }
  return out;
}

// ---------------------------------------------------------------- decode

std::string refusals(const Lvm2Vg& vg) {
  std::vector<std::string> why;
  auto has_flag = [&](std::string_view f) { return std::find(vg.flags.begin(), vg.flags.end(), f) != vg.flags.end(); };
  if (vg.has_status("EXPORTED")) why.push_back("the VG is exported (vgimport it first)");
  if (!vg.has_status("WRITE")) why.push_back("the VG is read-only (its status lacks WRITE)");
  if (has_flag("WRITE_LOCKED")) why.push_back("the VG is WRITE_LOCKED");
  if (vg.has_status("CLUSTERED")) why.push_back("the VG is clustered");
  if (vg.has_status("SHARED")) why.push_back("the VG is shared");
  if (!vg.lock_type.empty() && vg.lock_type != "none")
    why.push_back(fmt::format("the VG has lock_type {} (a shared VG)", printable(vg.lock_type)));
  if (!vg.system_id.empty() && vg.system_id != host_system_id())
    why.push_back(fmt::format("the VG is foreign: its system_id is {}, this host's is {}", printable(vg.system_id),
                              host_system_id().empty() ? "unset" : printable(host_system_id())));
  if (vg.has_status("PVMOVE")) why.push_back("a pvmove is in progress");
  for (const Lvm2Pv& p : vg.pvs)
    if (p.missing()) why.push_back(fmt::format("PV {} is MISSING", p.key));
  for (const Lvm2Lv& l : vg.lvs) {
    if (std::find(l.status.begin(), l.status.end(), "LOCKED") != l.status.end())
      why.push_back(fmt::format("LV {} is LOCKED (by a pvmove)", l.name));
    if (std::string u = l.unsupported(); !u.empty()) why.push_back(fmt::format("LV {}: {}", l.name, u));
  }
  std::string out;
  for (const std::string& w : why) out += (out.empty() ? "" : "; ") + w;
  return out;
}

class Decoder {
 public:
  Decoder(const Lvm2Vg& vg, std::string_view origin) : vg_(vg), origin_(origin) {}

  Result<VgMetadata> decode() {
    const ConfigNode* vgn = nullptr;
    for (const ConfigNode& n : vg_.tree.top)
      if (n.section) {
        vgn = &n;
        break;
      }
    const std::string where = fmt::format("{}: VG {}", origin_, vg_.name);
    VgMetadata md;
    md.name = vg_.name;
    md.uuid = short_uuid(vg_.uuid);
    md.extent_size = vg_.extent_size * kSector;  // extent_size < 2^32 sectors
    md.region_size = std::min(kDefaultRegionSize, md.extent_size);
    md.seqno = vg_.seqno;
    md.kept = kept_except(*vgn, {"seqno", "extent_size", "physical_volumes", "logical_volumes"}, true);
    const ConfigNode* pvs = vgn->find("physical_volumes");
    for (size_t i = 0; i < vg_.pvs.size(); ++i) {
      const Lvm2Pv& p = vg_.pvs[i];
      PvInfo pv;
      pv.name = p.key;
      pv.uuid = short_uuid(p.uuid);
      pv.path = p.device_hint.empty() ? "[unknown]" : p.device_hint;
      if (p.pe_start > UINT64_MAX / kSector)
        return Status::Error(EINVAL, fmt::format("{}: PV {}: pe_start {} sectors is past 2^64 bytes", where, p.key,
                                                 p.pe_start));
      pv.pe_start = p.pe_start * kSector;
      pv.pe_count = p.pe_count;
      pv.kept = kept_except(pvs->children[i], {"device", "pe_start", "pe_count"}, true);
      pv_index_[p.key] = static_cast<uint32_t>(i);
      md.pvs.push_back(std::move(pv));
    }
    const ConfigNode* lvs = vgn->find("logical_volumes");
    for (size_t i = 0; i < vg_.lvs.size(); ++i) {
      Result<LvInfo> lv = decode_lv(vg_.lvs[i], lvs->children[i], where);
      if (!lv.ok()) return lv.status();
      md.lvs.push_back(std::move(*lv));
    }
    jobs_from_lvs(&md);  // vgfs's running moves (vgfs/lvm2_move.h)
    md.foreign_move = foreign_move();
    md.change_refused = refusals(vg_);
    if (Status st = md.validate(); !st.ok()) return st.prefixed(where);
    return md;
  }

 private:
  // LVM2's unfinished pvmove (vgfs/lvm2_pvmove.h) as the model's foreign
  // move, or nothing when the VG has no pvmove LV. One vgfs cannot finish
  // (an atomic pvmove, several pvmove LVs, a malformed one) is described
  // by its name and the problem only.
  std::optional<ForeignMove> foreign_move() const {
    Result<Pvmove> move = find_pvmove(vg_);
    if (!move.ok() && move.status().code() == ENOENT) return std::nullopt;
    ForeignMove out;
    if (!move.ok()) {
      for (const Lvm2Lv& l : vg_.lvs)
        if (std::find(l.status.begin(), l.status.end(), "PVMOVE") != l.status.end()) out.name = l.name;
      out.problem = move.status().message();
      return out;
    }
    out.name = move->lv;
    for (const PvmovePiece& p : move->pieces) {
      ForeignMove::Piece piece;
      piece.lv = p.user.lv;
      piece.le = p.user.start_extent;
      piece.count = p.extent_count;
      piece.stripes = static_cast<uint32_t>(p.user.stripe_count);
      piece.stripe = static_cast<uint32_t>(p.user.stripe);
      piece.src_pv = pv_index_.at(p.source.pv);  // find_pvmove: both legs are PVs of the VG
      piece.src_pe = p.source.pe;
      piece.dst_pv = pv_index_.at(p.destination.pv);
      piece.dst_pe = p.destination.pe;
      piece.moved = p.extents_moved;
      out.pieces.push_back(std::move(piece));
    }
    return out;
  }

  Result<LvInfo> decode_lv(const Lvm2Lv& l, const ConfigNode& node, const std::string& vg_where) {
    LvInfo lv;
    lv.name = l.name;
    lv.uuid = short_uuid(l.uuid);
    lv.hidden = !l.visible();
    lv.unsupported = l.unsupported();
    if (!lv.unsupported.empty()) {
      // Kept whole; the PEs its segments name directly stay used.
      lv.kept = kept_except(node, {}, true);
      for (const Lvm2Segment& s : l.segments) {
        const ConfigNode* sn = node.find(s.name);
        if (s.type == "striped") {
          for (const StripeArea& a : s.stripes) hold(&lv, a, s.extent_count / s.stripe_count);
        } else if (s.type == "mirror" && sn && sn->find("mirrors")) {
          const ConfigNode* m = sn->find("mirrors");
          for (size_t k = 0; k + 1 < m->values.size(); k += 2)
            hold(&lv, StripeArea{m->values[k].text, static_cast<uint64_t>(m->values[k + 1].integer)}, s.extent_count);
        }
      }
      return lv;
    }
    lv.kept = kept_except(node, {"segment_count"}, false);
    for (const Lvm2Segment& s : l.segments) {
      const ConfigNode* sn = node.find(s.name);
      MapRun r;
      r.le = s.start_extent;
      r.count = s.extent_count;
      r.pv = pv_index_.at(s.stripes[0].pv);
      r.pe = s.stripes[0].pe;
      if (s.stripe_count > 1) {
        r.stripe_size = s.stripe_size * kSector;
        for (size_t k = 1; k < s.stripes.size(); ++k)
          r.more_legs.push_back(StripeLeg{pv_index_.at(s.stripes[k].pv), s.stripes[k].pe});
      }
      r.kept = kept_except(*sn, {"start_extent", "extent_count", "type", "stripe_count", "stripes"}, true,
                           s.stripe_count > 1 ? "stripe_size" : "");
      if (r.le != lv.map.extent_count())
        return Status::Error(EINVAL, fmt::format("{}: LV {}: {} does not follow the previous segment", vg_where,
                                                 l.name, s.name));
      lv.map.append_run(std::move(r));
    }
    return lv;
  }

  void hold(LvInfo* lv, const StripeArea& a, uint64_t count) {
    auto it = pv_index_.find(a.pv);
    if (it == pv_index_.end() || count == 0) return;  // on another LV: that LV holds the PEs
    lv->held.push_back(HeldExtents{it->second, a.pe, count});
  }

  const Lvm2Vg& vg_;
  std::string_view origin_;
  std::map<std::string, uint32_t, std::less<>> pv_index_;
};

// ---------------------------------------------------------------- encode

// LVM2's order of the keys of each record (export.c); a kept key it does not
// list goes right after the key it followed in the text.
const std::map<std::string_view, int>& rank_table(std::string_view kind) {
  static const std::map<std::string_view, int> vg = {
      {"id", 0},           {"seqno", 1},          {"format", 2},          {"status", 3},         {"flags", 4},
      {"tags", 5},         {"system_id", 6},      {"lock_type", 7},       {"lock_args", 8},      {"extent_size", 9},
      {"max_lv", 10},      {"max_pv", 11},        {"metadata_copies", 12}, {"allocation_policy", 13},
      {"profile", 14},     {"physical_volumes", 20}, {"logical_volumes", 21}, {"historical_logical_volumes", 22}};
  static const std::map<std::string_view, int> pv = {
      {"id", 0},       {"device", 1},   {"device_id_type", 2}, {"device_id", 3}, {"status", 4}, {"flags", 5},
      {"tags", 6},     {"dev_size", 7}, {"pe_start", 8},       {"pe_count", 9},  {"ba_start", 10}, {"ba_size", 11}};
  static const std::map<std::string_view, int> lv = {
      {"id", 0},   {"status", 1},  {"flags", 2},      {"creation_time", 3},     {"creation_host", 4},
      {"lock_args", 5}, {"tags", 6}, {"allocation_policy", 7}, {"profile", 8}, {"read_ahead", 9},
      {"segment_count", 20}};
  static const std::map<std::string_view, int> seg = {
      {"start_extent", 0}, {"extent_count", 1}, {"type", 2},    {"reshape_count", 3},
      {"data_copies", 4},  {"tags", 5},         {"stripe_count", 6}, {"stripe_size", 7}, {"stripes", 8}};
  if (kind == "vg") return vg;
  if (kind == "pv") return pv;
  if (kind == "lv") return lv;
  return seg;
}

// One line (or section) of a record being written.
struct Item {
  std::string key;
  std::string text;  // "key = value\n" or "key {\n...}\n"
  bool section = false;
};

// Kept keys in text order with the modeled ones inserted at LVM2's place.
std::vector<Item> merge(std::string_view kind, const KeptKeys& kept, std::vector<Item> modeled) {
  const auto& ranks = rank_table(kind);
  auto rank_of = [&](const std::string& key) {
    auto it = ranks.find(key);
    return it == ranks.end() ? -1 : it->second;
  };
  std::vector<Item> out;
  std::vector<int> eff;  // each item's rank, or its predecessor's for a key LVM2 does not list
  for (const auto& [key, value] : kept) {
    const bool section = !value.empty() && value[0] == '{';
    out.push_back(Item{key, key + (section ? " " : " = ") + value + "\n", section});
    const int r = rank_of(key);
    eff.push_back(r >= 0 ? r : (eff.empty() ? -1 : eff.back()));
  }
  std::stable_sort(modeled.begin(), modeled.end(),
                   [&](const Item& a, const Item& b) { return rank_of(a.key) < rank_of(b.key); });
  for (Item& m : modeled) {
    const int r = rank_of(m.key);
    size_t at = 0;
    while (at < out.size() && eff[at] <= r) ++at;
    out.insert(out.begin() + static_cast<long>(at), std::move(m));
    eff.insert(eff.begin() + static_cast<long>(at), r);
  }
  return out;
}

// Writes a record's items with LVM2's blank lines: before every section and
// before the keys in `blank_before`.
void write_items(const std::vector<Item>& items, const std::set<std::string_view>& blank_before, std::string* out) {
  for (const Item& it : items) {
    if (it.section || blank_before.count(it.key)) *out += '\n';
    *out += it.text;
  }
}

Item value_item(std::string key, const std::string& value) { return Item{key, key + " = " + value + "\n", false}; }

std::string string_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quote(v[i]);
  return out + "]";
}

std::string ctime_text(time_t t) {
  char buf[64] = {0};
  struct tm tm {};
  ::localtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%a %b %e %H:%M:%S %Y", &tm);
  return buf;
}

class Encoder {
 public:
  explicit Encoder(const VgMetadata& md)
      : md_(md), job_lvs_(job_lvs(md)), now_(::time(nullptr)), host_(host_system_id()) {}

  // The text an mda holds: the VG section, then the trailer.
  std::string encode() { return section() + trailer(false); }

  // What vgcfgbackup writes: the header first, then the VG section
  // indented with tabs.
  std::string backup() { return trailer(true) + indent_config_text(section()); }

 private:
  std::string section() {
    std::string out = md_.name + " {\n";
    std::vector<Item> modeled;
    modeled.push_back(value_item("seqno", std::to_string(md_.seqno)));
    modeled.push_back(value_item("extent_size", std::to_string(md_.extent_size / kSector)));
    modeled.push_back(Item{"physical_volumes", pvs(), true});
    if (!md_.lvs.empty() || !job_lvs_.empty()) modeled.push_back(Item{"logical_volumes", lvs(), true});
    KeptKeys kept = md_.kept;
    if (!find_kept(kept, "id")) kept.insert(kept.begin(), {"id", quote(format_lvm2_uuid(new_lvm2_id()))});
    write_items(merge("vg", kept, std::move(modeled)), {}, &out);
    return out + "\n}\n";
  }

  std::string trailer(bool backup) {
    const std::string when = ctime_text(now_);
    std::string out = fmt::format("# Generated by vgfs: {}\n\n", when);
    out += "contents = \"Text Format Volume Group\"\nversion = 1\n\n";
    out += fmt::format("description = \"{}\"\n\n", backup ? "Written by vgfs (backup)." : "Written by vgfs.");
    out += fmt::format("creation_host = {}\ncreation_time = {}\t# {}\n\n", quote(host_), static_cast<int64_t>(now_),
                       when);
    return out;
  }

  std::string pvs() {
    std::string out = "physical_volumes {\n";
    for (const PvInfo& p : md_.pvs) {
      out += "\n" + p.name + " {\n";
      std::vector<Item> modeled = {value_item("device", quote(p.path)),
                                   value_item("pe_start", std::to_string(p.pe_start / kSector)),
                                   value_item("pe_count", std::to_string(p.pe_count))};
      write_items(merge("pv", p.kept, std::move(modeled)), {"status"}, &out);
      out += "}\n";
    }
    return out + "}\n";
  }

  std::string lvs() {
    std::string out = "logical_volumes {\n";
    // Visible LVs first, then hidden ones, as LVM2 writes them; the running
    // moves' hidden LVs last (vgfs/lvm2_move.h).
    for (bool hidden : {false, true})
      for (const LvInfo& l : md_.lvs)
        if (l.hidden == hidden) out += "\n" + lv(l);
    for (const LvInfo& l : job_lvs_) out += "\n" + lv(l);
    return out + "}\n";
  }

  std::string lv(const LvInfo& l) {
    std::string out = l.name + " {\n";
    if (!l.unsupported.empty()) {  // kept whole, as read
      write_items(merge("lv", l.kept, {}), {}, &out);
      return out + "}\n";
    }
    KeptKeys kept = l.kept;
    if (!find_kept(kept, "id")) {  // a new LV: what lvcreate writes
      kept = {{"id", quote(format_lvm2_uuid(new_lvm2_id()))},
              {"status", "[]"},
              {"flags", "[]"},
              {"creation_time", std::to_string(static_cast<int64_t>(now_))},
              {"creation_host", quote(host_)}};
      for (const auto& kv : l.kept) kept.push_back(kv);
    }
    set_visible(&kept, !l.hidden);
    const std::vector<MapRun> runs = merged_runs(l.map);
    std::vector<Item> modeled;
    modeled.push_back(value_item("segment_count", std::to_string(runs.size())));
    size_t n = 0;
    for (const MapRun& r : runs) modeled.push_back(Item{"segment_count", segment(++n, r), true});
    // The segments follow segment_count, in order (merge() keeps equal ranks in order).
    write_items(merge("lv", kept, std::move(modeled)), {}, &out);
    return out + "}\n";
  }

  // The runs as LVM2 keeps segments: a striped run whose every leg
  // continues the previous striped run's leg (same stripes, stripe size,
  // nothing kept) is one segment with it, as LVM2 merges them on reading;
  // the data mapping is the same (each leg holds whole extents, a multiple
  // of the stripe size). Plain linear runs are merged by ExtentMap already;
  // contiguous linear ones with equal kept keys (tags) are merged here.
  static std::vector<MapRun> merged_runs(const ExtentMap& map) {
    std::vector<MapRun> out;
    for (const MapRun& r : map.runs()) {
      if (!out.empty()) {
        MapRun& p = out.back();
        // Striped runs with nothing kept, or linear runs whose kept keys
        // (tags, ...) are equal, as lv_merge_segments merges them.
        bool joins = p.stripe_count() == r.stripe_count() && p.stripe_size == r.stripe_size && p.le_end() == r.le &&
                     (p.striped() ? p.kept.empty() && r.kept.empty() : p.kept == r.kept);
        for (uint32_t k = 0; joins && k < r.stripe_count(); ++k)
          joins = r.leg(k).pv == p.leg(k).pv && r.leg(k).pe == p.leg(k).pe + p.leg_extents();
        if (joins) {
          p.count += r.count;
          continue;
        }
      }
      out.push_back(r);
    }
    return out;
  }

  // Makes the status list hold READ, WRITE (new LVs) and VISIBLE as `visible`.
  static void set_visible(KeptKeys* kept, bool visible) {
    for (auto& [key, value] : *kept) {
      if (key != "status") continue;
      Result<ConfigNode> n = kept_node(key, value);
      if (!n.ok()) return;  // decode() will refuse the text
      std::vector<std::string> flags;
      for (const ConfigValue& v : n->values) flags.push_back(v.text);
      if (flags.empty()) flags = {"READ", "WRITE"};
      auto it = std::find(flags.begin(), flags.end(), "VISIBLE");
      if (visible && it == flags.end()) flags.push_back("VISIBLE");
      if (!visible && it != flags.end()) flags.erase(it);
      value = string_list(flags);
    }
  }

  std::string segment(size_t n, const MapRun& r) {
    std::string out = fmt::format("segment{} {{\n", n);
    std::vector<Item> modeled = {value_item("start_extent", std::to_string(r.le)),
                                 value_item("extent_count", std::to_string(r.count)),
                                 value_item("type", "\"striped\""),
                                 value_item("stripe_count", std::to_string(r.stripe_count()))};
    if (r.striped()) modeled.push_back(value_item("stripe_size", std::to_string(r.stripe_size / kSector)));
    std::string stripes = "stripes = [\n";
    for (uint32_t s = 0; s < r.stripe_count(); ++s) {
      const StripeLeg leg = r.leg(s);
      stripes += fmt::format("{}, {}{}\n", quote(md_.pvs[leg.pv].name), leg.pe, s + 1 < r.stripe_count() ? "," : "");
    }
    modeled.push_back(Item{"stripes", stripes + "]\n", false});
    write_items(merge("seg", r.kept, std::move(modeled)), {"type", "stripes"}, &out);
    return out + "}\n";
  }

  const VgMetadata& md_;
  std::vector<LvInfo> job_lvs_;
  time_t now_;
  std::string host_;
};

}  // namespace

Uuid short_uuid(std::string_view id32) {
  boost::uuids::name_generator_sha1 gen(kLvm2IdNamespace);
  const boost::uuids::uuid u = gen(id32.data(), id32.size());
  Uuid out{};
  std::copy(u.begin(), u.end(), out.begin());
  return out;
}

std::string new_lvm2_id() {
  static constexpr std::string_view kChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 32; ++i) out += kChars[rd() % kChars.size()];
  return out;
}

Status check_new_lv_name(std::string_view name) {
  if (!valid_lvm2_name(name))
    return Status::Error(EINVAL, fmt::format("LV name \"{}\" is not a valid LVM2 name ([A-Za-z0-9+_.-], at most 128 "
                                             "characters, not starting with '-')", printable(name)));
  for (std::string_view prefix : {"pvmove", "snapshot"})
    if (name.substr(0, prefix.size()) == prefix)
      return Status::Error(EINVAL, fmt::format("LV name \"{}\" starts with \"{}\", which LVM2 keeps for its own LVs",
                                               name, prefix));
  if (name.substr(0, kMoveLvPrefix.size()) == kMoveLvPrefix)
    return Status::Error(EINVAL, fmt::format("LV name \"{}\" starts with \"{}\", which vgfs keeps for the hidden LVs "
                                             "of its moves", name, kMoveLvPrefix));
  for (std::string_view reserved : {"_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog",
                                    "_rimage", "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig",
                                    "_pmspare", "_vorigin"})
    if (name.find(reserved) != std::string_view::npos)
      return Status::Error(EINVAL, fmt::format("LV name \"{}\" contains \"{}\", which LVM2 keeps for its sub-LVs",
                                               name, reserved));
  return Status::Ok();
}

std::string host_system_id() {
  struct utsname u {};
  if (::uname(&u) != 0) return {};
  return u.nodename;
}

std::string indent_config_text(std::string_view text) {
  std::string out;
  int depth = 0;
  bool line_start = true, in_string = false, comment = false;
  char quote_char = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (line_start && !in_string) {
      line_start = false;
      if (c != '\n') {
        const int d = (c == '}' || c == ']') ? depth - 1 : depth;
        out.append(static_cast<size_t>(std::max(d, 0)), '\t');
      }
    }
    out += c;
    if (in_string) {
      if (c == '\\' && quote_char == '"' && i + 1 < text.size()) out += text[++i];
      else if (c == quote_char) in_string = false;
    } else if (comment) {
      comment = c != '\n';
    } else if (c == '"' || c == '\'') {
      in_string = true;
      quote_char = c;
    } else if (c == '#') {
      comment = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
    if (c == '\n' && !in_string) line_start = true;
  }
  return out;
}

std::string encode_vg_backup(const VgMetadata& md) { return Encoder(md).backup(); }

Result<VgMetadata> decode_vg_text(std::string_view text, std::string_view origin) {
  Result<Lvm2Vg> vg = read_vg_text(text, origin);
  if (!vg.ok()) return vg.status();
  return Decoder(*vg, origin).decode();
}

std::string encode_vg_text(const VgMetadata& md) { return Encoder(md).encode(); }

}  // namespace vgfs::lvm2
