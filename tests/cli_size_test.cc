// Unit tests of the command line's LVM2 forms: -l EXTENTS
// (parse_lvm_extents), size resolution against a VG (src/cli/lv_size.h) and
// LVM2's size display (src/cli/lvm_display.h). The expected values were
// checked against LVM2 2.03.16's lvcreate/lvextend/lvreduce/lvs on a loop
// device (docs/cli.md).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cli/lv_size.h"
#include "cli/lvm_display.h"
#include "vgfs/units.h"

using namespace vgfs;
using namespace vgfs::cli;

namespace {

constexpr uint64_t kExtent = 4 * MiB;

// A VG of 25 extents of 4 MiB on two PVs (15 + 10), with LV a of 2 extents
// on pv0 and LV b of 12 extents (3 on pv0, 9 on pv1): 11 extents free,
// 10 on pv0 and 1 on pv1.
nlohmann::json sample_vg() {
  return {{"name", "vg0"},
          {"extent_size", kExtent},
          {"size", 25 * kExtent},
          {"free", 11 * kExtent},
          {"pvs", {{{"name", "pv0"}, {"pe_count", 15}, {"free_pe", 10}}, {{"name", "pv1"}, {"pe_count", 10}, {"free_pe", 1}}}},
          {"lvs", {{{"name", "a"}, {"le_count", 2}}, {{"name", "b"}, {"le_count", 12}}}}};
}

LvSize resolve(const std::string& verb, const std::string& lv, const char* size, const char* extents,
               std::vector<std::string> pvs = {}) {
  LvSizeRequest r{verb, lv, {}, {}, std::move(pvs)};
  if (size) r.size = size;
  if (extents) r.extents = extents;
  Result<LvSize> out = resolve_lv_size(r, sample_vg());
  REQUIRE_MESSAGE(out.ok(), out.status().message());
  return *out;
}

std::string refused(const std::string& verb, const std::string& lv, const char* size, const char* extents) {
  LvSizeRequest r{verb, lv, {}, {}, {}};
  if (size) r.size = size;
  if (extents) r.extents = extents;
  Result<LvSize> out = resolve_lv_size(r, sample_vg());
  REQUIRE(!out.ok());
  CHECK(out.status().code() != 0);
  return out.status().message();
}

}  // namespace

TEST_CASE("parse_lvm_extents: counts, signs and percentages") {
  Result<LvmExtents> x = parse_lvm_extents("100");
  REQUIRE(x.ok());
  CHECK(x->sign == 0);
  CHECK(x->base == 0);
  CHECK(x->number == 100);
  x = parse_lvm_extents("+10");
  REQUIRE(x.ok());
  CHECK(x->sign == '+');
  CHECK(x->number == 10);
  x = parse_lvm_extents("100%FREE");
  REQUIRE(x.ok());
  CHECK(x->base == 'F');
  x = parse_lvm_extents("50%VG");
  REQUIRE(x.ok());
  CHECK(x->base == 'V');
  CHECK(x->number == 50);
  x = parse_lvm_extents("-5%PVS");
  REQUIRE(x.ok());
  CHECK(x->base == 'P');
  CHECK(x->sign == '-');
  for (const char* bad : {"", "+", "x", "1.5", "10%", "10%free", "101%VG", "10%ORIGIN", "1%VGX", "%VG", "99999999999999999999"}) {
    INFO(bad);
    Result<LvmExtents> r = parse_lvm_extents(bad);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("bad extent count") != std::string::npos);
  }
}

TEST_CASE("lv sizes: -L sends the size exact; the control file rounds it and says so") {
  LvSize s = resolve("lvcreate", "c", "5M", nullptr);
  CHECK(s.bytes == 5 * MiB);
  CHECK(s.notes.empty());
  CHECK(resolve("lvcreate", "c", "1.5g", nullptr).bytes == 1536 * MiB);
  CHECK(resolve("lvextend", "a", "+1M", nullptr).bytes == 9 * MiB);  // 8 MiB + 1 MiB
  CHECK(resolve("lvreduce", "b", "5M", nullptr).bytes == 5 * MiB);
  CHECK(resolve("lvreduce", "b", "-1M", nullptr).bytes == 47 * MiB);
  CHECK(resolve("lvreduce", "b", "-4M", nullptr).bytes == 44 * MiB);
}

TEST_CASE("lv sizes: -l in extents and percentages, rounded as LVM2 rounds") {
  CHECK(resolve("lvcreate", "c", nullptr, "3").bytes == 3 * kExtent);
  CHECK(resolve("lvcreate", "c", nullptr, "42%VG").bytes == 10 * kExtent);    // 10.5 rounds down
  CHECK(resolve("lvcreate", "c", nullptr, "50%FREE").bytes == 5 * kExtent);   // 5.5 rounds down
  CHECK(resolve("lvcreate", "c", nullptr, "100%FREE").bytes == 11 * kExtent);
  CHECK(resolve("lvcreate", "c", nullptr, "100%PVS").bytes == 11 * kExtent);  // no PV named: all
  CHECK(resolve("lvcreate", "c", nullptr, "100%PVS", {"pv1"}).bytes == 1 * kExtent);
  CHECK(resolve("lvcreate", "c", nullptr, "50%PVS", {"pv0"}).bytes == 5 * kExtent);
  CHECK(resolve("lvextend", "a", nullptr, "+3").bytes == 5 * kExtent);
  CHECK(resolve("lvextend", "a", nullptr, "10").bytes == 10 * kExtent);
  CHECK(resolve("lvextend", "a", nullptr, "+100%FREE").bytes == 13 * kExtent);
  CHECK(resolve("lvextend", "a", nullptr, "100%FREE").bytes == 13 * kExtent);  // adds, as LVM2 does
  CHECK(resolve("lvextend", "a", nullptr, "50%FREE").bytes == 7 * kExtent);
  CHECK(resolve("lvreduce", "b", nullptr, "-1").bytes == 11 * kExtent);
  CHECK(resolve("lvreduce", "b", nullptr, "10%VG").bytes == 3 * kExtent);  // 2.5 rounds up when shrinking
  // A percentage is an upper limit: 100%VG of a VG with 11 extents free.
  LvSize s = resolve("lvextend", "a", nullptr, "100%VG");
  CHECK(s.bytes == 13 * kExtent);
  REQUIRE(s.notes.size() == 1);
  CHECK(s.notes[0] == "Reducing 100%VG to remaining free space 44.00 MiB in VG.");
  s = resolve("lvcreate", "c", nullptr, "60%VG");
  CHECK(s.bytes == 11 * kExtent);
  CHECK(s.notes.size() == 1);
}

TEST_CASE("lv sizes: what is refused, and why") {
  CHECK(refused("lvcreate", "c", "+1M", nullptr).find("is for lvextend") != std::string::npos);
  CHECK(refused("lvextend", "a", "-1M", nullptr).find("is for lvreduce") != std::string::npos);
  CHECK(refused("lvcreate", "c", nullptr, "-1").find("is for lvreduce") != std::string::npos);
  CHECK(refused("lvreduce", "a", "-8M", nullptr).find("cannot shrink by -8M") != std::string::npos);
  CHECK(refused("lvreduce", "a", nullptr, "-2").find("cannot shrink by -2") != std::string::npos);
  CHECK(refused("lvextend", "nosuch", "+1M", nullptr).find("no LV nosuch in VG vg0") != std::string::npos);
  CHECK(refused("lvcreate", "c", nullptr, "0").find("gives 0 extents") != std::string::npos);
  CHECK(refused("lvcreate", "c", "0", nullptr).find("is 0") != std::string::npos);
  CHECK(refused("lvcreate", "c", nullptr, "1%FREE").find("gives 0 extents") != std::string::npos);
  CHECK(refused("lvcreate", "c", "1M", "1").find("not both") != std::string::npos);
  CHECK(refused("lvcreate", "c", nullptr, nullptr).find("no size given") != std::string::npos);
  CHECK(refused("lvcreate", "c", "3MB", nullptr).find("bad size \"3MB\"") != std::string::npos);
  CHECK(refused("lvextend", "a", "+16E", nullptr).find("too large") != std::string::npos);
  LvSizeRequest r{"lvcreate", "c", {}, std::string("10%PVS"), {"pv9"}};
  Result<LvSize> out = resolve_lv_size(r, sample_vg());
  REQUIRE(!out.ok());
  CHECK(out.status().message() == "lvcreate: no PV pv9 in VG vg0");
}

TEST_CASE("lvm_display_size: LVM2's units, decimals and '<'") {
  auto letter = [](uint64_t bytes, char unit, bool suffix = true) {
    return lvm_display_size(bytes, unit, suffix, SuffixForm::kLetter);
  };
  CHECK(letter(100 * MiB, 'h') == "100.00m");
  CHECK(letter(100 * MiB, 'r') == "100.00m");
  CHECK(letter(48 * MiB, 'g') == "0.05g");  // LVM2: rounded to nearest, no '<' with a fixed unit
  CHECK(letter(40 * MiB, 'g') == "0.04g");
  CHECK(letter(48 * MiB, 'G') == "0.05G");
  CHECK(letter(48 * MiB, 'b') == "50331648B");
  CHECK(letter(48 * MiB, 's') == "98304S");
  CHECK(letter(48 * MiB, 's', false) == "98304");
  CHECK(letter(100 * MiB, 'k') == "102400.00k");
  CHECK(letter(100 * MiB, 'm', false) == "100.00");
  // 1.499 GiB: shown as 1.50 rounded up, so 'r' marks it '<'; 'h' does not.
  const uint64_t almost = 1536 * MiB - 1 * MiB;
  CHECK(letter(almost, 'r') == "<1.50g");
  CHECK(letter(almost, 'h') == "1.50g");
  CHECK(letter(2 * GiB + 10 * MiB, 'r') == "<2.01g");  // 2.0098 shows rounded up
  CHECK(letter(1000 * 1000 * 1000, 'H') == "1.00G");
  CHECK(letter(1000 * 1000 * 1000, 'h') == "953.67m");
  CHECK(letter(0, 'r') == "0 ");
  CHECK(letter(0, 'g') == "0g");
  CHECK(letter(512, 'h') == "512B");
  CHECK(lvm_display_size(8 * MiB, 'h', true, SuffixForm::kWord) == "8.00 MiB");
  CHECK(lvm_display_size(3 * GiB, 'H', true, SuffixForm::kWord) == "3.22 GB");
  CHECK(check_report_unit("g").ok());
  CHECK(!check_report_unit("x").ok());
  CHECK(!check_report_unit("gg").ok());
}
