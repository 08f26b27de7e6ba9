// Readable doctest output for vgfs value types in failed comparisons.
#pragma once

#include <ostream>

#include "vgfs/extent_map.h"

namespace vgfs {

inline std::ostream& operator<<(std::ostream& os, const MapRun& r) {
  return os << "MapRun{le " << r.le << ", count " << r.count << ", pv " << r.pv << ", pe " << r.pe << "}";
}

inline std::ostream& operator<<(std::ostream& os, const PvRun& r) {
  os << "PvRun{pe " << r.pe << ", count " << r.count << ", ";
  if (r.free()) return os << "free}";
  return os << "lv " << r.lv << ", le " << r.le << "}";
}

}  // namespace vgfs
