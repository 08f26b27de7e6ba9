// Extent ranges as text (include/vgfs/ranges.h).
#include "vgfs/ranges.h"

#include <fmt/format.h>

#include "vgfs/size_text.h"

namespace vgfs {

Result<IndexRange> parse_range(std::string_view text) {
  auto bad = [&] {
    return Status::Error(EINVAL, fmt::format("bad range \"{}\": expected FIRST-LAST or N", text));
  };
  size_t dash = text.find('-');
  uint64_t first = 0, last = 0;
  if (dash == std::string_view::npos) {
    if (!parse_decimal(text, &first)) return bad();
    return IndexRange{first, 1};
  }
  if (!parse_decimal(text.substr(0, dash), &first) || !parse_decimal(text.substr(dash + 1), &last)) return bad();
  if (last < first)
    return Status::Error(EINVAL, fmt::format("bad range \"{}\": last is below first", text));
  if (last == UINT64_MAX) return bad();
  return IndexRange{first, last - first + 1};
}

std::string format_range(uint64_t first, uint64_t count) {
  if (count == 1) return fmt::format("{}", first);
  return fmt::format("{}-{}", first, first + count - 1);
}

}  // namespace vgfs
