// Extent ranges as the maps and commands write them: "FIRST-LAST" or "N"
// (docs/records.md, "Extents and maps").
//
// Invariant: an IndexRange from parse_range() has count >= 1 and its last
// index fits in 64 bits; format_range() output parses back to the same range.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

// Inclusive range "FIRST-LAST" or a single number "N" (count 1).
struct IndexRange {
  uint64_t first = 0;
  uint64_t count = 0;
  uint64_t last() const { return first + count - 1; }
  bool operator==(const IndexRange&) const = default;
};
Result<IndexRange> parse_range(std::string_view text);
std::string format_range(uint64_t first, uint64_t count);

}  // namespace vgfs
