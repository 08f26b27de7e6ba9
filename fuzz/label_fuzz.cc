// Fuzz target: decode_label (include/vgfs/pv_format.h), the 4 KiB label at
// the start of every PV.
//
// Input: 1 flag byte, the device size (8 bytes, little-endian), then the
// label block. Flag bit 0 set: the target rewrites the block's CRC32C before
// decoding, so the fuzzer gets past the checksum to the layout checks (the
// state a hostile but well-formed label is in); clear: the block is decoded
// as it is.
//
// Oracle: an accepted label's areas lie in order after the two label
// copies, do not overlap and end inside the device, computed without
// overflow; and encode → decode gives the same label back.
//
// Regression (fuzz/regressions/label/slot1-offset-wraps): decode_label once
// computed slot_offset[1] + slot_size in 64 bits, so a slot 1 near 2^64
// wrapped past the order checks.
#include "fuzz_util.h"
#include "vgfs/pv_format.h"

using namespace vgfs;

namespace {

using u128 = unsigned __int128;

bool same(const PvLabel& a, const PvLabel& b) {
  const PvLayout &x = a.layout, &y = b.layout;
  return a.pv_uuid == b.pv_uuid && a.vg_uuid == b.vg_uuid && x.slot_offset[0] == y.slot_offset[0] &&
         x.slot_offset[1] == y.slot_offset[1] && x.slot_size == y.slot_size &&
         x.migration_offset == y.migration_offset && x.migration_size == y.migration_size &&
         x.pe_start == y.pe_start && x.pe_count == y.pe_count && x.extent_size == y.extent_size &&
         x.device_size == y.device_size;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const uint64_t device_size = in.u64();
  std::string block(in.rest());
  if ((flags & 1) && block.size() >= kLabelSize)
    fuzz::store_le32(&block, kLabelSize - 4, crc32c(block.data(), kLabelSize - 4));

  Result<PvLabel> label = decode_label(block, device_size);
  if (!label.ok()) {
    fuzz::check_error(label.status());
    return 0;
  }
  const PvLayout& l = label->layout;
  const u128 labels_end = kLabelOffsets[1] + kLabelSize;
  const u128 slot0_end = u128{l.slot_offset[0]} + l.slot_size;
  const u128 slot1_end = u128{l.slot_offset[1]} + l.slot_size;
  const u128 mig_end = u128{l.migration_offset} + l.migration_size;
  const u128 pe_end = u128{l.pe_start} + u128{l.pe_count} * l.extent_size;
  FUZZ_CHECK(l.slot_size >= kSlotHeaderSize, "a slot smaller than its header");
  FUZZ_CHECK(l.slot_offset[0] >= labels_end, "slot 0 overlaps the labels");
  FUZZ_CHECK(l.slot_offset[1] >= slot0_end, "slot 1 overlaps slot 0");
  FUZZ_CHECK(l.migration_offset >= slot1_end, "the migration area overlaps slot 1");
  FUZZ_CHECK(l.pe_start >= mig_end, "PE 0 overlaps the migration area");
  FUZZ_CHECK(pe_end <= device_size, "the PEs end past the device");

  const std::string encoded = encode_label(*label);
  FUZZ_CHECK(encoded.size() == kLabelSize, "encode_label size");
  Result<PvLabel> again = decode_label(encoded, device_size);
  FUZZ_CHECK(again.ok(), "an accepted label re-encoded does not decode: " + again.status().message());
  FUZZ_CHECK(same(*label, *again), "decode(encode(label)) != label");
  FUZZ_CHECK(looks_like_label(encoded), "looks_like_label on an encoded label");
  return 0;
}
