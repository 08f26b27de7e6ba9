// LVM2 metadata areas (docs/lvm2.md, "Metadata area"): the 512-byte mda
// header at the start of each area, its raw location slots, and the
// circular text buffer behind it.
//
// Invariant: an MdaHeader comes only from a block whose CRC, magic, version
// and start were checked and whose size equals the area the label lists; a
// committed slot it reports lies inside the buffer [512, size) of the area
// (its wrapped part too) and is at most kMaxTextSize bytes, all computed
// without overflow. read_mda_text() returns text only when the CRC over the
// bytes it read (both parts of a wrapped copy) matches the slot's CRC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vgfs/lvm2_label.h"
#include "vgfs/status.h"

namespace vgfs::lvm2 {

constexpr uint64_t kMdaHeaderSize = 512;
constexpr uint32_t kMdaVersion = 1;
constexpr uint32_t kRawLocationIgnored = 1;  // slot 0 flag: the whole mda is ignored
// The largest metadata text vgfs reads (a hostile slot could name up to the
// whole area): far above what LVM2 writes for thousands of LVs.
constexpr uint64_t kMaxTextSize = 64ull << 20;

// One slot of the header: where a text copy is, relative to the area start.
struct RawLocation {
  uint64_t offset = 0;
  uint64_t size = 0;  // bytes, including the text's trailing NUL
  uint32_t checksum = 0;
  uint32_t flags = 0;
  bool empty() const { return offset == 0 && size == 0; }
  bool operator==(const RawLocation&) const = default;
};

struct MdaHeader {
  uint64_t start = 0;  // absolute byte offset of the header on the PV
  uint64_t size = 0;   // bytes of the whole area, header included
  RawLocation committed;     // slot 0: what readers use
  RawLocation precommitted;  // slot 1: set between LVM2's precommit and commit
  bool ignored() const { return (committed.flags & kRawLocationIgnored) != 0; }
  // Bytes of a committed copy that wrapped to the start of the buffer (0
  // when it did not wrap); only meaningful for a checked header.
  uint64_t wrap() const;
};

// Decodes a 512-byte header read from `area` (an entry of the label's
// metadata list): EINVAL with the reason for a bad CRC, magic, version,
// start or size, or a committed slot that does not fit the buffer.
Result<MdaHeader> decode_mda_header(std::string_view block, const DiskArea& area);

// Checks a slot against a header's area: offset >= 512, inside the area,
// size 1..min(kMaxTextSize, area - 512), the wrapped part not reaching the
// copy's own start. `what` names the slot in the error.
Status check_raw_location(const RawLocation& slot, uint64_t area_size, std::string_view what);

// The committed text of one metadata area.
struct MdaText {
  MdaHeader header;
  std::string text;  // the bytes up to (not including) the first NUL
  // No text here: the mda is ignored or holds no VG (slot 0 offset 0).
  bool empty() const { return header.ignored() || header.committed.offset == 0; }
};

// Reads the header of `area` from `source` and, unless the mda is ignored or
// holds no VG (slot 0 all zero: MdaText::empty()), the committed text: both
// parts of a wrapped copy, checked against the slot's CRC. The area must lie
// inside the source. Errors name the source and the area's offset.
Result<MdaText> read_mda(const ByteSource& source, const DiskArea& area);

// Assembles the text of a checked slot from the buffer of a whole area
// (`area_bytes`, the area as it lies on disk, header included), with the
// CRC check: the part of read_mda() that needs no I/O, for the fuzz target.
Result<std::string> text_from_area(std::string_view area_bytes, const RawLocation& slot);

}  // namespace vgfs::lvm2
