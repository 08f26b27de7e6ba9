// Fuzz target: decode_slot_header (include/vgfs/pv_format.h), the 4 KiB
// header in front of the metadata text of each slot.
//
// Input: 1 flag byte, the slot size (8 bytes, little-endian), then the
// header block. Flag bit 0 set: the target rewrites the block's CRC32C
// before decoding (see label_fuzz.cc). The slot size is kept to what
// decode_label lets through (4 KiB to 1 GiB): that is the decoder's contract.
//
// Oracle: an accepted header claims a text that is not empty and fits in
// the slot behind the header; encode → decode gives it back unchanged.
#include "fuzz_util.h"
#include "vgfs/pv_format.h"

using namespace vgfs;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t flags = in.u8();
  const uint64_t slot_size = kSlotHeaderSize + in.u64() % (GiB - kSlotHeaderSize + 1);
  std::string block(in.rest());
  if ((flags & 1) && block.size() >= kSlotHeaderSize)
    fuzz::store_le32(&block, kSlotHeaderSize - 4, crc32c(block.data(), kSlotHeaderSize - 4));

  Result<SlotHeader> h = decode_slot_header(block, slot_size);
  if (!h.ok()) {
    fuzz::check_error(h.status());
    return 0;
  }
  FUZZ_CHECK(h->text_length > 0, "an empty metadata text");
  FUZZ_CHECK(h->text_length <= slot_size - kSlotHeaderSize, "a text longer than the slot");
  const std::string encoded = encode_slot_header(*h);
  FUZZ_CHECK(encoded.size() == kSlotHeaderSize, "encode_slot_header size");
  Result<SlotHeader> again = decode_slot_header(encoded, slot_size);
  FUZZ_CHECK(again.ok(), "an accepted header re-encoded does not decode: " + again.status().message());
  FUZZ_CHECK(again->seqno == h->seqno && again->text_length == h->text_length && again->text_crc == h->text_crc,
             "decode(encode(header)) != header");
  return 0;
}
