// The on-PV format (docs/format.md): what every PV holds at which offset.
//
//   0       label copy A (4 KiB)        magic, version, UUIDs, layout, CRC32C
//   4 KiB   label copy B (4 KiB)        identical to A
//   1 MiB   metadata slot 0             header (seqno, length, CRC32C) + YAML text
//   +S      metadata slot 1             same; seqno N is written to slot N % 2
//   +S      migration area              job records (progress pointers, bitmaps)
//   pe_start (1 MiB aligned)            PE n at pe_start + n * extent_size
//
// Invariant: every field read from disk is checked (magic, version, CRC32C,
// offsets inside the device and non-overlapping) before anything trusts it;
// a decoder returns an error instead of a half-valid record.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "vgfs/kept_keys.h"
#include "vgfs/status.h"
#include "vgfs/units.h"

namespace vgfs {

constexpr uint32_t kFormatVersion = 1;
constexpr uint64_t kLabelSize = 4 * KiB;
constexpr uint64_t kLabelOffsets[2] = {0, 4 * KiB};
constexpr uint64_t kSlotAreaOffset = 1 * MiB;
constexpr uint64_t kDefaultSlotSize = 4 * MiB;
constexpr uint64_t kDefaultMigrationAreaSize = 4 * MiB;
constexpr uint64_t kSlotHeaderSize = 4 * KiB;
// Bounds a label must keep (docs/format.md, "Checks"): a hostile label can
// make a reader allocate or read at most this much.
constexpr uint64_t kMaxSlotSize = 64 * MiB;
constexpr uint64_t kMinMigrationAreaSize = 16 * KiB;  // one record of two 8 KiB copies
constexpr uint64_t kMaxMigrationAreaSize = 1 * GiB;
constexpr uint64_t kMaxAreaOffset = 8 * GiB;  // no area starts past it; pe_start neither
// The largest seqno a slot may hold (vgfs/metadata.h kMaxSeqno).
constexpr uint64_t kMaxSlotSeqno = uint64_t{1} << 62;

struct PvLayout {
  uint64_t slot_offset[2] = {0, 0};
  uint64_t slot_size = 0;  // bytes per slot, header included
  uint64_t migration_offset = 0;
  uint64_t migration_size = 0;
  uint64_t pe_start = 0;
  uint64_t pe_count = 0;
  uint64_t extent_size = 0;
  uint64_t device_size = 0;  // bytes of the image or device at create time

  // The standard layout for a device of `device_size` bytes; pe_count may be
  // 0 when the device is too small (callers report that).
  static PvLayout standard(uint64_t device_size, uint64_t extent_size);
  uint64_t pe_offset(uint64_t pe) const { return pe_start + pe * extent_size; }
};

struct PvLabel {
  Uuid pv_uuid{};
  Uuid vg_uuid{};  // nil when the format cannot tell from the PV alone (an LVM2 PV without metadata area)
  PvLayout layout;
  // Keys the format derives from the label for this PV's record in the VG
  // metadata (LVM2: the PV's 32-character `id`, status, flags, dev_size);
  // a new PV's PvInfo::kept starts from them. Empty for vgfs's own format.
  KeptKeys record{};
};

// Encodes into exactly kLabelSize bytes.
std::string encode_label(const PvLabel& label);
// Checks magic, version, label size, CRC, and that the layout is
// self-consistent: every area 4 KiB aligned, within its bounds, in order
// without overlap (no sum can wrap), at least one PE, and the PEs inside both
// `device_size` and the label's own device size.
Result<PvLabel> decode_label(std::string_view block, uint64_t device_size);
// True when the block starts with the label magic (whatever its checksum).
bool looks_like_label(std::string_view block);

struct SlotHeader {
  uint64_t seqno = 0;
  uint64_t text_length = 0;
  uint32_t text_crc = 0;
};

// Encodes into exactly kSlotHeaderSize bytes.
std::string encode_slot_header(const SlotHeader& header);
// Checks magic, header CRC and version, that the seqno is 1-kMaxSlotSeqno
// and that the text fits in `slot_size`.
Result<SlotHeader> decode_slot_header(std::string_view block, uint64_t slot_size);

}  // namespace vgfs
