// Sizes written the way LVM2's reports and messages write them, for
// `vgfs lvs|pvs|vgs --units` and the notes of lvcreate/lvextend/lvreduce.
//
// Units are LVM2's: h (human, powers of 1024), H (human, powers of 1000),
// r/R (human, with a '<' prefix where the two decimals shown round up, so a
// size is never shown larger than it is), b bytes, s 512-byte sectors,
// k m g t p e (powers of 1024), K M G T P E (powers of 1000). Two decimals,
// none for bytes and sectors.
//
// Invariant: a pure function of its arguments; exact integer arithmetic
// (no floating point), so the digits and the '<' agree.
#pragma once

#include <cstdint>
#include <string>

#include "vgfs/status.h"

namespace vgfs::cli {

// Whether `unit` is one --units takes (one of "hHrRbBsSkmgtpeKMGTPE").
Status check_report_unit(const std::string& unit);

enum class SuffixForm {
  kLetter,  // reports: "1.50g", "<2.00g", "4194304B"
  kWord,    // messages: "1.50 GiB", "8.00 MiB"
};

std::string lvm_display_size(uint64_t bytes, char unit, bool suffix, SuffixForm form);

}  // namespace vgfs::cli
