// Encoding and checked decoding of the label and metadata slot headers
// (include/vgfs/pv_format.h, docs/format.md). All integers little-endian.
#include "vgfs/pv_format.h"

#include <cstring>
#include <fmt/format.h>

#include "vgfs/le_codec.h"

namespace vgfs {

namespace {

constexpr char kLabelMagic[8] = {'V', 'G', 'F', 'S', 'L', 'A', 'B', 'L'};
constexpr char kSlotMagic[8] = {'V', 'G', 'F', 'S', 'M', 'E', 'T', 'A'};
constexpr size_t kCrcOffset = kLabelSize - 4;  // same place in labels and slot headers

// One 4 KiB block (label or slot header): little-endian fields
// (vgfs/le_codec.h) with the CRC32C of bytes 0..kCrcOffset-1 at kCrcOffset.
bool has_magic(const LeReader& b, const char (&magic)[8]) { return b.equals(0, std::string_view(magic, 8)); }
bool crc_ok(const LeReader& b) {
  std::string_view body = b.bytes(0, kCrcOffset);
  return body.size() == kCrcOffset && b.u32(kCrcOffset) == crc32c(body.data(), body.size());
}
std::string seal(LeWriter& b) {
  b.u32(kCrcOffset, crc32c(b.data(), kCrcOffset));
  return b.take();
}

// Label field offsets.
enum : size_t {
  kLVersion = 8, kLHeaderSize = 12, kLPvUuid = 16, kLVgUuid = 32, kLExtentSize = 48, kLSlot0 = 56, kLSlot1 = 64,
  kLSlotSize = 72, kLMigOffset = 80, kLMigSize = 88, kLPeStart = 96, kLPeCount = 104, kLDeviceSize = 112,
};
// Slot header field offsets.
enum : size_t { kSVersion = 8, kSSeqno = 16, kSTextLength = 24, kSTextCrc = 32 };

}  // namespace

PvLayout PvLayout::standard(uint64_t device_size, uint64_t extent_size) {
  PvLayout l;
  l.slot_size = kDefaultSlotSize;
  l.slot_offset[0] = kSlotAreaOffset;
  l.slot_offset[1] = kSlotAreaOffset + kDefaultSlotSize;
  l.migration_offset = l.slot_offset[1] + kDefaultSlotSize;
  l.migration_size = kDefaultMigrationAreaSize;
  l.pe_start = align_up(l.migration_offset + l.migration_size, MiB);
  l.extent_size = extent_size;
  l.device_size = device_size;
  l.pe_count = device_size > l.pe_start ? (device_size - l.pe_start) / extent_size : 0;
  return l;
}

std::string encode_label(const PvLabel& label) {
  LeWriter b(kLabelSize);
  const PvLayout& l = label.layout;
  b.bytes(0, kLabelMagic, 8);
  b.u32(kLVersion, kFormatVersion);
  b.u32(kLHeaderSize, kLabelSize);
  b.bytes(kLPvUuid, label.pv_uuid.data(), 16);
  b.bytes(kLVgUuid, label.vg_uuid.data(), 16);
  b.u64(kLExtentSize, l.extent_size);
  b.u64(kLSlot0, l.slot_offset[0]);
  b.u64(kLSlot1, l.slot_offset[1]);
  b.u64(kLSlotSize, l.slot_size);
  b.u64(kLMigOffset, l.migration_offset);
  b.u64(kLMigSize, l.migration_size);
  b.u64(kLPeStart, l.pe_start);
  b.u64(kLPeCount, l.pe_count);
  b.u64(kLDeviceSize, l.device_size);
  return seal(b);
}

bool looks_like_label(std::string_view block) { return has_magic(LeReader(block), kLabelMagic); }

Result<PvLabel> decode_label(std::string_view bytes, uint64_t device_size) {
  auto bad = [](std::string what) { return Status::Error(EINVAL, "label " + what); };
  if (bytes.size() < kLabelSize) return bad("is truncated");
  LeReader b(bytes);
  if (!has_magic(b, kLabelMagic)) return bad("has no vgfs magic");
  if (!crc_ok(b)) return bad("checksum mismatch");
  if (b.u32(kLVersion) != kFormatVersion)
    return bad(fmt::format("has format version {}, this vgfs reads version {}", b.u32(kLVersion), kFormatVersion));
  PvLabel label;
  b.copy(kLPvUuid, label.pv_uuid.data(), 16);
  b.copy(kLVgUuid, label.vg_uuid.data(), 16);
  PvLayout& l = label.layout;
  l.extent_size = b.u64(kLExtentSize);
  l.slot_offset[0] = b.u64(kLSlot0);
  l.slot_offset[1] = b.u64(kLSlot1);
  l.slot_size = b.u64(kLSlotSize);
  l.migration_offset = b.u64(kLMigOffset);
  l.migration_size = b.u64(kLMigSize);
  l.pe_start = b.u64(kLPeStart);
  l.pe_count = b.u64(kLPeCount);
  l.device_size = b.u64(kLDeviceSize);

  // Every area must be 4 KiB aligned and lie in order after the labels,
  // inside the device. Each bound is checked before it is added to, so no sum
  // below can wrap.
  if (b.u32(kLHeaderSize) != kLabelSize) return bad(fmt::format("has label size {}", b.u32(kLHeaderSize)));
  const uint64_t labels_end = kLabelOffsets[1] + kLabelSize;
  if (!is_power_of_two(l.extent_size) || l.extent_size < (64 * KiB) || l.extent_size > GiB)
    return bad(fmt::format("has a bad extent size {}", l.extent_size));
  auto aligned = [](uint64_t v) { return v % (4 * KiB) == 0; };
  if (l.slot_size < 2 * kSlotHeaderSize || l.slot_size > kMaxSlotSize || !aligned(l.slot_size))
    return bad(fmt::format("has a bad metadata slot size {}", l.slot_size));
  if (l.migration_size < kMinMigrationAreaSize || l.migration_size > kMaxMigrationAreaSize || !aligned(l.migration_size))
    return bad(fmt::format("has a bad migration area size {}", l.migration_size));
  if (l.slot_offset[0] < labels_end || l.slot_offset[0] > kMaxAreaOffset || !aligned(l.slot_offset[0]) ||
      l.slot_offset[1] < l.slot_offset[0] + l.slot_size || l.slot_offset[1] > kMaxAreaOffset ||
      !aligned(l.slot_offset[1]) || l.migration_offset < l.slot_offset[1] + l.slot_size ||
      l.migration_offset > kMaxAreaOffset || !aligned(l.migration_offset) ||
      l.pe_start < l.migration_offset + l.migration_size || l.pe_start > kMaxAreaOffset || l.pe_start % MiB != 0)
    return bad("has an inconsistent layout (areas out of order, overlapping or unaligned)");
  if (l.pe_count == 0 || l.pe_count > (UINT64_MAX - l.pe_start) / l.extent_size ||
      l.pe_offset(l.pe_count) > device_size || l.pe_offset(l.pe_count) > l.device_size)
    return bad(fmt::format("says {} PEs of {} from byte {}, but the device has {} bytes (label: {})", l.pe_count,
                           format_size(l.extent_size), l.pe_start, device_size, l.device_size));
  return label;
}

std::string encode_slot_header(const SlotHeader& header) {
  LeWriter b(kSlotHeaderSize);
  b.bytes(0, kSlotMagic, 8);
  b.u32(kSVersion, kFormatVersion);
  b.u64(kSSeqno, header.seqno);
  b.u64(kSTextLength, header.text_length);
  b.u32(kSTextCrc, header.text_crc);
  return seal(b);
}

Result<SlotHeader> decode_slot_header(std::string_view bytes, uint64_t slot_size) {
  auto bad = [](std::string what) { return Status::Error(EINVAL, "metadata slot " + what); };
  if (bytes.size() < kSlotHeaderSize) return bad("is truncated");
  LeReader b(bytes);
  if (!has_magic(b, kSlotMagic)) return bad("has no metadata magic");
  if (!crc_ok(b)) return bad("header checksum mismatch");
  if (b.u32(kSVersion) != kFormatVersion) return bad(fmt::format("has format version {}", b.u32(kSVersion)));
  SlotHeader h;
  h.seqno = b.u64(kSSeqno);
  h.text_length = b.u64(kSTextLength);
  h.text_crc = b.u32(kSTextCrc);
  if (h.seqno == 0 || h.seqno > kMaxSlotSeqno)
    return bad(fmt::format("has seqno {}, outside 1-{}", h.seqno, kMaxSlotSeqno));
  if (slot_size < kSlotHeaderSize || h.text_length == 0 || h.text_length > slot_size - kSlotHeaderSize)
    return bad(fmt::format("claims {} bytes of text, more than the slot holds", h.text_length));
  return h;
}

}  // namespace vgfs
