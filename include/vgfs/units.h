// Sizes, names and UUIDs: the small value rules every record shares.
//
// Sizes are bytes written as an integer with an optional suffix B, KiB, MiB,
// GiB or TiB (powers of 1024). Names of VGs, LVs and PVs are 1-127
// characters from [A-Za-z0-9_.+-], not starting with '-' or '.', so they are
// safe as file names next to `.vgfs/` and in the metadata text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;
constexpr uint64_t GiB = 1024 * MiB;
constexpr uint64_t TiB = 1024 * GiB;

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
// The largest exact suffix form: 4194304 -> "4MiB", 1000 -> "1000B".
std::string format_size(uint64_t bytes);
// Human form with one decimal for listings: 1.5GiB.
std::string human_size(uint64_t bytes);

// `what` is "LV", "PV" or "VG"; the error names it.
Status check_name(std::string_view what, std::string_view name);

// Inclusive range "FIRST-LAST" or a single number "N" (count 1).
struct IndexRange {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t last() const { return first + count - 1; }
  bool operator==(const IndexRange&) const = default;
};
Result<IndexRange> parse_range(std::string_view text);
std::string format_range(uint64_t first, uint64_t count);

inline bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }
inline uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

using Uuid = std::array<uint8_t, 16>;
Uuid new_uuid();
std::string format_uuid(const Uuid& u);
Result<Uuid> parse_uuid(std::string_view text);

// CRC32C (Castagnoli), as stored in labels, metadata slots and job records.
uint32_t crc32c(const void* data, size_t len);

}  // namespace vgfs
