// The typed view of LVM2 VG metadata and its checks
// (include/vgfs/lvm2_metadata.h, docs/lvm2.md "What the VG text must
// satisfy"). The rules follow LVM2's import (lib/format_text/import_vsn1.c,
// flags.c, striped.c), read to learn.
#include "vgfs/lvm2_metadata.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <unordered_map>
#include <set>

#include "vgfs/lvm2_label.h"

namespace vgfs::lvm2 {

namespace {

// pe_start + pe_count * extent_size can pass 2^64 in a hostile text.
__extension__ typedef unsigned __int128 u128;

// Status flags LVM2 knows per kind (flags.c, STATUS_FLAG kind); an unknown
// one makes LVM2 refuse the VG, and so does vgfs.
const std::set<std::string, std::less<>> kVgStatus = {"RESIZEABLE", "READ", "WRITE", "EXPORTED",
                                                      "PVMOVE", "CLUSTERED", "SHARED", "PARTIAL"};
const std::set<std::string, std::less<>> kPvStatus = {"ALLOCATABLE", "EXPORTED", "MISSING"};
const std::set<std::string, std::less<>> kLvStatus = {"READ", "WRITE", "FIXED_MINOR", "VISIBLE", "PVMOVE", "LOCKED",
                                                      "NOTSYNCED", "REBUILD", "WRITEMOSTLY", "CACHE_VOL"};

Status fail(std::string_view where, const std::string& what) {
  return Status::Error(EINVAL, fmt::format("{}: {}", where, what));
}

const ConfigNode* value_node(const ConfigNode& section, std::string_view key) {
  const ConfigNode* n = section.find(key);
  return n && !n->section ? n : nullptr;
}

// An integer key in [min, max]; `fallback` when absent and not required.
Result<uint64_t> get_uint(const ConfigNode& section, std::string_view key, std::string_view where, bool required,
                          uint64_t max, uint64_t fallback = 0) {
  const ConfigNode* n = section.find(key);
  if (!n) {
    if (required) return fail(where, fmt::format("{} is missing", key));
    return fallback;
  }
  if (n->section || n->list || n->values.size() != 1 || n->values[0].kind != ConfigValue::Kind::kInt)
    return fail(where, fmt::format("{} is not an integer", key));
  const int64_t v = n->values[0].integer;
  if (v < 0 || static_cast<uint64_t>(v) > max)
    return fail(where, fmt::format("{} = {} is out of range 0-{}", key, v, max));
  return static_cast<uint64_t>(v);
}

Result<std::string> get_string(const ConfigNode& section, std::string_view key, std::string_view where,
                               bool required) {
  const ConfigNode* n = section.find(key);
  if (!n) {
    if (required) return fail(where, fmt::format("{} is missing", key));
    return std::string();
  }
  if (n->section || n->list || n->values.size() != 1 || n->values[0].kind != ConfigValue::Kind::kString)
    return fail(where, fmt::format("{} is not a string", key));
  return n->values[0].text;
}

Result<std::vector<std::string>> get_string_list(const ConfigNode& section, std::string_view key,
                                                 std::string_view where, bool required) {
  std::vector<std::string> out;
  const ConfigNode* n = section.find(key);
  if (!n) {
    if (required) return fail(where, fmt::format("{} is missing", key));
    return out;
  }
  if (n->section) return fail(where, fmt::format("{} is a section, not a list of strings", key));
  for (const ConfigValue& v : n->values) {
    if (v.kind != ConfigValue::Kind::kString) return fail(where, fmt::format("{} holds a value that is not a string", key));
    out.push_back(v.text);
  }
  return out;
}

Result<std::vector<std::string>> get_status(const ConfigNode& section, std::string_view where,
                                            const std::set<std::string, std::less<>>& known) {
  Result<std::vector<std::string>> s = get_string_list(section, "status", where, true);
  if (!s.ok()) return s;
  for (const std::string& f : *s)
    if (!known.count(f)) return fail(where, fmt::format("unknown status flag \"{}\"", f));
  return s;
}

Result<std::string> get_uuid(const ConfigNode& section, std::string_view where) {
  Result<std::string> text = get_string(section, "id", where, true);
  if (!text.ok()) return text;
  Result<std::string> uuid = parse_lvm2_uuid(*text);
  if (!uuid.ok()) return fail(where, fmt::format("id \"{}\" is {}", *text, uuid.status().message()));
  return uuid;
}

bool contains(const std::vector<std::string>& v, std::string_view s) { return std::find(v.begin(), v.end(), s) != v.end(); }

// Why vgfs cannot serve a segment of `type` (SPEC: only linear and striped).
std::string unsupported_reason(std::string_view type, bool pvmove) {
  if (type.find('+') != std::string_view::npos)
    return fmt::format("segment type {} carries flags an older tool must not touch", type);
  if (type == "mirror")
    return pvmove ? "a pvmove in progress (mirror segment of pvmove); finish or abort it first"
                  : "mirror segments (LVM2's old mirror) are not served";
  if (type.rfind("raid", 0) == 0) return fmt::format("RAID ({}) is not served", type);
  if (type == "thin-pool" || type == "thin")
    return fmt::format("thin provisioning ({}) needs the pool's metadata B-tree, which vgfs does not read", type);
  if (type == "snapshot") return "snapshots (copy-on-write exception store) are not served";
  if (type == "cache" || type == "cache-pool" || type == "writecache")
    return fmt::format("caching ({}) is not served", type);
  if (type == "integrity") return "dm-integrity segments are not served";
  if (type == "vdo" || type == "vdo-pool") return fmt::format("VDO ({}) is not served", type);
  if (type == "error" || type == "zero") return fmt::format("{} segments hold no data on a PV", type);
  return fmt::format("unknown segment type {}", type);
}

struct Use {
  u128 first, end;  // PE range [first, end) on the PV
  std::string owner;
};

// Reads `key` = ["name", N, ...] pairs of a segment.
Result<std::vector<StripeArea>> get_areas(const ConfigNode& seg, std::string_view key, std::string_view where) {
  std::vector<StripeArea> out;
  const ConfigNode* n = value_node(seg, key);
  if (!n) return fail(where, fmt::format("{} is missing", key));
  if (n->values.size() % 2 != 0) return fail(where, fmt::format("{} does not hold (volume, extent) pairs", key));
  for (size_t i = 0; i < n->values.size(); i += 2) {
    const ConfigValue &name = n->values[i], &pe = n->values[i + 1];
    if (name.kind != ConfigValue::Kind::kString) return fail(where, fmt::format("{}: a volume name is not a string", key));
    if (pe.kind != ConfigValue::Kind::kInt || pe.integer < 0 || pe.integer > UINT32_MAX)
      return fail(where, fmt::format("{}: extent of {} is not an integer 0-{}", key, name.text, UINT32_MAX));
    out.push_back(StripeArea{name.text, static_cast<uint64_t>(pe.integer)});
  }
  return out;
}

class VgReader {
 public:
  VgReader(ConfigTree tree, std::string_view origin) : origin_(origin) { vg_.tree = std::move(tree); }

  Result<Lvm2Vg> read() {
    const ConfigTree& t = vg_.tree;
    const std::string top = std::string(origin_);
    Result<std::string> contents = get_string(top_node(), "contents", top, true);
    if (!contents.ok()) return contents.status();
    if (*contents != "Text Format Volume Group")
      return fail(top, fmt::format("contents \"{}\" is not \"Text Format Volume Group\"", *contents));
    Result<uint64_t> version = get_uint(top_node(), "version", top, true, UINT64_MAX);
    if (!version.ok()) return version.status();
    if (*version != 1) return fail(top, fmt::format("text format version {} (vgfs reads version 1)", *version));
    const ConfigNode* vgn = nullptr;
    for (const ConfigNode& n : t.top)
      if (n.section) {
        vgn = &n;
        break;
      }
    if (!vgn) return fail(top, "no VG section");
    VGFS_RETURN_IF_ERROR(read_vg_keys(*vgn));
    const std::string where = fmt::format("{}: VG {}", origin_, vg_.name);
    const ConfigNode* pvs = vgn->find("physical_volumes");
    if (!pvs || !pvs->section) return fail(where, "physical_volumes section is missing");
    for (const ConfigNode& p : pvs->children) VGFS_RETURN_IF_ERROR(read_pv(p, where));
    if (const ConfigNode* lvs = vgn->find("logical_volumes")) {
      if (!lvs->section) return fail(where, "logical_volumes is not a section");
      for (const ConfigNode& l : lvs->children) VGFS_RETURN_IF_ERROR(read_lv(l, where));
    }
    VGFS_RETURN_IF_ERROR(check_lv_references(where));
    VGFS_RETURN_IF_ERROR(check_used_extents(where));
    return std::move(vg_);
  }

 private:
  // The top level as a section, for the getters.
  const ConfigNode& top_node() {
    if (top_.children.empty()) {
      for (const ConfigNode& n : vg_.tree.top)
        if (!n.section) top_.children.push_back(n);
    }
    return top_;
  }

  Status read_vg_keys(const ConfigNode& n) {
    vg_.name = n.key;
    if (!valid_lvm2_name(vg_.name)) return fail(origin_, fmt::format("VG name \"{}\" is not a valid LVM2 name", vg_.name));
    const std::string where = fmt::format("{}: VG {}", origin_, vg_.name);
    VGFS_ASSIGN_OR_RETURN(vg_.uuid, get_uuid(n, where));
    VGFS_ASSIGN_OR_RETURN(vg_.seqno, get_uint(n, "seqno", where, true, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(vg_.format, get_string(n, "format", where, false));
    if (!vg_.format.empty() && vg_.format != "lvm2")
      return fail(where, fmt::format("format \"{}\" (vgfs reads lvm2)", vg_.format));
    VGFS_ASSIGN_OR_RETURN(vg_.status, get_status(n, where, kVgStatus));
    VGFS_ASSIGN_OR_RETURN(vg_.flags, get_string_list(n, "flags", where, false));
    VGFS_ASSIGN_OR_RETURN(vg_.extent_size, get_uint(n, "extent_size", where, true, UINT32_MAX));
    if (vg_.extent_size == 0) return fail(where, "extent_size is 0");
    VGFS_ASSIGN_OR_RETURN(vg_.max_lv, get_uint(n, "max_lv", where, true, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(vg_.max_pv, get_uint(n, "max_pv", where, true, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(vg_.metadata_copies, get_uint(n, "metadata_copies", where, false, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(vg_.system_id, get_string(n, "system_id", where, false));
    VGFS_ASSIGN_OR_RETURN(vg_.lock_type, get_string(n, "lock_type", where, false));
    return Status::Ok();
  }

  Status read_pv(const ConfigNode& n, const std::string& vg_where) {
    const std::string where = fmt::format("{}: PV {}", vg_where, n.key);
    if (!n.section) return fail(where, "is not a section");
    if (vg_.pv_by_key(n.key)) return fail(where, "appears twice");
    Lvm2Pv pv;
    pv.key = n.key;
    VGFS_ASSIGN_OR_RETURN(pv.uuid, get_uuid(n, where));
    if (const Lvm2Pv* other = vg_.pv_by_uuid(pv.uuid))
      return fail(where, fmt::format("has the uuid of PV {} ({})", other->key, format_lvm2_uuid(pv.uuid)));
    VGFS_ASSIGN_OR_RETURN(pv.device_hint, get_string(n, "device", where, false));
    VGFS_ASSIGN_OR_RETURN(pv.status, get_status(n, where, kPvStatus));
    VGFS_ASSIGN_OR_RETURN(pv.flags, get_string_list(n, "flags", where, false));
    VGFS_ASSIGN_OR_RETURN(pv.dev_size, get_uint(n, "dev_size", where, false, UINT64_MAX));
    VGFS_ASSIGN_OR_RETURN(pv.pe_start, get_uint(n, "pe_start", where, true, UINT64_MAX));
    VGFS_ASSIGN_OR_RETURN(pv.pe_count, get_uint(n, "pe_count", where, true, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(pv.ba_start, get_uint(n, "ba_start", where, false, UINT64_MAX));
    VGFS_ASSIGN_OR_RETURN(pv.ba_size, get_uint(n, "ba_size", where, false, UINT64_MAX));
    if ((pv.ba_start == 0) != (pv.ba_size == 0)) return fail(where, "ba_start and ba_size come together");
    // The PEs must fit in the device the text records (when it does).
    const u128 pe_end = u128{pv.pe_start} + u128{pv.pe_count} * vg_.extent_size;
    if (pv.dev_size && pe_end > pv.dev_size)
      return fail(where, fmt::format("{} extents from sector {} end past dev_size {} sectors", pv.pe_count,
                                     pv.pe_start, pv.dev_size));
    vg_.pvs.push_back(std::move(pv));
    return Status::Ok();
  }

  Status read_lv(const ConfigNode& n, const std::string& vg_where) {
    const std::string where = fmt::format("{}: LV {}", vg_where, n.key);
    if (!n.section) return fail(where, "is not a section");
    if (!valid_lvm2_name(n.key)) return fail(where, "is not a valid LVM2 name");
    Lvm2Lv lv;
    lv.name = n.key;
    VGFS_ASSIGN_OR_RETURN(lv.uuid, get_uuid(n, where));
    VGFS_ASSIGN_OR_RETURN(lv.status, get_status(n, where, kLvStatus));
    VGFS_ASSIGN_OR_RETURN(lv.flags, get_string_list(n, "flags", where, false));
    uint64_t count = 0;
    VGFS_ASSIGN_OR_RETURN(count, get_uint(n, "segment_count", where, true, UINT32_MAX));
    for (const ConfigNode& s : n.children) {
      if (!s.section) continue;  // LVM2 takes every subsection as a segment
      Result<Lvm2Segment> seg = read_segment(s, lv, where + ": " + s.key);
      if (!seg.ok()) return seg.status();
      lv.segments.push_back(std::move(*seg));
    }
    if (lv.segments.size() != count)
      return fail(where, fmt::format("segment_count is {} but it has {} segments", count, lv.segments.size()));
    std::sort(lv.segments.begin(), lv.segments.end(),
              [](const Lvm2Segment& a, const Lvm2Segment& b) { return a.start_extent < b.start_extent; });
    uint64_t next = 0;
    for (const Lvm2Segment& s : lv.segments) {
      if (s.start_extent != next)
        return fail(where, fmt::format("{} starts at LE {}, expected LE {} (a gap or an overlap)", s.name,
                                       s.start_extent, next));
      next += s.extent_count;
    }
    // A map, not a scan of the LVs read so far: a VG of thousands of LVs.
    if (auto [it, fresh] = lv_by_uuid_.emplace(lv.uuid, vg_.lvs.size()); !fresh)
      return fail(where, fmt::format("has the uuid of LV {}", vg_.lvs[it->second].name));
    vg_.lvs.push_back(std::move(lv));
    return Status::Ok();
  }

  Result<Lvm2Segment> read_segment(const ConfigNode& n, const Lvm2Lv& lv, const std::string& where) {
    Lvm2Segment seg;
    seg.name = n.key;
    VGFS_ASSIGN_OR_RETURN(seg.start_extent, get_uint(n, "start_extent", where, true, UINT32_MAX));
    VGFS_ASSIGN_OR_RETURN(seg.extent_count, get_uint(n, "extent_count", where, true, UINT32_MAX));
    if (seg.extent_count == 0) return fail(where, "extent_count is 0");
    if (seg.start_extent + seg.extent_count > UINT32_MAX)
      return fail(where, "start_extent + extent_count is past LVM2's 32-bit extent numbers");
    VGFS_ASSIGN_OR_RETURN(seg.type, get_string(n, "type", where, true));
    if (seg.type != "striped") {
      seg.unsupported = unsupported_reason(seg.type, contains(lv.status, "PVMOVE"));
      // pvmove's mirror names PVs directly: its PEs count as used.
      if (seg.type == "mirror" && value_node(n, "mirrors")) {
        std::vector<StripeArea> legs;
        VGFS_ASSIGN_OR_RETURN(legs, get_areas(n, "mirrors", where));
        for (const StripeArea& a : legs) VGFS_RETURN_IF_ERROR(note_use(a, seg.extent_count, lv.name, where));
      }
      return seg;
    }
    VGFS_ASSIGN_OR_RETURN(seg.stripe_count, get_uint(n, "stripe_count", where, true, UINT32_MAX));
    if (seg.stripe_count == 0) return fail(where, "stripe_count is 0");
    if (seg.stripe_count > 1) {
      VGFS_ASSIGN_OR_RETURN(seg.stripe_size, get_uint(n, "stripe_size", where, true, UINT32_MAX));
      if (seg.stripe_size == 0) return fail(where, "stripe_size is 0");
    }
    if (seg.extent_count % seg.stripe_count != 0)
      return fail(where, fmt::format("extent_count {} is not a multiple of stripe_count {}", seg.extent_count,
                                     seg.stripe_count));
    VGFS_ASSIGN_OR_RETURN(seg.stripes, get_areas(n, "stripes", where));
    if (seg.stripes.size() != seg.stripe_count)
      return fail(where, fmt::format("stripe_count is {} but stripes lists {}", seg.stripe_count, seg.stripes.size()));
    const uint64_t leg = seg.extent_count / seg.stripe_count;
    for (const StripeArea& a : seg.stripes) {
      if (vg_.pv_by_key(a.pv)) {
        VGFS_RETURN_IF_ERROR(note_use(a, leg, lv.name, where));
      } else {
        // A stripe on another LV (e.g. "pvmove0" while a pvmove runs): known
        // once every LV is read (check_lv_references), not served.
        lv_refs_.push_back({a.pv, where});
        if (seg.unsupported.empty())
          seg.unsupported = a.pv.rfind("pvmove", 0) == 0
                                ? fmt::format("its extents are being moved by {} (a pvmove in progress)", a.pv)
                                : fmt::format("it is layered on LV {}", a.pv);
      }
    }
    return seg;
  }

  Status note_use(const StripeArea& a, uint64_t length, const std::string& lv, const std::string& where) {
    const Lvm2Pv* pv = vg_.pv_by_key(a.pv);
    if (!pv) {
      lv_refs_.push_back({a.pv, where});
      return Status::Ok();
    }
    const u128 end = u128{a.pe} + length;
    if (end > pv->pe_count)
      return fail(where, fmt::format("PEs {}-{} of {} are past its {} extents", a.pe, static_cast<uint64_t>(end - 1),
                                     a.pv, pv->pe_count));
    uses_[a.pv].push_back(Use{a.pe, end, fmt::format("LV {} {}", lv, where.substr(where.rfind(": ") + 2))});
    return Status::Ok();
  }

  Status check_lv_references(const std::string& where) {
    (void)where;
    std::set<std::string_view> names;
    for (const Lvm2Lv& l : vg_.lvs) names.insert(l.name);
    for (const auto& [name, at] : lv_refs_)
      if (!names.count(name))
        return fail(at, fmt::format("names volume {}, which is neither a PV nor an LV of the VG", name));
    return Status::Ok();
  }

  Status check_used_extents(const std::string& where) {
    for (auto& [pv, uses] : uses_) {
      std::sort(uses.begin(), uses.end(), [](const Use& a, const Use& b) { return a.first < b.first; });
      for (size_t i = 1; i < uses.size(); ++i)
        if (uses[i].first < uses[i - 1].end)
          return fail(where, fmt::format("PV {}: PE {} is used by {} and by {}", pv,
                                         static_cast<uint64_t>(uses[i].first), uses[i - 1].owner, uses[i].owner));
    }
    return Status::Ok();
  }

  std::string_view origin_;
  Lvm2Vg vg_;
  ConfigNode top_;
  std::map<std::string, std::vector<Use>> uses_;
  std::unordered_map<std::string, size_t> lv_by_uuid_;
  std::vector<std::pair<std::string, std::string>> lv_refs_;
};

}  // namespace

bool Lvm2Pv::missing() const { return contains(status, "MISSING") || contains(flags, "MISSING"); }

bool Lvm2Lv::visible() const { return contains(status, "VISIBLE"); }

uint64_t Lvm2Lv::extent_count() const {
  uint64_t n = 0;
  for (const Lvm2Segment& s : segments) n += s.extent_count;
  return n;
}

std::string Lvm2Lv::unsupported() const {
  for (const Lvm2Segment& s : segments)
    if (!s.unsupported.empty()) return s.unsupported;
  return {};
}

bool Lvm2Vg::has_status(std::string_view flag) const { return contains(status, flag); }

const Lvm2Pv* Lvm2Vg::pv_by_key(std::string_view key) const {
  for (const Lvm2Pv& p : pvs)
    if (p.key == key) return &p;
  return nullptr;
}

const Lvm2Pv* Lvm2Vg::pv_by_uuid(std::string_view uuid) const {
  for (const Lvm2Pv& p : pvs)
    if (p.uuid == uuid) return &p;
  return nullptr;
}

bool valid_lvm2_name(std::string_view name) {
  if (name.empty() || name.size() > 128 || name[0] == '-' || name == "." || name == "..") return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' || c == '_' ||
          c == '.' || c == '-'))
      return false;
  return true;
}

Result<VgSummary> read_vg_summary(const ConfigTree& tree, std::string_view origin) {
  for (const ConfigNode& n : tree.top) {
    if (!n.section) continue;
    if (!valid_lvm2_name(n.key)) return fail(origin, fmt::format("VG name \"{}\" is not a valid LVM2 name", n.key));
    const std::string where = fmt::format("{}: VG {}", origin, n.key);
    VgSummary s;
    s.name = n.key;
    VGFS_ASSIGN_OR_RETURN(s.uuid, get_uuid(n, where));
    VGFS_ASSIGN_OR_RETURN(s.seqno, get_uint(n, "seqno", where, true, UINT32_MAX));
    return s;
  }
  return fail(origin, "no VG section");
}

Result<Lvm2Vg> read_vg(ConfigTree tree, std::string_view origin) { return VgReader(std::move(tree), origin).read(); }

Result<Lvm2Vg> read_vg_text(std::string_view text, std::string_view origin) {
  Result<ConfigTree> tree = parse_config(text, origin);
  if (!tree.ok()) return tree.status();
  return read_vg(std::move(*tree), origin);
}

}  // namespace vgfs::lvm2
