// Sizes, names, ranges, UUIDs and CRC32C: the small value rules every record
// shares, one header per concept. This header only gathers them, for code
// written before the split; new code includes the one it needs:
//
//   vgfs/sizes.h      KiB..TiB, is_power_of_two, div_ceil, align_up
//   vgfs/size_text.h  parse_size, parse_lvm_size, format_size, human_size
//   vgfs/names.h      check_name
//   vgfs/ranges.h     IndexRange, parse_range, format_range
//   vgfs/uuid.h       Uuid, new_uuid, format_uuid, parse_uuid
//   vgfs/crc32c.h     crc32c
#pragma once

#include "vgfs/crc32c.h"
#include "vgfs/names.h"
#include "vgfs/ranges.h"
#include "vgfs/size_text.h"
#include "vgfs/sizes.h"
#include "vgfs/uuid.h"
