// Encoding and checked decoding of the label and metadata slot headers
// (include/vgfs/pv_format.h, docs/format.md). All integers little-endian.
#include "vgfs/pv_format.h"

#include <boost/endian/conversion.hpp>
#include <cstring>
#include <fmt/format.h>

namespace vgfs {

namespace {

constexpr char kLabelMagic[8] = {'V', 'G', 'F', 'S', 'L', 'A', 'B', 'L'};
constexpr char kSlotMagic[8] = {'V', 'G', 'F', 'S', 'M', 'E', 'T', 'A'};
constexpr size_t kCrcOffset = kLabelSize - 4;  // same place in labels and slot headers

// Writes and reads fixed-offset little-endian fields of one 4 KiB block.
class Block {
 public:
  explicit Block(std::string_view bytes) : bytes_(bytes) {}
  Block() : owned_(kLabelSize, '\0'), bytes_(owned_) {}

  void put_bytes(size_t at, const void* p, size_t n) { std::memcpy(owned_.data() + at, p, n); }
  void put32(size_t at, uint32_t v) { boost::endian::store_little_u32(uint8_ptr() + at, v); }
  void put64(size_t at, uint64_t v) { boost::endian::store_little_u64(uint8_ptr() + at, v); }
  uint32_t get32(size_t at) const { return boost::endian::load_little_u32(reinterpret_cast<const unsigned char*>(bytes_.data()) + at); }
  uint64_t get64(size_t at) const { return boost::endian::load_little_u64(reinterpret_cast<const unsigned char*>(bytes_.data()) + at); }
  bool has_magic(const char (&magic)[8]) const { return bytes_.size() >= 8 && std::memcmp(bytes_.data(), magic, 8) == 0; }
  void seal() { put32(kCrcOffset, crc32c(owned_.data(), kCrcOffset)); }
  bool crc_ok() const { return get32(kCrcOffset) == crc32c(bytes_.data(), kCrcOffset); }
  std::string take() { return std::move(owned_); }

 private:
  unsigned char* uint8_ptr() { return reinterpret_cast<unsigned char*>(owned_.data()); }
  std::string owned_;
  std::string_view bytes_;
};

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
  Block b;
  const PvLayout& l = label.layout;
  b.put_bytes(0, kLabelMagic, 8);
  b.put32(kLVersion, kFormatVersion);
  b.put32(kLHeaderSize, kLabelSize);
  b.put_bytes(kLPvUuid, label.pv_uuid.data(), 16);
  b.put_bytes(kLVgUuid, label.vg_uuid.data(), 16);
  b.put64(kLExtentSize, l.extent_size);
  b.put64(kLSlot0, l.slot_offset[0]);
  b.put64(kLSlot1, l.slot_offset[1]);
  b.put64(kLSlotSize, l.slot_size);
  b.put64(kLMigOffset, l.migration_offset);
  b.put64(kLMigSize, l.migration_size);
  b.put64(kLPeStart, l.pe_start);
  b.put64(kLPeCount, l.pe_count);
  b.put64(kLDeviceSize, l.device_size);
  b.seal();
  return b.take();
}

bool looks_like_label(std::string_view block) { return Block(block).has_magic(kLabelMagic); }

Result<PvLabel> decode_label(std::string_view bytes, uint64_t device_size) {
  auto bad = [](std::string what) { return Status::Error(EINVAL, "label " + what); };
  if (bytes.size() < kLabelSize) return bad("is truncated");
  Block b(bytes);
  if (!b.has_magic(kLabelMagic)) return bad("has no vgfs magic");
  if (!b.crc_ok()) return bad("checksum mismatch");
  if (b.get32(kLVersion) != kFormatVersion)
    return bad(fmt::format("has format version {}, this vgfs reads version {}", b.get32(kLVersion), kFormatVersion));
  PvLabel label;
  std::memcpy(label.pv_uuid.data(), bytes.data() + kLPvUuid, 16);
  std::memcpy(label.vg_uuid.data(), bytes.data() + kLVgUuid, 16);
  PvLayout& l = label.layout;
  l.extent_size = b.get64(kLExtentSize);
  l.slot_offset[0] = b.get64(kLSlot0);
  l.slot_offset[1] = b.get64(kLSlot1);
  l.slot_size = b.get64(kLSlotSize);
  l.migration_offset = b.get64(kLMigOffset);
  l.migration_size = b.get64(kLMigSize);
  l.pe_start = b.get64(kLPeStart);
  l.pe_count = b.get64(kLPeCount);
  l.device_size = b.get64(kLDeviceSize);

  // Every area must be 4 KiB aligned and lie in order after the labels,
  // inside the device. Each bound is checked before it is added to, so no sum
  // below can wrap.
  if (b.get32(kLHeaderSize) != kLabelSize) return bad(fmt::format("has label size {}", b.get32(kLHeaderSize)));
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
  Block b;
  b.put_bytes(0, kSlotMagic, 8);
  b.put32(kSVersion, kFormatVersion);
  b.put64(kSSeqno, header.seqno);
  b.put64(kSTextLength, header.text_length);
  b.put32(kSTextCrc, header.text_crc);
  b.seal();
  return b.take();
}

Result<SlotHeader> decode_slot_header(std::string_view bytes, uint64_t slot_size) {
  auto bad = [](std::string what) { return Status::Error(EINVAL, "metadata slot " + what); };
  if (bytes.size() < kSlotHeaderSize) return bad("is truncated");
  Block b(bytes);
  if (!b.has_magic(kSlotMagic)) return bad("has no metadata magic");
  if (!b.crc_ok()) return bad("header checksum mismatch");
  if (b.get32(kSVersion) != kFormatVersion) return bad(fmt::format("has format version {}", b.get32(kSVersion)));
  SlotHeader h;
  h.seqno = b.get64(kSSeqno);
  h.text_length = b.get64(kSTextLength);
  h.text_crc = b.get32(kSTextCrc);
  if (h.seqno == 0 || h.seqno > kMaxSlotSeqno)
    return bad(fmt::format("has seqno {}, outside 1-{}", h.seqno, kMaxSlotSeqno));
  if (slot_size < kSlotHeaderSize || h.text_length == 0 || h.text_length > slot_size - kSlotHeaderSize)
    return bad(fmt::format("claims {} bytes of text, more than the slot holds", h.text_length));
  return h;
}

}  // namespace vgfs
