// CRC32C (Castagnoli), as stored in labels, metadata slots and job records
// (docs/format.md).
//
// Invariant: crc32c("123456789") == 0xE3069283, the standard check value.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vgfs {

uint32_t crc32c(const void* data, size_t len);

}  // namespace vgfs
