// `vgfs lvs|pvs|vgs` reports in LVM2's form: fields named as LVM2 names
// them (-o lv_name,lv_size,...; -o +field appends), --units, --nosuffix,
// --noheadings, --separator and --reportformat json in the shape of LVM2's
// JSON report ({"report": [{"lv": [{"lv_name": "lv0", ...}]}]}, every value
// a string). docs/cli.md lists the fields and where vgfs differs from LVM2.
//
// Invariant: a report is a pure function of the VG's vg.json
// (src/views/views.h) and the options, so a mount and an offline read of
// the same VG print the same report. Strings of vg.json are escaped already
// and stay so (a name or path can never drive the terminal or forge a row).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "vgfs/status.h"

namespace vgfs::cli {

enum class ReportKind { kLv, kPv, kVg };

struct ReportOptions {
  ReportKind kind = ReportKind::kLv;
  std::vector<std::string> fields;  // each -o, in order; empty: the defaults
  std::string units = "r";          // LVM2's default: human, '<' where rounded up
  bool suffix = true;               // false: --nosuffix
  bool headings = true;             // false: --noheadings
  bool separator_given = false;     // --separator: no alignment, as LVM2
  std::string separator = " ";
  bool json = false;                // --reportformat json
  bool maps = false;                // --maps: each row followed by its runs
  bool all = false;                 // -a: hidden LVs too, named in brackets
};

// The -o help text: every field of `kind`'s report, with its heading.
std::string report_fields_help(ReportKind kind);

// The report text, or an EINVAL Status naming the bad field or option.
Result<std::string> render_report(const nlohmann::json& vg, const ReportOptions& options);

}  // namespace vgfs::cli
