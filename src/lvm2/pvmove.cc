// LVM2's unfinished pvmove: finding it and the metadata transformations that
// finish or abort it (include/vgfs/lvm2_pvmove.h, docs/lvm2.md "LVM2's
// unfinished pvmove"). The rules follow LVM2's own finish
// (lib/metadata/lv_manip.c remove_layers_for_segments, lib/metadata/merge.c,
// lib/striped/striped.c _striped_segments_compatible), read to learn.
#include "vgfs/lvm2_pvmove.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "vgfs/lvm2_format.h"

namespace vgfs::lvm2 {

namespace {

Status fail(const std::string& what) { return Status::Error(EINVAL, what); }

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

ConfigNode* child(ConfigNode& n, std::string_view key) {
  for (ConfigNode& c : n.children)
    if (c.key == key) return &c;
  return nullptr;
}

// The first top-level section is the VG (as read_vg takes it).
ConfigNode* vg_section(ConfigTree& tree) {
  for (ConfigNode& n : tree.top)
    if (n.section) return &n;
  return nullptr;
}
const ConfigNode* vg_section(const ConfigTree& tree) {
  for (const ConfigNode& n : tree.top)
    if (n.section) return &n;
  return nullptr;
}

std::optional<int64_t> int_value(const ConfigNode& section, std::string_view key) {
  const ConfigNode* n = section.find(key);
  if (!n || n->section || n->list || n->values.size() != 1 || n->values[0].kind != ConfigValue::Kind::kInt)
    return std::nullopt;
  return n->values[0].integer;
}

std::optional<std::string> string_value(const ConfigNode& section, std::string_view key) {
  const ConfigNode* n = section.find(key);
  if (!n || n->section || n->list || n->values.size() != 1 || n->values[0].kind != ConfigValue::Kind::kString)
    return std::nullopt;
  return n->values[0].text;
}

// Reads one mirror segment of the pvmove LV into `piece`.
Status read_piece(const Lvm2Vg& vg, const Lvm2Segment& seg, const ConfigNode& node, const std::string& where,
                  PvmovePiece& piece) {
  if (seg.type != "mirror")
    return fail(fmt::format("{}: type \"{}\" (a pvmove LV holds only mirror segments)", where, seg.type));
  const std::optional<int64_t> mirror_count = int_value(node, "mirror_count");
  if (mirror_count != 2)
    return fail(fmt::format("{}: mirror_count is {} (pvmove's mirror has 2 legs: source, destination)", where,
                            mirror_count ? std::to_string(*mirror_count) : "missing or not an integer"));
  // LVM2 marks a pvmove segment by its extents_moved key; without it, its
  // own finish refuses the segment ("Layer status does not match").
  const std::optional<int64_t> moved = int_value(node, "extents_moved");
  if (!moved) return fail(fmt::format("{}: extents_moved is missing or not an integer", where));
  if (*moved < 0 || static_cast<uint64_t>(*moved) > seg.extent_count)
    return fail(fmt::format("{}: extents_moved = {} is outside 0-{} (its extent_count)", where, *moved,
                            seg.extent_count));
  const ConfigNode* mirrors = node.find("mirrors");
  if (!mirrors || mirrors->section) return fail(fmt::format("{}: mirrors is missing", where));
  if (mirrors->values.size() != 4)
    return fail(fmt::format("{}: mirrors lists {} values; a pvmove leg list is [\"source PV\", PE, \"destination "
                            "PV\", PE]",
                            where, mirrors->values.size()));
  StripeArea legs[2];
  for (int i = 0; i < 2; ++i) {
    const ConfigValue& name = mirrors->values[2 * i];
    const ConfigValue& pe = mirrors->values[2 * i + 1];
    const char* which = i == 0 ? "source" : "destination";
    if (name.kind != ConfigValue::Kind::kString || pe.kind != ConfigValue::Kind::kInt || pe.integer < 0)
      return fail(fmt::format("{}: the {} leg is not a (\"PV\", PE) pair", where, which));
    const Lvm2Pv* pv = vg.pv_by_key(name.text);
    if (!pv) {
      for (const Lvm2Lv& lv : vg.lvs)
        if (lv.name == name.text)
          return fail(fmt::format("{}: the {} leg is LV {}: an atomic pvmove (pvmove --atomic), which vgfs does not "
                                  "finish",
                                  where, which, name.text));
      return fail(fmt::format("{}: the {} leg names {}, which is not a PV of the VG", where, which, name.text));
    }
    if (static_cast<uint64_t>(pe.integer) + seg.extent_count > pv->pe_count)
      return fail(fmt::format("{}: the {} leg {}:{}-{} is past the PV's {} extents", where, which, name.text,
                              pe.integer, static_cast<uint64_t>(pe.integer) + seg.extent_count - 1, pv->pe_count));
    legs[i] = StripeArea{name.text, static_cast<uint64_t>(pe.integer)};
  }
  piece.segment = seg.name;
  piece.le = seg.start_extent;
  piece.extent_count = seg.extent_count;
  piece.extents_moved = static_cast<uint64_t>(*moved);
  piece.source = legs[0];
  piece.destination = legs[1];
  return Status::Ok();
}

// Refuses any place other than a striped segment's `stripes` that names the
// pvmove LV (a layered type, a tag, a pool name...): vgfs would not know
// how to remap it, and LVM2 never writes one.
Status check_other_references(const ConfigNode& node, const std::string& name, const std::string& where,
                              bool striped_segment) {
  for (const ConfigNode& c : node.children) {
    if (c.section) {
      const std::optional<std::string> type = string_value(c, "type");
      VGFS_RETURN_IF_ERROR(check_other_references(c, name, where + " " + c.key, type && *type == "striped"));
      continue;
    }
    if (c.key == "stripes" && striped_segment) continue;
    for (const ConfigValue& v : c.values)
      if (v.kind == ConfigValue::Kind::kString && v.text == name)
        return fail(fmt::format("{}: {} names the pvmove LV {}, which only the stripes of a striped segment may do",
                                where, c.key, name));
  }
  return Status::Ok();
}

}  // namespace

Result<Pvmove> find_pvmove(const Lvm2Vg& vg) {
  const std::string vg_where = fmt::format("VG {}", vg.name);
  const Lvm2Lv* mover = nullptr;
  for (const Lvm2Lv& lv : vg.lvs) {
    if (!contains(lv.status, "PVMOVE")) continue;
    if (mover)
      return fail(fmt::format("{}: holds several pvmove LVs ({} and {}); vgfs finishes a VG with one", vg_where,
                              mover->name, lv.name));
    mover = &lv;
  }
  if (!mover) return Status::Error(ENOENT, fmt::format("{}: holds no pvmove LV", vg_where));

  const ConfigNode* vgn = vg_section(vg.tree);
  const ConfigNode* lvs = vgn ? vgn->find("logical_volumes") : nullptr;
  const ConfigNode* mover_node = lvs ? lvs->find(mover->name) : nullptr;
  if (!mover_node) return fail(fmt::format("{}: LV {} is not in the metadata tree", vg_where, mover->name));

  Pvmove move;
  move.lv = mover->name;
  for (const Lvm2Segment& seg : mover->segments) {
    const std::string where = fmt::format("{}: LV {} {}", vg_where, mover->name, seg.name);
    const ConfigNode* node = mover_node->find(seg.name);
    if (!node || !node->section) return fail(where + ": not in the metadata tree");
    PvmovePiece piece;
    VGFS_RETURN_IF_ERROR(read_piece(vg, seg, *node, where, piece));
    move.pieces.push_back(std::move(piece));
  }
  if (move.pieces.empty()) return fail(fmt::format("{}: LV {} has no segments", vg_where, mover->name));

  // Every stripe that names the pvmove LV must start at one of its segments
  // and span exactly that segment (LVM2's finish checks "Layer boundary
  // mismatch"), and each segment must be named once.
  std::vector<bool> named(move.pieces.size(), false);
  std::map<uint64_t, size_t> piece_at;  // first LE -> piece (a hostile text may hold many)
  for (size_t i = 0; i < move.pieces.size(); ++i) piece_at.emplace(move.pieces[i].le, i);
  for (const Lvm2Lv& lv : vg.lvs) {
    if (&lv == mover) continue;
    bool uses = false;
    for (const Lvm2Segment& seg : lv.segments) {
      for (size_t s = 0; s < seg.stripes.size(); ++s) {
        const StripeArea& a = seg.stripes[s];
        if (a.pv != move.lv) continue;
        const std::string where = fmt::format("{}: LV {} {}", vg_where, lv.name, seg.name);
        const uint64_t leg = seg.extent_count / seg.stripe_count;
        const auto found = piece_at.find(a.pe);
        const size_t i = found == piece_at.end() ? move.pieces.size() : found->second;
        if (i == move.pieces.size() || move.pieces[i].extent_count != leg)
          return fail(fmt::format("{}: stripe {} names {} LEs {}-{}, which are not exactly one of its segments", where,
                                  s, move.lv, a.pe, a.pe + leg - 1));
        if (named[i])
          return fail(fmt::format("{}: stripe {} names {} {}, which another stripe names too", where, s, move.lv,
                                  move.pieces[i].segment));
        named[i] = true;
        move.pieces[i].user = PvmoveUser{lv.name, seg.name, seg.start_extent, seg.extent_count, seg.stripe_count, s};
        uses = true;
      }
    }
    if (uses) move.users.push_back(lv.name);
    const ConfigNode* lv_node = lvs->find(lv.name);
    if (!lv_node) return fail(fmt::format("{}: LV {} is not in the metadata tree", vg_where, lv.name));
    VGFS_RETURN_IF_ERROR(
        check_other_references(*lv_node, move.lv, fmt::format("{}: LV {}", vg_where, lv.name), false));
  }
  for (size_t i = 0; i < move.pieces.size(); ++i)
    if (!named[i])
      return fail(fmt::format("{}: LV {} {} is named by no LV (nothing would use the extents it moves)", vg_where,
                              move.lv, move.pieces[i].segment));
  return move;
}

namespace {

// Whether `second` continues `first` on the same PVs as LVM2 merges
// striped segments: both striped with the same stripes and stripe size,
// every leg on the same PV right after the first's leg, and every other key
// (tags, ...) equal.
bool can_merge(const ConfigNode& first, const ConfigNode& second, const std::set<std::string>& pv_keys) {
  for (const ConfigNode* n : {&first, &second})
    if (string_value(*n, "type") != std::optional<std::string>("striped")) return false;
  const std::optional<int64_t> stripes = int_value(first, "stripe_count");
  const std::optional<int64_t> count = int_value(first, "extent_count");
  if (!stripes || *stripes <= 0 || !count || int_value(second, "stripe_count") != stripes) return false;
  const ConfigNode* a = first.find("stripes");
  const ConfigNode* b = second.find("stripes");
  if (!a || !b || a->values.size() != b->values.size() || a->values.size() != static_cast<size_t>(2 * *stripes))
    return false;
  const int64_t leg = *count / *stripes;
  for (size_t i = 0; i < a->values.size(); i += 2) {
    if (a->values[i].kind != ConfigValue::Kind::kString || !pv_keys.count(a->values[i].text)) return false;
    if (!(a->values[i] == b->values[i])) return false;
    int64_t end = 0;
    if (a->values[i + 1].kind != ConfigValue::Kind::kInt || b->values[i + 1].kind != ConfigValue::Kind::kInt ||
        __builtin_add_overflow(a->values[i + 1].integer, leg, &end) || end != b->values[i + 1].integer)
      return false;
  }
  auto others = [](const ConfigNode& n) {
    std::vector<ConfigNode> out;
    for (const ConfigNode& c : n.children)
      if (c.key != "start_extent" && c.key != "extent_count" && c.key != "stripes") out.push_back(c);
    return out;
  };
  return others(first) == others(second);
}

// Sorts the LV's segments by LE, merges what LVM2 would merge (lv_merge_segments),
// names them segment1..N and sets segment_count.
Status merge_segments(ConfigNode& lv, const std::set<std::string>& pv_keys, const std::string& where) {
  std::vector<ConfigNode> segs;
  std::vector<ConfigNode> rest;
  size_t first_seg = SIZE_MAX;
  for (ConfigNode& c : lv.children) {
    if (c.section) {
      if (first_seg == SIZE_MAX) first_seg = rest.size();
      segs.push_back(std::move(c));
    } else {
      rest.push_back(std::move(c));
    }
  }
  for (const ConfigNode& s : segs)
    if (!int_value(s, "start_extent") || !int_value(s, "extent_count"))
      return fail(fmt::format("{} {}: start_extent or extent_count is not an integer", where, s.key));
  std::stable_sort(segs.begin(), segs.end(), [](const ConfigNode& a, const ConfigNode& b) {
    return *int_value(a, "start_extent") < *int_value(b, "start_extent");
  });
  std::vector<ConfigNode> merged;
  for (ConfigNode& s : segs) {
    ConfigNode* count = merged.empty() ? nullptr : child(merged.back(), "extent_count");
    int64_t sum = 0;
    if (count && can_merge(merged.back(), s, pv_keys) &&
        !__builtin_add_overflow(count->values[0].integer, *int_value(s, "extent_count"), &sum)) {
      count->values[0].integer = sum;
      continue;
    }
    merged.push_back(std::move(s));
  }
  for (size_t i = 0; i < merged.size(); ++i) merged[i].key = fmt::format("segment{}", i + 1);
  if (first_seg == SIZE_MAX) first_seg = rest.size();
  rest.insert(rest.begin() + static_cast<std::ptrdiff_t>(first_seg), std::make_move_iterator(merged.begin()),
              std::make_move_iterator(merged.end()));
  lv.children = std::move(rest);
  ConfigNode* count = child(lv, "segment_count");
  if (!count || count->section || count->values.size() != 1)
    return fail(fmt::format("{}: segment_count is missing", where));
  count->values[0] = ConfigValue::of_int(static_cast<int64_t>(merged.size()));
  return Status::Ok();
}

void drop_flag(ConfigNode& section, std::string_view flag) {
  ConfigNode* status = child(section, "status");
  if (!status || status->section) return;
  std::erase_if(status->values, [&](const ConfigValue& v) {
    return v.kind == ConfigValue::Kind::kString && v.text == flag;
  });
}

// Puts each piece on its destination (to_destination[i]) or its source.
Result<ConfigTree> resolve(const ConfigTree& input, const Pvmove& move, const std::vector<bool>& to_destination) {
  ConfigTree tree = input;
  ConfigNode* vgn = vg_section(tree);
  ConfigNode* lvs = vgn ? child(*vgn, "logical_volumes") : nullptr;
  const ConfigNode* pvs = vgn ? vgn->find("physical_volumes") : nullptr;
  if (!lvs || !pvs || !lvs->section || !child(*lvs, move.lv))
    return fail(fmt::format("the metadata holds no LV {}: not the tree the pvmove was found in", move.lv));
  const std::string vg_where = fmt::format("VG {}", vgn->key);
  std::set<std::string> pv_keys;
  for (const ConfigNode& p : pvs->children) pv_keys.insert(p.key);
  std::map<std::string_view, ConfigNode*> lv_nodes;
  for (ConfigNode& l : lvs->children) lv_nodes.emplace(l.key, &l);
  auto lv_node = [&](const std::string& name) -> ConfigNode* {
    const auto it = lv_nodes.find(name);
    return it == lv_nodes.end() ? nullptr : it->second;
  };

  for (size_t i = 0; i < move.pieces.size(); ++i) {
    const PvmovePiece& p = move.pieces[i];
    const std::string where = fmt::format("{}: LV {} {}", vg_where, p.user.lv, p.user.segment);
    ConfigNode* lv = lv_node(p.user.lv);
    ConfigNode* seg = lv ? child(*lv, p.user.segment) : nullptr;
    ConfigNode* stripes = seg ? child(*seg, "stripes") : nullptr;
    const size_t at = 2 * p.user.stripe;
    if (!stripes || stripes->values.size() < at + 2 || stripes->values[at].text != move.lv ||
        stripes->values[at].kind != ConfigValue::Kind::kString ||
        stripes->values[at + 1] != ConfigValue::of_int(static_cast<int64_t>(p.le)))
      return fail(fmt::format("{}: stripe {} does not name {} LE {}: not the tree the pvmove was found in", where,
                              p.user.stripe, move.lv, p.le));
    const StripeArea& to = to_destination[i] ? p.destination : p.source;
    stripes->values[at] = ConfigValue::of_string(to.pv);
    stripes->values[at + 1] = ConfigValue::of_int(static_cast<int64_t>(to.pe));
  }
  // LVM2 unlocks and merges only the LVs it remapped.
  for (const std::string& name : move.users) {
    ConfigNode* lv = lv_node(name);
    if (!lv) return fail(fmt::format("{}: LV {} is missing", vg_where, name));
    drop_flag(*lv, "LOCKED");
    VGFS_RETURN_IF_ERROR(merge_segments(*lv, pv_keys, fmt::format("{}: LV {}", vg_where, name)));
  }
  std::erase_if(lvs->children, [&](const ConfigNode& c) { return c.key == move.lv; });
  // LVM2 2.03 does not set it, older versions did.
  drop_flag(*vgn, "PVMOVE");

  // The promise of the header: the result is a VG LVM2 and vgfs accept.
  Result<Lvm2Vg> check = read_vg(tree, "the finished pvmove");
  if (!check.ok()) return check.status();
  return tree;
}

}  // namespace

Result<ConfigTree> finish_pvmove(const ConfigTree& tree, const Pvmove& move, const std::vector<bool>& copied) {
  if (copied.size() != move.pieces.size())
    return fail(fmt::format("{} has {} pieces but {} were said copied or not", move.lv, move.pieces.size(),
                            copied.size()));
  std::vector<bool> to_destination(move.pieces.size());
  for (size_t i = 0; i < move.pieces.size(); ++i) to_destination[i] = copied[i] || move.pieces[i].moved();
  return resolve(tree, move, to_destination);
}

Result<ConfigTree> abort_pvmove(const ConfigTree& tree, const Pvmove& move) {
  return resolve(tree, move, std::vector<bool>(move.pieces.size(), false));
}

Result<VgMetadata> without_pvmove(const VgMetadata& md) {
  // Through the text: the pvmove LV and its users are kept there verbatim
  // (LvInfo::unsupported), and what comes out is decoded and checked as any
  // text read from a PV.
  Result<Lvm2Vg> vg = read_vg_text(encode_vg_text(md), "the metadata with the pvmove");
  if (!vg.ok()) return vg.status();
  Result<Pvmove> move = find_pvmove(*vg);
  if (!move.ok()) return move.status();
  Result<ConfigTree> aborted = abort_pvmove(vg->tree, *move);
  if (!aborted.ok()) return aborted.status();
  return decode_vg_text(emit_config(*aborted), "the metadata without the pvmove");
}

std::vector<PvmoveCopy> pvmove_copy_list(const Pvmove& move) {
  std::vector<PvmoveCopy> out;
  for (size_t i = 0; i < move.pieces.size(); ++i) {
    const PvmovePiece& p = move.pieces[i];
    if (p.moved()) continue;
    out.push_back(PvmoveCopy{i, StripeArea{p.source.pv, p.source.pe + p.extents_moved},
                             StripeArea{p.destination.pv, p.destination.pe + p.extents_moved},
                             p.extent_count - p.extents_moved});
  }
  return out;
}

}  // namespace vgfs::lvm2
