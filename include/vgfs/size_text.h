// Sizes as text: parsing what users and config files write, formatting what
// vgfs prints.
//
// Invariant: parse_size() accepts exactly an integer with an optional suffix
// B, KiB, MiB, GiB or TiB (powers of 1024) and refuses anything that would
// not fit in 64 bits; format_size() output parses back to the same value.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/sizes.h"
#include "vgfs/status.h"

namespace vgfs {

// A whole decimal number and nothing else (no sign, no blanks), below 2^64.
bool parse_decimal(std::string_view text, uint64_t* out);

Result<uint64_t> parse_size(std::string_view text);

// A size as LVM2's -L takes it, for the command line (README.md "Command line"): a number
// with an optional fraction ("1.5") and an optional unit, either one letter
// as LVM2 takes it, upper or lower case alike and all powers of 1024 (b
// bytes, s 512-byte sectors, k, m, g, t, p, e), or a parse_size() suffix
// (B, KiB, MiB, GiB, TiB). A bare number is MiB, as in LVM2. A leading '+'
// or '-' makes it relative (lvextend +1G); `sign` is then '+' or '-', else
// 0. A fraction of a byte rounds up to a whole byte.
struct LvmSize {
  char sign = 0;
  uint64_t bytes = 0;
};
Result<LvmSize> parse_lvm_size(std::string_view text);
// An extent count as LVM2's -l takes it: [+|-]N, or [+|-]N%VG, N%FREE,
// N%PVS (a percentage of the VG's extents, of its free extents, or of the
// free extents of the PVs named on the command line; N at most 100 unless
// relative). `sign` is '+', '-' or 0; `base` is 0 for a plain count, else
// 'V', 'F' or 'P'. Resolving a percentage needs the VG (src/cli/lv_size.h).
struct LvmExtents {
  char sign = 0;
  char base = 0;
  uint64_t number = 0;  // extents, or the percentage
};
Result<LvmExtents> parse_lvm_extents(std::string_view text);
// The largest exact suffix form: 4194304 -> "4MiB", 1000 -> "1000B".
std::string format_size(uint64_t bytes);
// Human form with one decimal for listings: 1.5GiB.
std::string human_size(uint64_t bytes);

}  // namespace vgfs
