// Fuzz target: the command line's parsers of user text (src/cli/): the -o
// field lists, --units and the report options of `vgfs lvs|pvs|vgs`, the
// -L/-l sizes resolved against a VG, the yes/no answer reader, and the
// arguments mount(8) gives the helper mount.fuse.vgfs (src/cli/mount_helper.h).
//
// Oracle: a report is an error or text; a JSON report always parses as
// JSON, with string values only; a resolved size is a positive multiple of
// the extent size for -l, and never above what the VG could hold for -l; the
// helper's arguments become `mount SOURCE MOUNTPOINT` and -o pairs, or one
// error line.
#include <nlohmann/json.hpp>

#include <cstdio>

#include "cli/confirm.h"
#include "cli/lv_size.h"
#include "cli/mount_helper.h"
#include "cli/report.h"
#include "fuzz_util.h"
#include "vgfs/units.h"

using namespace vgfs;

namespace {

const nlohmann::json& sample_vg() {
  static const nlohmann::json vg = [] {
    using nlohmann::json;
    json pv0 = {{"name", "pv0"}, {"uuid", "u0"}, {"path", "/d/p\\x01"}, {"pe_start", 1048576}, {"pe_count", 15},
                {"pe_size", 4194304}, {"free_pe", 5},
                {"map", {{{"pe", "0-9"}, {"lv", "lv0"}, {"le", "0-9"}}, {{"pe", "10-14"}, {"free", true}}}}};
    json lv0 = {{"name", "lv0"}, {"uuid", "u1"}, {"mode", "0600"}, {"size", 41943040}, {"le_count", 10},
                {"map", {{{"le", "0-9"}, {"pv", "pv0"}, {"pe", "0-9"}}}}};
    return json{{"name", "vg0"}, {"uuid", "u2"}, {"extent_size", 4194304}, {"seqno", 3}, {"size", 62914560},
                {"free", 20971520}, {"pvs", {pv0}}, {"lvs", {lv0}}, {"jobs", json::array()}};
  }();
  return vg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  std::string_view text(reinterpret_cast<const char*>(data) + (size ? 1 : 0), size ? size - 1 : 0);
  const std::string s(text);

  cli::ReportOptions o;
  o.kind = static_cast<cli::ReportKind>(flags % 3);
  o.fields = {s};
  o.json = flags & 4;
  o.suffix = flags & 8;
  o.headings = flags & 16;
  o.separator_given = flags & 32;
  o.maps = flags & 64;
  if (flags & 128) o.units = s.substr(0, 2);
  Result<std::string> report = cli::render_report(sample_vg(), o);
  if (!report.ok()) {
    fuzz::check_error(report.status());
  } else if (o.json) {
    nlohmann::json parsed = nlohmann::json::parse(*report, nullptr, false);
    FUZZ_CHECK(!parsed.is_discarded(), "a JSON report that does not parse");
    for (const auto& row : parsed["report"][0].begin().value())
      for (const auto& [k, v] : row.items()) FUZZ_CHECK(v.is_string(), "a JSON report value that is not a string");
  }

  for (const char* verb : {"lvcreate", "lvextend", "lvreduce"}) {
    cli::LvSizeRequest r{verb, "lv0", {}, {}, {}};
    if (flags & 1) r.size = s;
    else r.extents = s;
    Result<cli::LvSize> resolved = cli::resolve_lv_size(r, sample_vg());
    if (!resolved.ok()) {
      fuzz::check_error(resolved.status());
    } else if (r.extents) {
      FUZZ_CHECK(resolved->bytes > 0 && resolved->bytes % 4194304 == 0, "-l: not whole extents");
    }
  }

  std::vector<std::string> args;  // words split at blanks, as argv
  for (size_t at = 0; at <= s.size();) {
    size_t end = s.find(' ', at);
    if (end == std::string::npos) end = s.size();
    args.push_back(s.substr(at, end - at));
    at = end + 1;
  }
  Result<cli::HelperCommand> helper = cli::mount_helper_command(args);
  if (!helper.ok()) {
    fuzz::check_error(helper.status());
  } else {
    const std::vector<std::string>& a = helper->args;
    FUZZ_CHECK(a.size() >= 3 && a.size() % 2 == 1 && a[0] == "mount", "helper: not a vgfs mount line");
    for (size_t i = 3; i < a.size(); i += 2) FUZZ_CHECK(a[i] == "-o", "helper: an option that is not -o");
  }

  std::string copy = s;
  if (std::FILE* f = fmemopen(copy.data(), copy.size(), "r")) {
    std::FILE* sink = std::fopen("/dev/null", "w");
    if (sink) {
      (void)cli::confirm("Q?", f, sink);
      std::fclose(sink);
    }
    std::fclose(f);
  }
  return 0;
}
