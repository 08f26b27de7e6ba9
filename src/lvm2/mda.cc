// LVM2 mda header decoding and reading of the circular text buffer
// (include/vgfs/lvm2_mda.h, docs/lvm2.md "Metadata area").
#include "vgfs/lvm2_mda.h"

#include <boost/endian/conversion.hpp>
#include <cstring>
#include <fmt/format.h>

namespace vgfs::lvm2 {

namespace {

constexpr char kMdaMagic[16] = {' ', 'L', 'V', 'M', '2', ' ', 'x', '[', '5', 'A', '%', 'r', '0', 'N', '*', '>'};
// mda_header: crc u32, magic[16], version u32, start u64, size u64, slots.
constexpr size_t kMagicAt = 4, kVersionAt = 20, kStartAt = 24, kSizeAt = 32, kSlotsAt = 40, kSlotSize = 24;

uint32_t le32(std::string_view s, size_t at) {
  return boost::endian::load_little_u32(reinterpret_cast<const unsigned char*>(s.data()) + at);
}
uint64_t le64(std::string_view s, size_t at) {
  return boost::endian::load_little_u64(reinterpret_cast<const unsigned char*>(s.data()) + at);
}

RawLocation slot_at(std::string_view block, int i) {
  const size_t at = kSlotsAt + static_cast<size_t>(i) * kSlotSize;
  return RawLocation{le64(block, at), le64(block, at + 8), le32(block, at + 16), le32(block, at + 20)};
}

// Reads the (one or two) parts of a checked slot through `read(buf, length,
// offset_in_area)` and checks the CRC over them.
template <class ReadFn>
Result<std::string> assemble(const RawLocation& slot, uint64_t area_size, ReadFn read) {
  const uint64_t wrap = slot.offset + slot.size > area_size ? slot.offset + slot.size - area_size : 0;
  std::string bytes(slot.size, '\0');
  const uint64_t first = slot.size - wrap;
  VGFS_RETURN_IF_ERROR(read(bytes.data(), first, slot.offset));
  if (wrap) VGFS_RETURN_IF_ERROR(read(bytes.data() + first, wrap, kMdaHeaderSize));
  const uint32_t computed = crc(bytes.data(), bytes.size());
  if (computed != slot.checksum)
    return Status::Error(EINVAL, fmt::format("text CRC is {:#010x}, the {} bytes at offset {}{} give {:#010x}",
                                             slot.checksum, slot.size, slot.offset,
                                             wrap ? fmt::format(" (wrapping {} bytes)", wrap) : "", computed));
  const size_t nul = bytes.find('\0');
  if (nul != std::string::npos) bytes.resize(nul);
  return bytes;
}

}  // namespace

uint64_t MdaHeader::wrap() const {
  const RawLocation& s = committed;
  return s.offset + s.size > size ? s.offset + s.size - size : 0;
}

Status check_raw_location(const RawLocation& slot, uint64_t area_size, std::string_view what) {
  if (area_size < kMdaHeaderSize + 1)
    return Status::Error(EINVAL, fmt::format("the area of {} bytes has no room for text", area_size));
  const uint64_t buffer = area_size - kMdaHeaderSize;
  if (slot.offset < kMdaHeaderSize || slot.offset >= area_size)
    return Status::Error(EINVAL, fmt::format("{} text offset {} is outside the text buffer [512, {})", what,
                                             slot.offset, area_size));
  if (slot.size == 0 || slot.size > buffer || slot.size > kMaxTextSize)
    return Status::Error(EINVAL, fmt::format("{} text size {} does not fit: 1 to {} bytes", what, slot.size,
                                             std::min(buffer, kMaxTextSize)));
  // offset < area_size and size <= buffer: the sum cannot wrap 64 bits.
  const uint64_t end = slot.offset + slot.size;
  if (end > area_size && end - area_size > slot.offset - kMdaHeaderSize)
    return Status::Error(EINVAL, fmt::format("{} text at offset {} of size {} wraps onto its own start", what,
                                             slot.offset, slot.size));
  return Status::Ok();
}

Result<MdaHeader> decode_mda_header(std::string_view block, const DiskArea& area) {
  if (block.size() != kMdaHeaderSize)
    return Status::Error(EINVAL, fmt::format("an mda header is {} bytes, not {}", kMdaHeaderSize, block.size()));
  const uint32_t stored = le32(block, 0);
  const uint32_t computed = crc(block.data() + kMagicAt, kMdaHeaderSize - kMagicAt);
  if (stored != computed)
    return Status::Error(EINVAL, fmt::format("mda header CRC is {:#010x}, its bytes give {:#010x}", stored, computed));
  if (std::memcmp(block.data() + kMagicAt, kMdaMagic, sizeof kMdaMagic) != 0)
    return Status::Error(EINVAL, "the mda header has not the LVM2 magic");
  if (uint32_t v = le32(block, kVersionAt); v != kMdaVersion)
    return Status::Error(EINVAL, fmt::format("mda header version {} (vgfs reads version 1)", v));
  MdaHeader h;
  h.start = le64(block, kStartAt);
  h.size = le64(block, kSizeAt);
  if (h.start != area.offset)
    return Status::Error(EINVAL, fmt::format("the mda header says it starts at byte {}, the label at byte {}", h.start,
                                             area.offset));
  if (h.size != area.size)
    return Status::Error(EINVAL, fmt::format("the mda header says the area is {} bytes, the label {} bytes", h.size,
                                             area.size));
  h.committed = slot_at(block, 0);
  h.precommitted = slot_at(block, 1);
  // An ignored mda or one without a VG (slot 0 offset 0) keeps no text.
  if (!h.ignored() && h.committed.offset != 0)
    VGFS_RETURN_IF_ERROR(check_raw_location(h.committed, h.size, "committed"));
  return h;
}

Result<std::string> text_from_area(std::string_view area_bytes, const RawLocation& slot) {
  VGFS_RETURN_IF_ERROR(check_raw_location(slot, area_bytes.size(), "the"));
  return assemble(slot, area_bytes.size(), [&](char* buf, uint64_t length, uint64_t at) {
    std::memcpy(buf, area_bytes.data() + at, length);
    return Status::Ok();
  });
}

Result<MdaText> read_mda(const ByteSource& source, const DiskArea& area) {
  const std::string where = fmt::format("{}: metadata area at byte {}", source.name, area.offset);
  if (area.offset > source.size || area.size > source.size - area.offset)
    return Status::Error(EINVAL, fmt::format("{} of {} bytes ends past the end of the device ({} bytes)", where,
                                             area.size, source.size));
  std::string block(kMdaHeaderSize, '\0');
  if (Status st = source.read_at(block.data(), block.size(), area.offset); !st.ok()) return st.prefixed(where);
  Result<MdaHeader> header = decode_mda_header(block, area);
  if (!header.ok()) return header.status().prefixed(where);
  MdaText out;
  out.header = *header;
  if (header->ignored() || header->committed.offset == 0) return out;
  Result<std::string> text = assemble(header->committed, header->size, [&](char* buf, uint64_t length, uint64_t at) {
    return source.read_at(buf, length, area.offset + at);
  });
  if (!text.ok()) return text.status().prefixed(where);
  out.text = std::move(*text);
  return out;
}

}  // namespace vgfs::lvm2
