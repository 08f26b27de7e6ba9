// Fuzz target: decode_mda_header and text_from_area
// (include/vgfs/lvm2_mda.h), LVM2's mda header and the text of its ring.
//
// Input: 1 flag byte, the area size (8 bytes, little-endian, reduced to at
// most 64 KiB + 512 so the target can hold the area), then the area's bytes
// (header first, padded with zeros to the area size). Flag bit 0 set: the
// target writes the start (4096) and size fields and the header CRC before
// decoding, so the fuzzer reaches the slot checks; bit 1: it also writes the
// committed slot's CRC as the CRC of the bytes the slot names (both parts
// when it wraps), so it reaches text assembly.
//
// Oracle: an accepted header names a committed slot inside [512, size) with
// a wrapped part that ends before the slot's start; text read from it is at
// most the slot's size, holds no NUL, and its CRC check passed.
#include <cstring>

#include "fuzz_util.h"
#include "vgfs/lvm2_mda.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

uint64_t le64(const std::string& s, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(s[at + i])} << (8 * i);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const uint64_t area_size = kMdaHeaderSize + in.u64() % (64 * 1024 + 1);
  std::string area(in.rest());
  if (area.size() > area_size) area.resize(area_size);
  area.resize(area_size, '\0');
  const DiskArea where{4096, area_size};
  if (flags & 1) {
    std::string fields;
    fuzz::put_le(&fields, where.offset, 8);
    fuzz::put_le(&fields, area_size, 8);
    std::memcpy(area.data() + 24, fields.data(), 16);
    if (flags & 2) {
      const RawLocation slot{le64(area, 40), le64(area, 48), 0, 0};
      if (check_raw_location(slot, area_size, "fuzz").ok()) {
        const uint64_t end = slot.offset + slot.size, wrap = end > area_size ? end - area_size : 0;
        uint32_t c = crc(area.data() + slot.offset, slot.size - wrap);
        c = crc(area.data() + kMdaHeaderSize, wrap, c);
        fuzz::store_le32(&area, 56, c);
      }
    }
    fuzz::store_le32(&area, 0, crc(area.data() + 4, kMdaHeaderSize - 4));
  }
  Result<MdaHeader> h = decode_mda_header(std::string_view(area).substr(0, kMdaHeaderSize), where);
  if (!h.ok()) {
    fuzz::check_error(h.status());
    return 0;
  }
  FUZZ_CHECK(h->start == where.offset && h->size == area_size, "start/size not the area's");
  if (h->ignored() || h->committed.offset == 0) return 0;
  const RawLocation& s = h->committed;
  FUZZ_CHECK(s.offset >= kMdaHeaderSize && s.offset < area_size, "slot offset outside the buffer");
  FUZZ_CHECK(s.size >= 1 && s.size <= area_size - kMdaHeaderSize, "slot size");
  FUZZ_CHECK(h->wrap() <= s.offset - kMdaHeaderSize, "the wrapped part reaches the slot's start");
  Result<std::string> text = text_from_area(area, s);
  if (!text.ok()) {
    fuzz::check_error(text.status());
    return 0;
  }
  FUZZ_CHECK(text->size() <= s.size, "text longer than its slot");
  FUZZ_CHECK(text->find('\0') == std::string::npos, "text holds a NUL");
  return 0;
}
