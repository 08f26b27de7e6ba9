// Unit tests of the typed, checked view of LVM2 VG metadata
// (include/vgfs/lvm2_metadata.h).
#include <doctest/doctest.h>

#include <string>

#include "lvm2_fixture.h"
#include "vgfs/lvm2_label.h"
#include "vgfs/lvm2_metadata.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

// The fixture text with `from` replaced by `to` (which must be there).
std::string edited(const std::string& from, const std::string& to) {
  std::string t = lvm2_fixture::kVgText;
  size_t at = t.find(from);
  REQUIRE_MESSAGE(at != std::string::npos, from);
  return t.replace(at, from.size(), to);
}

std::string error_of(const std::string& text) {
  Result<Lvm2Vg> vg = read_vg_text(text, "t");
  REQUIRE_FALSE(vg.ok());
  CHECK(vg.status().code() == EINVAL);
  return vg.status().message();
}

const Lvm2Lv* lv(const Lvm2Vg& vg, const std::string& name) {
  for (const Lvm2Lv& l : vg.lvs)
    if (l.name == name) return &l;
  return nullptr;
}

}  // namespace

TEST_CASE("lvm2 metadata: LVM2's own VG") {
  Result<Lvm2Vg> r = read_vg_text(lvm2_fixture::kVgText, "t");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const Lvm2Vg& vg = *r;
  CHECK(vg.name == "vgp");
  CHECK(format_lvm2_uuid(vg.uuid) == "fBi812-E1j9-oB3d-5Xoz-P1b5-CSoC-aJHqBn");
  CHECK(vg.seqno == 9);
  CHECK(vg.format == "lvm2");
  CHECK(vg.has_status("WRITE"));
  CHECK(vg.extent_size == 8192);
  CHECK(vg.max_lv == 0);
  CHECK(vg.system_id.empty());
  REQUIRE(vg.pvs.size() == 2);
  CHECK(vg.pvs[1].key == "pv1");
  CHECK(vg.pvs[1].device_hint == "/dev/loop2");
  CHECK(vg.pvs[1].pe_start == 2048);
  CHECK(vg.pvs[1].pe_count == 15);
  CHECK(vg.pvs[1].dev_size == 131072);
  REQUIRE(vg.lvs.size() == 5);

  const Lvm2Lv* l1 = lv(vg, "l1");
  REQUIRE(l1);
  CHECK(l1->visible());
  CHECK(l1->unsupported().empty());
  REQUIRE(l1->segments.size() == 1);
  CHECK(l1->segments[0].stripe_count == 1);
  CHECK(l1->segments[0].stripes == std::vector<StripeArea>{{"pv0", 0}});

  const Lvm2Lv* st = lv(vg, "st");
  REQUIRE(st);
  REQUIRE(st->segments.size() == 1);
  const Lvm2Segment& s = st->segments[0];
  CHECK(s.type == "striped");
  CHECK(s.stripe_count == 2);
  CHECK(s.stripe_size == 128);
  CHECK(s.extent_count == 4);
  CHECK(s.stripes == std::vector<StripeArea>{{"pv0", 2}, {"pv1", 0}});

  const Lvm2Lv* pool = lv(vg, "pool");
  REQUIRE(pool);
  CHECK(pool->unsupported().find("thin provisioning (thin-pool)") == 0);
  const Lvm2Lv* tdata = lv(vg, "pool_tdata");
  REQUIRE(tdata);
  CHECK_FALSE(tdata->visible());
  CHECK(tdata->unsupported().empty());
}

TEST_CASE("lvm2 metadata: a segment type vgfs does not serve says why") {
  std::string t = edited("type = \"striped\"\nstripe_count = 1\n\nstripes = [\n\"pv0\", 0\n]",
                         "type = \"raid1\"\nregion_size = 1024");
  Result<Lvm2Vg> r = read_vg_text(t, "t");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(lv(*r, "l1")->unsupported() == "RAID (raid1) is not served");
  r = read_vg_text(edited("type = \"thin-pool\"", "type = \"striped+NEWFLAG\""), "t");
  REQUIRE(r.ok());
  CHECK(lv(*r, "pool")->unsupported().find("carries flags") != std::string::npos);
  r = read_vg_text(edited("type = \"thin-pool\"", "type = \"future-type\""), "t");
  REQUIRE(r.ok());
  CHECK(lv(*r, "pool")->unsupported() == "unknown segment type future-type");
}

TEST_CASE("lvm2 metadata: hostile and inconsistent texts are refused with the place") {
  CHECK(error_of(edited("seqno = 9", "seqno = 4294967296")).find("t: VG vgp: seqno = 4294967296 is out of range") == 0);
  CHECK(error_of(edited("seqno = 9\n", "")) == "t: VG vgp: seqno is missing");
  CHECK(error_of(edited("status = [\"RESIZEABLE\", \"READ\", \"WRITE\"]", "status = [\"RESIZEABLE\", \"FOO\"]")) ==
        "t: VG vgp: unknown status flag \"FOO\"");
  CHECK(error_of(edited("extent_size = 8192", "extent_size = 0")) == "t: VG vgp: extent_size is 0");
  CHECK(error_of(edited("vgp {", "-vg {")).find("VG name \"-vg\" is not a valid LVM2 name") != std::string::npos);
  CHECK(error_of(edited("contents = \"Text Format Volume Group\"", "contents = \"x\"")).find("contents") !=
        std::string::npos);
  CHECK(error_of(edited("format = \"lvm2\"", "format = \"lvm1\"")).find("format \"lvm1\"") != std::string::npos);
  CHECK(error_of(edited("id = \"Wv0vT3-HPYR-GxYV-rCfJ-Sry6-8d0I-gT00hX\"", "id = \"short\"")).find("PV pv0: id") !=
        std::string::npos);
  CHECK(error_of(edited("id = \"tn46sK-UUf0-XWq8-3klU-Dfgn-6Cru-qYGB0p\"",
                        "id = \"Wv0vT3-HPYR-GxYV-rCfJ-Sry6-8d0I-gT00hX\""))
            .find("PV pv1: has the uuid of PV pv0") != std::string::npos);
  CHECK(error_of(edited("pe_count = 15", "pe_count = 17")).find("end past dev_size") != std::string::npos);
  // Segments: counts, gaps, areas.
  CHECK(error_of(edited("segment_count = 1\n\nsegment1 {\nstart_extent = 0\nextent_count = 2\n\ntype = \"striped\"",
                        "segment_count = 2\n\nsegment1 {\nstart_extent = 0\nextent_count = 2\n\ntype = \"striped\""))
            .find("segment_count is 2 but it has 1 segments") != std::string::npos);
  CHECK(error_of(edited("start_extent = 0\nextent_count = 4", "start_extent = 1\nextent_count = 4"))
            .find("LV st: segment1 starts at LE 1, expected LE 0") != std::string::npos);
  CHECK(error_of(edited("extent_count = 4", "extent_count = 5")).find("not a multiple of stripe_count 2") !=
        std::string::npos);
  CHECK(error_of(edited("stripe_count = 2", "stripe_count = 4")).find("stripe_count is 4 but stripes lists 2") !=
        std::string::npos);
  CHECK(error_of(edited("\"pv1\", 0\n]", "\"pv9\", 0\n]")).find("names volume pv9, which is neither") !=
        std::string::npos);
  CHECK(error_of(edited("\"pv1\", 0\n]", "\"pv1\", 14\n]")).find("PEs 14-15 of pv1 are past its 15 extents") !=
        std::string::npos);
  CHECK(error_of(edited("\"pv1\", 0\n]", "\"pv1\", 4294967296\n]")).find("is not an integer 0-4294967295") !=
        std::string::npos);
  // st's first leg (pv0 PEs 2-3) moved onto l1's PEs 0-1.
  CHECK(error_of(edited("\"pv0\", 2,", "\"pv0\", 1,")).find("PV pv0: PE 1 is used by LV l1 segment1 and by LV st segment1") !=
        std::string::npos);
  CHECK(error_of(edited("stripe_size = 128", "stripe_size = 0")).find("stripe_size is 0") != std::string::npos);
  CHECK(error_of(edited("\"pv0\", 0\n]", "\"pv0\"\n]")).find("pairs") != std::string::npos);
}

TEST_CASE("lvm2 metadata: names") {
  CHECK(valid_lvm2_name("vg0"));
  CHECK(valid_lvm2_name("a+b_c.d-e"));
  CHECK_FALSE(valid_lvm2_name(""));
  CHECK_FALSE(valid_lvm2_name("-a"));
  CHECK_FALSE(valid_lvm2_name(".."));
  CHECK_FALSE(valid_lvm2_name("a/b"));
  CHECK_FALSE(valid_lvm2_name(std::string(129, 'a')));
  CHECK(valid_lvm2_name(std::string(128, 'a')));
}
