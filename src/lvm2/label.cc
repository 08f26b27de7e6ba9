// LVM2 label scan and checked pv_header decoding (include/vgfs/lvm2_label.h,
// docs/lvm2.md "Label"). All integers little-endian.
#include "vgfs/lvm2_label.h"

#include <boost/crc.hpp>
#include <boost/endian/conversion.hpp>
#include <cstring>
#include <fmt/format.h>

namespace vgfs::lvm2 {

namespace {

constexpr char kLabelId[8] = {'L', 'A', 'B', 'E', 'L', 'O', 'N', 'E'};
constexpr char kLabelType[8] = {'L', 'V', 'M', '2', ' ', '0', '0', '1'};
// label_header: id[8], sector u64, crc u32, offset u32, type[8].
constexpr size_t kCrcAt = 16, kCrcFrom = 20, kPvHeaderOffsetAt = 20, kTypeAt = 24;
constexpr size_t kLabelHeaderSize = 32;
// pv_header: uuid[32], device_size u64, then the area lists (16 bytes each).
constexpr size_t kUuidSize = 32, kPvHeaderFixed = 40, kAreaEntry = 16, kExtensionFixed = 8;
constexpr std::string_view kUuidChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";

uint32_t le32(std::string_view s, size_t at) {
  return boost::endian::load_little_u32(reinterpret_cast<const unsigned char*>(s.data()) + at);
}
uint64_t le64(std::string_view s, size_t at) {
  return boost::endian::load_little_u64(reinterpret_cast<const unsigned char*>(s.data()) + at);
}

// Reads one {offset, size} list starting at `*at`, up to and including its
// terminator (offset 0), which must lie inside the sector.
Status read_area_list(std::string_view sector, size_t* at, const char* what, std::vector<DiskArea>* out) {
  for (;;) {
    if (*at + kAreaEntry > sector.size())
      return Status::Error(EINVAL, fmt::format("the {} area list runs past the end of the label sector", what));
    DiskArea a{le64(sector, *at), le64(sector, *at + 8)};
    *at += kAreaEntry;
    if (a.offset == 0) return Status::Ok();
    if (a.size > UINT64_MAX - a.offset)
      return Status::Error(EINVAL, fmt::format("{} area at byte {} of size {} ends past 2^64", what, a.offset, a.size));
    out->push_back(a);
  }
}

}  // namespace

uint32_t crc(const void* data, size_t length, uint32_t seed) {
  // Boost takes the initial remainder unreflected, while LVM2's seed (and a
  // previous result to chain from) is the reflected register: reverse it.
  uint32_t init = 0;
  for (int i = 0; i < 32; ++i)
    if (seed & (uint32_t{1} << i)) init |= uint32_t{1} << (31 - i);
  boost::crc_optimal<32, 0x04C11DB7, 0, 0, true, true> c(init);
  c.process_bytes(data, length);
  return c.checksum();
}

Status ByteSource::read_at(void* buf, uint64_t length, uint64_t offset) const {
  if (offset > size || length > size - offset)
    return Status::Error(EIO, fmt::format("{}: bytes {}-{} lie past its end ({} bytes)", name, offset,
                                          offset + (length ? length - 1 : 0), size));
  if (length == 0) return Status::Ok();
  return read(buf, length, offset);
}

ByteSource ByteSource::window(uint64_t offset, uint64_t window_size, std::string window_name) const {
  ByteSource w;
  w.name = std::move(window_name);
  w.size = offset > size ? 0 : std::min(window_size, size - offset);
  auto whole = *this;
  w.read = [whole, offset](void* buf, uint64_t length, uint64_t at) { return whole.read_at(buf, length, offset + at); };
  return w;
}

bool has_label_id(std::string_view sector) {
  return sector.size() >= sizeof kLabelId && std::memcmp(sector.data(), kLabelId, sizeof kLabelId) == 0;
}

Result<PvLabel> decode_label_sector(std::string_view sector, uint64_t sector_number) {
  if (sector.size() != kSectorSize)
    return Status::Error(EINVAL, fmt::format("a label sector is {} bytes, not {}", kSectorSize, sector.size()));
  if (!has_label_id(sector)) return Status::Error(EINVAL, "no LABELONE id");
  const uint64_t recorded = le64(sector, 8);
  if (recorded != sector_number)
    return Status::Error(EINVAL, fmt::format("the label says it is in sector {} but was found in sector {}", recorded,
                                             sector_number));
  const uint32_t stored = le32(sector, kCrcAt);
  const uint32_t computed = crc(sector.data() + kCrcFrom, kSectorSize - kCrcFrom);
  if (stored != computed)
    return Status::Error(EINVAL, fmt::format("label CRC is {:#010x}, its bytes give {:#010x}", stored, computed));
  if (std::memcmp(sector.data() + kTypeAt, kLabelType, sizeof kLabelType) != 0)
    return Status::Error(EINVAL, "the label type is not \"LVM2 001\"");
  const uint32_t pv_offset = le32(sector, kPvHeaderOffsetAt);
  if (pv_offset < kLabelHeaderSize || pv_offset > kSectorSize - kPvHeaderFixed - 2 * kAreaEntry)
    return Status::Error(EINVAL, fmt::format("pv_header offset {} is outside {}-{}: it must follow the label "
                                             "header and fit in the sector",
                                             pv_offset, kLabelHeaderSize, kSectorSize - kPvHeaderFixed - 2 * kAreaEntry));

  PvLabel label;
  label.sector = sector_number;
  std::string_view uuid = sector.substr(pv_offset, kUuidSize);
  for (char c : uuid)
    if (kUuidChars.find(c) == std::string_view::npos)
      return Status::Error(EINVAL, "the PV uuid in the label holds a byte that is not a uuid character");
  label.uuid = std::string(uuid);
  label.device_size = le64(sector, pv_offset + kUuidSize);
  size_t at = pv_offset + kPvHeaderFixed;
  VGFS_RETURN_IF_ERROR(read_area_list(sector, &at, "data", &label.data_areas));
  VGFS_RETURN_IF_ERROR(read_area_list(sector, &at, "metadata", &label.metadata_areas));
  for (const DiskArea& a : label.metadata_areas)
    if (a.size < kSectorSize)
      return Status::Error(EINVAL, fmt::format("metadata area at byte {} is {} bytes, smaller than its header",
                                               a.offset, a.size));
  // The extension follows the metadata list when it fits (LVM2 ignores it
  // otherwise); version 0 means none.
  if (at + kExtensionFixed <= kSectorSize) {
    label.extension_version = le32(sector, at);
    if (label.extension_version != 0) {
      label.has_extension = true;
      label.extension_flags = le32(sector, at + 4);
      at += kExtensionFixed;
      VGFS_RETURN_IF_ERROR(read_area_list(sector, &at, "bootloader", &label.bootloader_areas));
    }
  }
  return label;
}

Result<PvLabel> read_label(const ByteSource& source, std::vector<std::string>* warnings) {
  const uint64_t sectors = std::min<uint64_t>(kLabelScanSectors, source.size / kSectorSize);
  if (sectors == 0)
    return Status::Error(ENOENT, fmt::format("{}: {} bytes, too small for an LVM2 label", source.name, source.size));
  std::string head(sectors * kSectorSize, '\0');
  if (Status st = source.read_at(head.data(), head.size(), 0); !st.ok()) return st;
  std::optional<Status> first_bad;
  for (uint64_t s = 0; s < sectors; ++s) {
    std::string_view sector(head.data() + s * kSectorSize, kSectorSize);
    if (!has_label_id(sector)) continue;
    Result<PvLabel> label = decode_label_sector(sector, s);
    if (label.ok()) return label;
    Status bad = label.status().prefixed(fmt::format("{}: label in sector {}", source.name, s));
    if (warnings) warnings->push_back(bad.message() + "; skipped");
    if (!first_bad) first_bad = bad;
  }
  if (first_bad) return *first_bad;
  return Status::Error(ENOENT, fmt::format("{}: no LVM2 label in sectors 0-3", source.name));
}

std::string format_lvm2_uuid(std::string_view uuid32) {
  static constexpr size_t kGroups[] = {6, 4, 4, 4, 4, 4, 6};
  std::string out;
  size_t at = 0;
  for (size_t g : kGroups) {
    if (at >= uuid32.size()) break;
    if (!out.empty()) out += '-';
    out += uuid32.substr(at, g);
    at += g;
  }
  return out;
}

Result<std::string> parse_lvm2_uuid(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '-') continue;
    if (kUuidChars.find(c) == std::string_view::npos || out.size() == kUuidSize)
      return Status::Error(EINVAL, "not a uuid of 32 characters [0-9A-Za-z!#]");
    out += c;
  }
  if (out.size() != kUuidSize) return Status::Error(EINVAL, "not a uuid of 32 characters [0-9A-Za-z!#]");
  return out;
}

}  // namespace vgfs::lvm2
