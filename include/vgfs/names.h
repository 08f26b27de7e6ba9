// Names of VGs, LVs and PVs.
//
// Invariant: a name check_name() accepts is 1-127 characters from
// [A-Za-z0-9_.+-], not starting with '-' or '.', so it is safe as a file name
// next to `.vgfs/` (no LV can be called `.vgfs`) and in the metadata text.
#pragma once

#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

// `what` is "LV", "PV" or "VG"; the error names it.
Status check_name(std::string_view what, std::string_view name);

}  // namespace vgfs
