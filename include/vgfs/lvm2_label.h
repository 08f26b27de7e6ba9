// LVM2's PV label (docs/lvm2.md, "Label"): the 512-byte label sector in one
// of sectors 0-3 of a PV, its pv_header with the data, metadata and
// bootloader area lists, and the byte source every LVM2 reader reads from.
//
// Invariant: a PvLabel comes only from a sector whose id ("LABELONE"),
// sector number, CRC and type ("LVM2 001") were checked, whose area lists
// each end inside the sector, whose areas have no offset + size that wraps
// past 2^64 and whose metadata areas are at least one mda header long. The
// areas are not yet checked against the size of the source: the mda reader
// (vgfs/lvm2_mda.h) does that before it reads one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/status.h"

namespace vgfs::lvm2 {

constexpr uint64_t kSectorSize = 512;
constexpr uint64_t kLabelScanSectors = 4;  // the label may be in sector 0, 1, 2 or 3
constexpr uint32_t kInitialCrc = 0xf597a6cf;
constexpr uint32_t kExtInVg = 1;  // pv_header extension flag: the PV belongs to a VG

// LVM2's CRC (docs/lvm2.md, "CRC"): reflected CRC-32 (0xEDB88320), initial
// value kInitialCrc, no final inversion, so a CRC over two pieces is the CRC
// of the second with the first's result as `seed`.
uint32_t crc(const void* data, size_t length, uint32_t seed = kInitialCrc);

// Where the reader reads from: a whole image or device, or a window of one
// (a partition). `read` transfers exactly `length` bytes at `offset` or fails;
// callers keep offset + length <= size, which is checked again here.
struct ByteSource {
  std::string name;  // names the source in errors: a path, "disk.img (partition 3)"
  uint64_t size = 0;
  std::function<Status(void* buf, uint64_t length, uint64_t offset)> read;

  // Reads [offset, offset + length) after checking it lies inside the source.
  Status read_at(void* buf, uint64_t length, uint64_t offset) const;
  // The bytes [offset, offset + size) of this source as a source of its own.
  ByteSource window(uint64_t offset, uint64_t window_size, std::string window_name) const;
};

// An {offset, size} pair of the pv_header's lists, in bytes from the PV start.
struct DiskArea {
  uint64_t offset = 0;
  uint64_t size = 0;  // 0 for a data area means "to the end of the device"
  bool operator==(const DiskArea&) const = default;
};

struct PvLabel {
  uint64_t sector = 0;       // where the label was found (0-3)
  std::string uuid;          // 32 characters, no dashes
  uint64_t device_size = 0;  // bytes, as pvcreate/pvresize recorded them
  std::vector<DiskArea> data_areas;
  std::vector<DiskArea> metadata_areas;  // each area starts with its mda header
  bool has_extension = false;            // extension version != 0
  uint32_t extension_version = 0;
  uint32_t extension_flags = 0;
  std::vector<DiskArea> bootloader_areas;

  bool in_vg() const { return (extension_flags & kExtInVg) != 0; }
  uint64_t pe_start() const { return data_areas.empty() ? 0 : data_areas[0].offset; }
};

// True when `sector` starts with "LABELONE" (whatever else it holds).
bool has_label_id(std::string_view sector);

// Decodes one 512-byte sector found at sector number `sector_number`:
// EINVAL with the reason when it is not a valid LVM2 label.
Result<PvLabel> decode_label_sector(std::string_view sector, uint64_t sector_number);

// Scans sectors 0-3 of `source` as LVM2 does: the first valid label wins; a
// "LABELONE" sector that fails a check is skipped with a warning (LVM2 skips
// it too). ENOENT when no sector has the label id, EINVAL naming the first
// failed check when every labelled sector is bad, EIO when the read fails.
Result<PvLabel> read_label(const ByteSource& source, std::vector<std::string>* warnings);

// "Wv0vT3-HPYR-GxYV-rCfJ-Sry6-8d0I-gT00hX" from the 32 characters of a uuid.
std::string format_lvm2_uuid(std::string_view uuid32);
// A uuid as LVM2's text writes it (with or without dashes) to its 32
// characters; EINVAL unless exactly 32 of [0-9A-Za-z!#] remain.
Result<std::string> parse_lvm2_uuid(std::string_view text);

}  // namespace vgfs::lvm2
