// UUIDs of VGs, PVs and LVs: 16 random bytes, written in the usual
// 8-4-4-4-12 hex form.
//
// Invariant: format_uuid() output is 36 characters and parse_uuid() of it
// gives back the same bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

using Uuid = std::array<uint8_t, 16>;
Uuid new_uuid();
std::string format_uuid(const Uuid& u);
Result<Uuid> parse_uuid(std::string_view text);

}  // namespace vgfs
