// CRC32C (include/vgfs/crc32c.h), computed with Boost.CRC.
#include "vgfs/crc32c.h"

#include <boost/crc.hpp>

namespace vgfs {

uint32_t crc32c(const void* data, size_t len) {
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, len);
  return crc.checksum();
}

}  // namespace vgfs
