// Fuzz target: decode_label_sector (include/vgfs/lvm2_label.h), LVM2's
// 512-byte label sector with its pv_header and area lists.
//
// Input: 1 flag byte, then the sector. Flag bit 0 set: the target writes
// the sector number 1 and the label CRC before decoding, so the fuzzer gets
// past both to the pv_header checks (a hostile but well-formed label); bits
// 1-2 pick the sector number it is decoded as (0-3).
//
// Oracle: an accepted label has a uuid of 32 uuid characters, at least one
// entry in no list past what fits in a sector, metadata areas of at least
// 512 bytes, and no area whose end passes 2^64 (computed in 128 bits).
#include "fuzz_util.h"
#include "vgfs/lvm2_label.h"

using namespace vgfs;
using namespace vgfs::lvm2;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const uint64_t sector_number = (flags >> 1) & 3;
  std::string sector(in.rest());
  if (flags & 1) {
    sector.resize(kSectorSize, '\0');
    for (int i = 0; i < 8; ++i) sector[8 + i] = static_cast<char>(i == 0 ? sector_number : 0);
    fuzz::store_le32(&sector, 16, crc(sector.data() + 20, kSectorSize - 20));
  }
  Result<PvLabel> label = decode_label_sector(sector, sector_number);
  if (!label.ok()) {
    fuzz::check_error(label.status());
    return 0;
  }
  __extension__ typedef unsigned __int128 u128;
  FUZZ_CHECK(label->uuid.size() == 32, "uuid length");
  FUZZ_CHECK(parse_lvm2_uuid(label->uuid).ok(), "uuid characters");
  FUZZ_CHECK(label->sector == sector_number, "sector");
  const size_t entries = label->data_areas.size() + label->metadata_areas.size() + label->bootloader_areas.size();
  FUZZ_CHECK(entries * 16 <= kSectorSize, "more areas than fit in a sector");
  for (const auto* list : {&label->data_areas, &label->metadata_areas, &label->bootloader_areas})
    for (const DiskArea& a : *list) {
      FUZZ_CHECK(a.offset != 0, "an area at offset 0 (the terminator) was kept");
      FUZZ_CHECK(u128{a.offset} + a.size <= UINT64_MAX, "an area ends past 2^64");
    }
  for (const DiskArea& a : label->metadata_areas) FUZZ_CHECK(a.size >= kSectorSize, "an mda smaller than its header");
  return 0;
}
