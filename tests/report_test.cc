// Unit tests of the LVM2-style reports of `vgfs lvs|pvs|vgs`
// (src/cli/report.h). The shapes were checked against LVM2 2.03.16's
// lvs/pvs/vgs; integration/test_reports.py compares them with LVM2's own
// output where LVM2 is installed.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cli/report.h"
#include "vgfs/units.h"

using namespace vgfs;
using namespace vgfs::cli;

namespace {

// VG vg0: 4 MiB extents, pv0 (15 extents) and pv1 (10); lv1 of 12 extents
// in two runs, lv0 of 2 (listed first, as vg.json lists by slot), a move
// of lv0 running at 25%.
nlohmann::json sample_vg() {
  using nlohmann::json;
  json pv0 = {{"name", "pv0"}, {"uuid", "u-pv0"}, {"path", "/d/pv0.img"}, {"pe_start", 1048576},
              {"pe_count", 15}, {"pe_size", 4 * MiB}, {"free_pe", 5},
              {"map", {{{"pe", "0-1"}, {"lv", "lv0"}, {"le", "0-1"}}, {{"pe", "2-9"}, {"lv", "lv1"}, {"le", "0-7"}},
                       {{"pe", "10-14"}, {"free", true}}}}};
  json pv1 = {{"name", "pv1"}, {"uuid", "u-pv1"}, {"path", "/d/pv1.img"}, {"pe_start", 1048576},
              {"pe_count", 10}, {"pe_size", 4 * MiB}, {"free_pe", 6},
              {"map", {{{"pe", "0-3"}, {"lv", "lv1"}, {"le", "8-11"}}, {{"pe", "4-9"}, {"free", true}}}}};
  json lv1 = {{"name", "lv1"}, {"uuid", "u-lv1"}, {"mode", "0600"}, {"size", 48 * MiB}, {"le_count", 12},
              {"map", {{{"le", "0-7"}, {"pv", "pv0"}, {"pe", "2-9"}}, {{"le", "8-11"}, {"pv", "pv1"}, {"pe", "0-3"}}}}};
  json lv0 = {{"name", "lv0"}, {"uuid", "u-lv0"}, {"mode", "0600"}, {"size", 8 * MiB}, {"le_count", 2},
              {"map", {{{"le", "0-1"}, {"pv", "pv0"}, {"pe", "0-1"}}}}};
  json job = {{"job", 1}, {"lv", "lv0"}, {"source", "pv0 0-1"}, {"destination", "pv1 4-5"}, {"size", 8 * MiB},
              {"progress_pointer", 2 * MiB}, {"sync_status", "syncing"}};
  return {{"name", "vg0"}, {"uuid", "u-vg0"}, {"extent_size", 4 * MiB}, {"seqno", 7},
          {"size", 100 * MiB}, {"free", 44 * MiB}, {"pvs", {pv0, pv1}}, {"lvs", {lv1, lv0}}, {"jobs", {job}}};
}

std::string report(ReportOptions o) {
  Result<std::string> r = render_report(sample_vg(), o);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return *r;
}

ReportOptions options(ReportKind kind, std::vector<std::string> fields = {}) {
  ReportOptions o;
  o.kind = kind;
  o.fields = std::move(fields);
  return o;
}

}  // namespace

TEST_CASE("report: default columns, sorted by name, aligned as LVM2 aligns") {
  CHECK(report(options(ReportKind::kLv)) ==
        "LV  VG  LSize  #Seg Move Cpy%Sync\n"
        "lv0 vg0  8.00m    1 pv0  25.00\n"
        "lv1 vg0 48.00m    2\n");
  CHECK(report(options(ReportKind::kVg)) ==
        "VG  #PV #LV VSize   VFree\n"
        "vg0   2   2 100.00m 44.00m\n");
  CHECK(report(options(ReportKind::kPv)) ==
        "PV  VG  Fmt  PSize  PFree  Path\n"
        "pv0 vg0 vgfs 60.00m 20.00m /d/pv0.img\n"
        "pv1 vg0 vgfs 40.00m 24.00m /d/pv1.img\n");
}

TEST_CASE("report: segment fields give a row per segment; -o +field appends") {
  CHECK(report(options(ReportKind::kLv, {"lv_name,lv_size,seg_pe_ranges"})) ==
        "LV  LSize  PE_Ranges\n"
        "lv0  8.00m pv0:0-1\n"
        "lv1 48.00m pv0:2-9\n"
        "lv1 48.00m pv1:0-3\n");
  CHECK(report(options(ReportKind::kLv, {"name", "+devices,seg_size_pe"})) ==
        "LV  Devices SSize\n"
        "lv0 pv0(0)      2\n"
        "lv1 pv0(2)      8\n"
        "lv1 pv1(0)      4\n");
  std::string out = report(options(ReportKind::kVg, {"+vg_extent_size,vg_extent_count,vg_free_count"}));
  CHECK(out.find("Ext   #Ext Free") != std::string::npos);
  CHECK(out.find("4.00m   25   11") != std::string::npos);
}

TEST_CASE("report: --units, --nosuffix, --noheadings, --separator") {
  ReportOptions o = options(ReportKind::kLv, {"lv_name,lv_size"});
  o.units = "g";
  CHECK(report(o) == "LV  LSize\nlv0 0.01g\nlv1 0.05g\n");
  o.units = "b";
  o.suffix = false;
  o.headings = false;
  CHECK(report(o) == "lv0  8388608\nlv1 50331648\n");
  o.units = "s";
  o.separator_given = true;
  o.separator = ":";
  CHECK(report(o) == "lv0:16384\nlv1:98304\n");
  o.headings = true;
  o.units = "M";
  o.suffix = true;
  CHECK(report(o) == "LV:LSize\nlv0:8.39M\nlv1:50.33M\n");
  o.units = "x";
  CHECK(!render_report(sample_vg(), o).ok());
}

TEST_CASE("report: LVM2's JSON report, every value a string") {
  ReportOptions o = options(ReportKind::kVg, {"vg_name,pv_count,vg_free"});
  o.json = true;
  const std::string out = report(o);
  CHECK(out ==
        "  {\n"
        "      \"report\": [\n"
        "          {\n"
        "              \"vg\": [\n"
        "                  {\"vg_name\":\"vg0\", \"pv_count\":\"2\", \"vg_free\":\"44.00m\"}\n"
        "              ]\n"
        "          }\n"
        "      ]\n"
        "  }\n");
  nlohmann::json parsed = nlohmann::json::parse(out);
  CHECK(parsed["report"][0]["vg"][0]["pv_count"] == "2");
  o = options(ReportKind::kLv, {"lv_name,seg_pe_ranges"});
  o.json = true;
  parsed = nlohmann::json::parse(report(o));
  REQUIRE(parsed["report"][0]["lv"].size() == 3);
  CHECK(parsed["report"][0]["lv"][2]["seg_pe_ranges"] == "pv1:0-3");
}

TEST_CASE("report: unknown fields are named; -o help lists the fields") {
  Result<std::string> r = render_report(sample_vg(), options(ReportKind::kLv, {"lv_name,lv_sise"}));
  REQUIRE(!r.ok());
  CHECK(r.status().message() == "lvs: unknown field \"lv_sise\" (vgfs lvs -o help lists the fields)");
  r = render_report(sample_vg(), options(ReportKind::kVg, {"lv_name"}));  // an LV field in vgs
  CHECK(!r.ok());
  const std::string help = report_fields_help(ReportKind::kLv);
  CHECK(help.find("seg_pe_ranges") != std::string::npos);
  CHECK(help.find("vg_free") != std::string::npos);
  CHECK(help.find("pv_free") == std::string::npos);
}
