// Unit tests of LVM2's unfinished pvmove: find_pvmove, finish_pvmove,
// abort_pvmove and pvmove_copy_list (include/vgfs/lvm2_pvmove.h) on texts
// LVM2 itself wrote (tests/lvm2_pvmove_fixture.h) and hostile edits of them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "lvm2_fixture.h"
#include "lvm2_pvmove_fixture.h"
#include "vgfs/lvm2_metadata.h"
#include "vgfs/lvm2_pvmove.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

// `text` with the first `from` replaced by `to` (which must be there).
std::string edited(std::string text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  return text.replace(at, from.size(), to);
}

Lvm2Vg read(const std::string& text) {
  Result<Lvm2Vg> vg = read_vg_text(text, "t");
  REQUIRE_MESSAGE(vg.ok(), vg.status().message());
  return std::move(*vg);
}

Pvmove find(const Lvm2Vg& vg) {
  Result<Pvmove> m = find_pvmove(vg);
  REQUIRE_MESSAGE(m.ok(), m.status().message());
  return std::move(*m);
}

// find_pvmove's error on `text` (which read_vg accepts).
std::string find_error(const std::string& text) {
  Result<Pvmove> m = find_pvmove(read(text));
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == EINVAL);
  return m.status().message();
}

// The result emitted as LVM2 text and read back, as LVM2 would read it.
Lvm2Vg round_trip(const Result<ConfigTree>& tree) {
  REQUIRE_MESSAGE(tree.ok(), tree.status().message());
  const std::string text = emit_config(*tree);
  Result<ConfigTree> again = parse_config(text, "emitted");
  REQUIRE_MESSAGE(again.ok(), again.status().message());
  CHECK(*again == *tree);
  return read(text);
}

const Lvm2Lv* lv(const Lvm2Vg& vg, const std::string& name) {
  for (const Lvm2Lv& l : vg.lvs)
    if (l.name == name) return &l;
  return nullptr;
}

// An LV's segments as "pv:PE,pv:PE+COUNT" joined by spaces.
std::string layout(const Lvm2Vg& vg, const std::string& name) {
  const Lvm2Lv* l = lv(vg, name);
  REQUIRE_MESSAGE(l, name);
  std::string out;
  for (const Lvm2Segment& s : l->segments) {
    if (!out.empty()) out += " ";
    for (size_t i = 0; i < s.stripes.size(); ++i)
      out += (i ? "," : "") + s.stripes[i].pv + ":" + std::to_string(s.stripes[i].pe);
    out += "+" + std::to_string(s.extent_count);
  }
  return out;
}

bool locked(const Lvm2Vg& vg, const std::string& name) {
  for (const std::string& f : lv(vg, name)->status)
    if (f == "LOCKED") return true;
  return false;
}

const std::string kWhole = fixture::kPvmoveWholePv;
const std::string kSplit = fixture::kPvmoveRangeSplit;

}  // namespace

TEST_CASE("lvm2 pvmove: LVM2's whole-PV move is found piece by piece") {
  const Lvm2Vg vg = read(kWhole);
  const Pvmove m = find(vg);
  CHECK(m.lv == "pvmove0");
  CHECK(m.users == std::vector<std::string>{"lv1", "lv2", "st"});
  REQUIRE(m.pieces.size() == 4);
  const PvmovePiece& p0 = m.pieces[0];
  CHECK(p0.segment == "segment1");
  CHECK(p0.le == 0);
  CHECK(p0.extent_count == 10);
  CHECK(p0.extents_moved == 0);
  CHECK_FALSE(p0.moved());
  CHECK(p0.source == StripeArea{"pv0", 0});
  CHECK(p0.destination == StripeArea{"pv2", 0});
  CHECK(p0.user.lv == "lv1");
  CHECK(p0.user.segment == "segment1");
  CHECK(m.pieces[1].source == StripeArea{"pv0", 15});
  CHECK(m.pieces[1].destination == StripeArea{"pv2", 10});
  CHECK(m.pieces[1].user.segment == "segment2");
  CHECK(m.pieces[2].user.lv == "lv2");
  // The striped LV: stripe 0 of its 2 (4 extents each) is on the move.
  const PvmovePiece& p3 = m.pieces[3];
  CHECK(p3.le == 18);
  CHECK(p3.extent_count == 4);
  CHECK(p3.source == StripeArea{"pv0", 18});
  CHECK(p3.user.lv == "st");
  CHECK(p3.user.stripe == 0);
  CHECK(p3.user.stripe_count == 2);
  CHECK(p3.user.extent_count == 8);

  const std::vector<PvmoveCopy> copies = pvmove_copy_list(m);
  REQUIRE(copies.size() == 4);
  CHECK(copies[1].piece == 1);
  CHECK(copies[1].source == StripeArea{"pv0", 15});
  CHECK(copies[1].destination == StripeArea{"pv2", 10});
  CHECK(copies[1].count == 3);
}

TEST_CASE("lvm2 pvmove: finishing puts every LV on the destination and merges as LVM2 does") {
  const Lvm2Vg vg = read(kWhole);
  const Pvmove m = find(vg);
  const Lvm2Vg done = round_trip(finish_pvmove(vg.tree, m, {true, true, true, true}));
  CHECK(lv(done, "pvmove0") == nullptr);
  CHECK(done.lvs.size() == 3);
  // pv2:0-9 and pv2:10-12 are contiguous: one segment, as lv_merge_segments makes it.
  CHECK(layout(done, "lv1") == "pv2:0+13");
  CHECK(layout(done, "lv2") == "pv2:13+5");
  CHECK(layout(done, "st") == "pv2:18,pv1:0+8");
  for (const char* name : {"lv1", "lv2", "st"}) CHECK_FALSE(locked(done, name));
  const ConfigNode* lv1 = done.tree.top[0].find("logical_volumes")->find("lv1");
  CHECK(lv1->find("segment_count")->values[0].integer == 1);
  CHECK(lv1->find("segment1") != nullptr);
  CHECK(lv1->find("segment2") == nullptr);
  CHECK(*lv1->find("creation_time") == *vg.tree.top[0].find("logical_volumes")->find("lv1")->find("creation_time"));
  CHECK(lv1->find("segment1")->find("extent_count")->values[0].integer == 13);
  // Every key outside logical_volumes is kept as it was.
  for (size_t i = 0; i < vg.tree.top.size(); ++i) {
    if (!vg.tree.top[i].section) {
      CHECK(done.tree.top[i] == vg.tree.top[i]);
      continue;
    }
    for (const ConfigNode& c : vg.tree.top[i].children)
      if (c.key != "logical_volumes") CHECK(*done.tree.top[i].find(c.key) == c);
  }
  CHECK(done.seqno == vg.seqno);  // the commit bumps it, not the transform
  CHECK_FALSE(find_pvmove(done).ok());
  CHECK(find_pvmove(done).status().code() == ENOENT);
}

TEST_CASE("lvm2 pvmove: aborting puts every LV back on the source") {
  const Lvm2Vg vg = read(kWhole);
  const Lvm2Vg done = round_trip(abort_pvmove(vg.tree, find(vg)));
  CHECK(lv(done, "pvmove0") == nullptr);
  CHECK(layout(done, "lv1") == "pv0:0+10 pv0:15+3");  // not contiguous: two segments
  CHECK(layout(done, "lv2") == "pv0:10+5");
  CHECK(layout(done, "st") == "pv0:18,pv1:0+8");
  CHECK_FALSE(locked(done, "lv1"));
}

TEST_CASE("lvm2 pvmove: pieces not copied stay on the source") {
  const Lvm2Vg vg = read(kWhole);
  const Pvmove m = find(vg);
  const Lvm2Vg done = round_trip(finish_pvmove(vg.tree, m, {true, false, false, true}));
  CHECK(layout(done, "lv1") == "pv2:0+10 pv0:15+3");
  CHECK(layout(done, "lv2") == "pv0:10+5");
  CHECK(layout(done, "st") == "pv2:18,pv1:0+8");
  Result<ConfigTree> wrong_size = finish_pvmove(vg.tree, m, {true});
  REQUIRE_FALSE(wrong_size.ok());
  CHECK(wrong_size.status().message().find("4 pieces") != std::string::npos);
}

TEST_CASE("lvm2 pvmove: extents_moved says what LVM2 already copied") {
  // LVM2 with device-mapper finished the first piece and a third of the
  // second before it stopped.
  std::string text = edited(kWhole, "extents_moved = 0", "extents_moved = 10");
  text = edited(text, "extents_moved = 0", "extents_moved = 1");
  const Lvm2Vg vg = read(text);
  const Pvmove m = find(vg);
  CHECK(m.pieces[0].moved());
  CHECK_FALSE(m.pieces[1].moved());
  const std::vector<PvmoveCopy> copies = pvmove_copy_list(m);
  REQUIRE(copies.size() == 3);
  CHECK(copies[0].piece == 1);
  CHECK(copies[0].source == StripeArea{"pv0", 16});
  CHECK(copies[0].destination == StripeArea{"pv2", 11});
  CHECK(copies[0].count == 2);
  // A finished piece goes to the destination even when the caller copied nothing.
  const Lvm2Vg done = round_trip(finish_pvmove(vg.tree, m, {false, false, false, false}));
  CHECK(layout(done, "lv1") == "pv2:0+10 pv0:15+3");
  // Abort ignores it: the source is intact.
  CHECK(layout(round_trip(abort_pvmove(vg.tree, m)), "lv1") == "pv0:0+10 pv0:15+3");
}

TEST_CASE("lvm2 pvmove: a range move that split a segment is merged back on abort") {
  const Lvm2Vg vg = read(kSplit);
  const Pvmove m = find(vg);
  REQUIRE(m.pieces.size() == 1);
  CHECK(m.users == std::vector<std::string>{"lv1"});
  CHECK(m.pieces[0].source == StripeArea{"pv0", 0});
  CHECK(m.pieces[0].destination == StripeArea{"pv1", 0});
  const Lvm2Vg aborted = round_trip(abort_pvmove(vg.tree, m));
  CHECK(layout(aborted, "lv1") == "pv0:0+10 pv0:15+3");
  CHECK(aborted.tree.top[0].find("logical_volumes")->find("lv1")->find("segment_count")->values[0].integer == 2);
  // lv2 did not take part: its node is untouched.
  CHECK(*aborted.tree.top[0].find("logical_volumes")->find("lv2") ==
        *vg.tree.top[0].find("logical_volumes")->find("lv2"));
  const Lvm2Vg finished = round_trip(finish_pvmove(vg.tree, m, {true}));
  CHECK(layout(finished, "lv1") == "pv1:0+5 pv0:5+5 pv0:15+3");
}

TEST_CASE("lvm2 pvmove: segments merge only when LVM2 would merge them") {
  // A segment tag differs: LVM2 keeps the segments apart.
  const std::string tagged = edited(kSplit, "\"pv0\", 5\n]", "\"pv0\", 5\n]\ntags = [\"x\"]");
  const Lvm2Vg vg = read(tagged);
  CHECK(layout(round_trip(abort_pvmove(vg.tree, find(vg))), "lv1") == "pv0:0+5 pv0:5+5 pv0:15+3");
}

TEST_CASE("lvm2 pvmove: a VG PVMOVE status flag is dropped") {
  const std::string text = edited(kSplit, "status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]",
                                  "status = [\"RESIZEABLE\", \"READ\", \"WRITE\", \"PVMOVE\"]");
  const Lvm2Vg vg = read(text);
  CHECK(vg.has_status("PVMOVE"));
  const Lvm2Vg done = round_trip(abort_pvmove(vg.tree, find(vg)));
  CHECK_FALSE(done.has_status("PVMOVE"));
  CHECK(done.has_status("RESIZEABLE"));
}

TEST_CASE("lvm2 pvmove: no pvmove LV is ENOENT") {
  Result<Pvmove> m = find_pvmove(read(lvm2_fixture::kVgText));
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == ENOENT);
}

TEST_CASE("lvm2 pvmove: hostile pvmove metadata is refused naming the LV and segment") {
  SUBCASE("a mirror with three legs") {
    CHECK(find_error(edited(kWhole, "mirror_count = 2", "mirror_count = 3")) ==
          "VG vg: LV pvmove0 segment1: mirror_count is 3 (pvmove's mirror has 2 legs: source, destination)");
    const std::string legs = edited(kWhole, "\"pv0\", 0,\n\"pv2\", 0\n]", "\"pv0\", 0,\n\"pv2\", 0,\n\"pv1\", 20\n]");
    CHECK(find_error(legs).find("LV pvmove0 segment1: mirrors lists 6 values") != std::string::npos);
  }
  SUBCASE("extents_moved past the segment") {
    CHECK(find_error(edited(kWhole, "extents_moved = 0", "extents_moved = 11")) ==
          "VG vg: LV pvmove0 segment1: extents_moved = 11 is outside 0-10 (its extent_count)");
  }
  SUBCASE("extents_moved missing") {
    CHECK(find_error(edited(kWhole, "extents_moved = 0", "region_size_x = 0")).find("extents_moved is missing") !=
          std::string::npos);
  }
  SUBCASE("a pvmove LV segment that is not a mirror") {
    CHECK(find_error(edited(kSplit, "type = \"mirror\"", "type = \"raid1\"")) ==
          "VG vg: LV pvmove0 segment1: type \"raid1\" (a pvmove LV holds only mirror segments)");
  }
  SUBCASE("an LV pointing past pvmove0's size or across its segments") {
    CHECK(find_error(edited(kWhole, "\"pvmove0\", 13", "\"pvmove0\", 40")) ==
          "VG vg: LV lv2 segment1: stripe 0 names pvmove0 LEs 40-44, which are not exactly one of its segments");
    CHECK(find_error(edited(kWhole, "\"pvmove0\", 13", "\"pvmove0\", 14")).find("LEs 14-18") != std::string::npos);
  }
  SUBCASE("a pvmove segment named twice or by nobody") {
    CHECK(find_error(edited(kSplit, "\"pv0\", 10", "\"pvmove0\", 0")) ==
          "VG vg: LV lv2 segment1: stripe 0 names pvmove0 segment1, which another stripe names too");
    CHECK(find_error(edited(kWhole, "\"pvmove0\", 13", "\"pv1\", 22")) ==
          "VG vg: LV pvmove0 segment3 is named by no LV (nothing would use the extents it moves)");
  }
  SUBCASE("a reference to a pvmove LV that is not there") {
    Result<Lvm2Vg> vg = read_vg_text(edited(kWhole, "\"pvmove0\", 13", "\"pvmove1\", 13"), "t");
    REQUIRE_FALSE(vg.ok());
    CHECK(vg.status().message().find("names volume pvmove1, which is neither a PV nor an LV") != std::string::npos);
  }
  SUBCASE("several pvmove LVs") {
    CHECK(find_error(edited(kSplit, "\"VISIBLE\"]", "\"VISIBLE\", \"PVMOVE\"]")) ==
          "VG vg: holds several pvmove LVs (lv2 and pvmove0); vgfs finishes a VG with one");
  }
  SUBCASE("an atomic pvmove (legs on sub-LVs)") {
    CHECK(find_error(edited(kSplit, "\"pv0\", 0,\n\"pv1\", 0", "\"lv2\", 0,\n\"pv1\", 0")) ==
          "VG vg: LV pvmove0 segment1: the source leg is LV lv2: an atomic pvmove (pvmove --atomic), which vgfs "
          "does not finish");
  }
  SUBCASE("a key other than stripes names the pvmove LV") {
    CHECK(find_error(edited(kSplit, "segment_count = 1", "data_lv = \"pvmove0\"\nsegment_count = 1")) ==
          "VG vg: LV lv2: data_lv names the pvmove LV pvmove0, which only the stripes of a striped segment may do");
  }
}

TEST_CASE("lvm2 pvmove: a move applied to another tree is refused") {
  const Lvm2Vg whole = read(kWhole);
  const Lvm2Vg split = read(kSplit);
  Result<ConfigTree> r = abort_pvmove(split.tree, find(whole));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("not the tree the pvmove was found in") != std::string::npos);
}
