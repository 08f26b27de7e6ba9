// Unit tests of the on-PV format (include/vgfs/pv_format.h): the standard
// layout, labels and metadata slot headers, and their checked decoding.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "vgfs/pv_format.h"

using namespace vgfs;

namespace {

void check_standard_shape(const PvLayout& l, uint64_t device_size, uint64_t extent_size) {
  CAPTURE(device_size);
  CAPTURE(extent_size);
  CHECK(l.device_size == device_size);
  CHECK(l.extent_size == extent_size);
  CHECK(l.slot_offset[0] == kSlotAreaOffset);  // after both label copies
  CHECK(l.slot_offset[0] >= kLabelOffsets[1] + kLabelSize);
  CHECK(l.slot_size > kSlotHeaderSize);
  CHECK(l.slot_offset[1] >= l.slot_offset[0] + l.slot_size);
  CHECK(l.migration_size > 0);
  CHECK(l.migration_offset >= l.slot_offset[1] + l.slot_size);
  CHECK(l.pe_start >= l.migration_offset + l.migration_size);
  CHECK(l.pe_start % MiB == 0);
  uint64_t expect = device_size > l.pe_start ? (device_size - l.pe_start) / extent_size : 0;
  CHECK(l.pe_count == expect);
  CHECK(l.pe_offset(0) == l.pe_start);
  CHECK(l.pe_offset(3) == l.pe_start + 3 * extent_size);
  if (l.pe_count > 0) CHECK(l.pe_offset(l.pe_count) <= device_size);
}

PvLabel sample_label(uint64_t device_size = 64 * MiB, uint64_t extent_size = MiB) {
  PvLabel label;
  label.pv_uuid = new_uuid();
  label.vg_uuid = new_uuid();
  label.layout = PvLayout::standard(device_size, extent_size);
  return label;
}

size_t last_nonzero(const std::string& s) {
  size_t i = s.size();
  while (i > 0 && s[i - 1] == '\0') --i;
  return i;  // one past the last nonzero byte
}

void put_le32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
uint32_t get_le32(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(s[at + i])) << (8 * i);
  return v;
}

}  // namespace

TEST_CASE("PvLayout::standard") {
  for (uint64_t es : {64 * KiB, MiB, 4 * MiB, 1 * GiB}) {
    for (uint64_t size : {64 * MiB, 100 * MiB + 12345, 4 * GiB, 10 * TiB + 7}) {
      check_standard_shape(PvLayout::standard(size, es), size, es);
    }
  }
  PvLayout big = PvLayout::standard(4 * GiB, 4 * MiB);
  CHECK(big.pe_count == (4 * GiB - big.pe_start) / (4 * MiB));
  CHECK(big.pe_count > 1000);
}

TEST_CASE("PvLayout::standard on devices too small for one PE") {
  PvLayout tiny = PvLayout::standard(2 * MiB, 4 * MiB);
  CHECK(tiny.pe_count == 0);
  PvLayout zero = PvLayout::standard(0, 4 * MiB);
  CHECK(zero.pe_count == 0);

  uint64_t pe_start = PvLayout::standard(GiB, MiB).pe_start;
  for (uint64_t size : {pe_start / 2, pe_start, pe_start + MiB - 1, pe_start + MiB, pe_start + 3 * MiB + 1}) {
    PvLayout l = PvLayout::standard(size, MiB);
    check_standard_shape(l, size, MiB);
  }
  // Where the layout keeps the same pe_start, the PE count is exact.
  if (PvLayout::standard(pe_start + MiB - 1, MiB).pe_start == pe_start)
    CHECK(PvLayout::standard(pe_start + MiB - 1, MiB).pe_count == 0);
  if (PvLayout::standard(pe_start + MiB, MiB).pe_start == pe_start)
    CHECK(PvLayout::standard(pe_start + MiB, MiB).pe_count == 1);
}

TEST_CASE("label round trip") {
  PvLabel label = sample_label();
  std::string block = encode_label(label);
  REQUIRE(block.size() == kLabelSize);
  CHECK(looks_like_label(block));
  Result<PvLabel> back = decode_label(block, label.layout.device_size);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->pv_uuid == label.pv_uuid);
  CHECK(back->vg_uuid == label.vg_uuid);
  const PvLayout& a = back->layout;
  const PvLayout& b = label.layout;
  CHECK(a.slot_offset[0] == b.slot_offset[0]);
  CHECK(a.slot_offset[1] == b.slot_offset[1]);
  CHECK(a.slot_size == b.slot_size);
  CHECK(a.migration_offset == b.migration_offset);
  CHECK(a.migration_size == b.migration_size);
  CHECK(a.pe_start == b.pe_start);
  CHECK(a.pe_count == b.pe_count);
  CHECK(a.extent_size == b.extent_size);
  CHECK(a.device_size == b.device_size);
  CHECK(encode_label(*back) == block);

  // A device that grew still holds the layout.
  CHECK(decode_label(block, 2 * label.layout.device_size).ok());
  // A device exactly as large as the PE area needs.
  CHECK(decode_label(block, label.layout.pe_offset(label.layout.pe_count)).ok());
}

TEST_CASE("label decode rejects any flipped byte") {
  PvLabel label = sample_label();
  std::string block = encode_label(label);
  size_t end = last_nonzero(block);
  REQUIRE(end > 40);
  for (size_t i = 0; i < end; ++i) {
    CAPTURE(i);
    std::string bad = block;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    Result<PvLabel> r = decode_label(bad, label.layout.device_size);
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("label decode rejects wrong magic, short blocks and zeros") {
  PvLabel label = sample_label();
  std::string block = encode_label(label);
  std::string bad = block;
  std::memcpy(bad.data(), "NOTALABL", 8);
  CHECK_FALSE(looks_like_label(bad));
  CHECK_FALSE(decode_label(bad, label.layout.device_size).ok());
  CHECK_FALSE(decode_label(std::string(kLabelSize, '\0'), label.layout.device_size).ok());
  CHECK_FALSE(decode_label(block.substr(0, 100), label.layout.device_size).ok());
  CHECK_FALSE(decode_label("", label.layout.device_size).ok());
}

TEST_CASE("label decode rejects another format version") {
  // docs/format.md: the version is a le32 right after the 8-byte magic and
  // the CRC32C of bytes [0, 4092) is the le32 at 4092.
  PvLabel label = sample_label();
  std::string block = encode_label(label);
  REQUIRE(get_le32(block, 8) == kFormatVersion);
  REQUIRE(get_le32(block, kLabelSize - 4) == crc32c(block.data(), kLabelSize - 4));
  for (uint32_t version : {0u, kFormatVersion + 1, 0xFFFFFFFFu}) {
    CAPTURE(version);
    std::string other = block;
    put_le32(other, 8, version);
    put_le32(other, kLabelSize - 4, crc32c(other.data(), kLabelSize - 4));
    CHECK(looks_like_label(other));
    Result<PvLabel> r = decode_label(other, label.layout.device_size);
    CHECK_FALSE(r.ok());
    if (!r.ok()) CHECK(r.status().message().find("version") != std::string::npos);
  }
}

TEST_CASE("label decode rejects a layout that does not fit the device") {
  PvLabel label = sample_label(64 * MiB, MiB);
  REQUIRE(label.layout.pe_count > 0);
  std::string block = encode_label(label);
  uint64_t needed = label.layout.pe_offset(label.layout.pe_count);
  CHECK_FALSE(decode_label(block, needed - 1).ok());
  CHECK_FALSE(decode_label(block, label.layout.pe_start).ok());
  CHECK_FALSE(decode_label(block, 0).ok());

  SUBCASE("pe_count far too large") {
    PvLabel huge = label;
    huge.layout.pe_count = UINT64_MAX / 2;
    CHECK_FALSE(decode_label(encode_label(huge), 64 * MiB).ok());
  }
  SUBCASE("areas out of order") {
    PvLabel swapped = label;
    swapped.layout.migration_offset = swapped.layout.slot_offset[0];
    CHECK_FALSE(decode_label(encode_label(swapped), 64 * MiB).ok());
  }
  SUBCASE("pe_start beyond the device") {
    PvLabel far = label;
    far.layout.pe_start = 128 * MiB;
    far.layout.pe_count = 0;
    CHECK_FALSE(decode_label(encode_label(far), 64 * MiB).ok());
  }
}

TEST_CASE("looks_like_label") {
  PvLabel label = sample_label();
  std::string block = encode_label(label);
  CHECK(looks_like_label(block));
  std::string damaged = block;
  damaged[last_nonzero(damaged) - 1] ^= 0x40;  // checksum broken, magic intact
  CHECK(looks_like_label(damaged));
  CHECK_FALSE(decode_label(damaged, label.layout.device_size).ok());
  CHECK_FALSE(looks_like_label(std::string(kLabelSize, '\0')));
  CHECK_FALSE(looks_like_label("hello world"));
  CHECK_FALSE(looks_like_label(""));
  CHECK_FALSE(looks_like_label(encode_slot_header(SlotHeader{1, 10, 0})));
}

TEST_CASE("slot header round trip") {
  const uint64_t slot_size = kDefaultSlotSize;
  SlotHeader h{42, 12345, 0xDEADBEEF};
  std::string block = encode_slot_header(h);
  REQUIRE(block.size() == kSlotHeaderSize);
  Result<SlotHeader> back = decode_slot_header(block, slot_size);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->seqno == 42);
  CHECK(back->text_length == 12345);
  CHECK(back->text_crc == 0xDEADBEEFu);

  SlotHeader full{kMaxSlotSeqno, slot_size - kSlotHeaderSize, 1};
  Result<SlotHeader> f = decode_slot_header(encode_slot_header(full), slot_size);
  REQUIRE(f.ok());
  CHECK(f->seqno == kMaxSlotSeqno);
  CHECK(f->text_length == slot_size - kSlotHeaderSize);
}

TEST_CASE("slot header decode rejects corruption and oversized text") {
  const uint64_t slot_size = kDefaultSlotSize;
  SlotHeader h{7, 1000, 0x12345678};
  std::string block = encode_slot_header(h);
  size_t end = last_nonzero(block);
  for (size_t i = 0; i < end; ++i) {
    CAPTURE(i);
    std::string bad = block;
    bad[i] = static_cast<char>(bad[i] ^ 0x80);
    Result<SlotHeader> r = decode_slot_header(bad, slot_size);
    CHECK_FALSE(r.ok());
  }
  CHECK_FALSE(decode_slot_header(std::string(kSlotHeaderSize, '\0'), slot_size).ok());
  CHECK_FALSE(decode_slot_header(block.substr(0, 64), slot_size).ok());
  CHECK_FALSE(decode_slot_header(encode_label(sample_label()), slot_size).ok());

  SlotHeader over{7, slot_size - kSlotHeaderSize + 1, 0};
  Result<SlotHeader> r = decode_slot_header(encode_slot_header(over), slot_size);
  CHECK_FALSE(r.ok());
  SlotHeader way_over{7, slot_size * 2, 0};
  CHECK_FALSE(decode_slot_header(encode_slot_header(way_over), slot_size).ok());
  SlotHeader huge{7, UINT64_MAX, 0};
  CHECK_FALSE(decode_slot_header(encode_slot_header(huge), slot_size).ok());
  // The same header is fine in a slot large enough for it.
  CHECK(decode_slot_header(encode_slot_header(way_over), slot_size * 4).ok());
}

TEST_CASE("slot header decode rejects another format version") {
  // docs/format.md: version le32 at byte 8, header CRC32C of [0, 4092) at 4092.
  std::string block = encode_slot_header(SlotHeader{3, 100, 7});
  REQUIRE(get_le32(block, 8) == kFormatVersion);
  REQUIRE(get_le32(block, kSlotHeaderSize - 4) == crc32c(block.data(), kSlotHeaderSize - 4));
  std::string other = block;
  put_le32(other, 8, kFormatVersion + 1);
  put_le32(other, kSlotHeaderSize - 4, crc32c(other.data(), kSlotHeaderSize - 4));
  Result<SlotHeader> r = decode_slot_header(other, kDefaultSlotSize);
  CHECK_FALSE(r.ok());
  // The same edit with the original version decodes: only the version was wrong.
  put_le32(other, 8, kFormatVersion);
  put_le32(other, kSlotHeaderSize - 4, crc32c(other.data(), kSlotHeaderSize - 4));
  CHECK(decode_slot_header(other, kDefaultSlotSize).ok());
}

// ---- Hostile labels and slot headers with valid checksums (issue 8).

TEST_CASE("label decode refuses hostile layouts that a valid CRC does not make sane") {
  const PvLabel good = sample_label(64 * MiB, MiB);
  REQUIRE(decode_label(encode_label(good), 64 * MiB).ok());
  auto refused = [&](const char* why, auto change) {
    CAPTURE(why);
    PvLabel l = good;
    change(l.layout);
    Result<PvLabel> r = decode_label(encode_label(l), 64 * MiB);
    CHECK_FALSE(r.ok());
  };
  refused("migration_size 0", [](PvLayout& l) { l.migration_size = 0; });
  refused("migration_size below one record", [](PvLayout& l) { l.migration_size = 8 * KiB; });
  refused("migration_size not 4 KiB aligned", [](PvLayout& l) { l.migration_size = 4 * MiB - 1; });
  refused("slot 1 wraps past 2^64", [](PvLayout& l) {
    l.slot_size = 4 * KiB * 2;
    l.slot_offset[1] = UINT64_MAX - 8 * KiB + 1;
  });
  refused("migration area wraps past 2^64", [](PvLayout& l) {
    l.migration_offset = UINT64_MAX - 4 * MiB + 1;
  });
  refused("slot size 0", [](PvLayout& l) { l.slot_size = 0; });
  refused("slot size of a header only", [](PvLayout& l) { l.slot_size = kSlotHeaderSize; });
  refused("slot size huge", [](PvLayout& l) { l.slot_size = 512 * MiB; });
  refused("slot offset unaligned", [](PvLayout& l) { l.slot_offset[0] += 512; });
  refused("no PE at all", [](PvLayout& l) { l.pe_count = 0; });
  refused("PEs past the label's device size", [](PvLayout& l) { l.device_size = l.pe_start; });

  PvLabel bad_size = good;
  std::string block = encode_label(bad_size);
  put_le32(block, 12, 512);  // label size field
  put_le32(block, kLabelSize - 4, crc32c(block.data(), kLabelSize - 4));
  CHECK_FALSE(decode_label(block, 64 * MiB).ok());
}

TEST_CASE("slot header decode refuses seqno 0 and seqnos past the maximum") {
  for (uint64_t seqno : {uint64_t{0}, kMaxSlotSeqno + 1, UINT64_MAX}) {
    CAPTURE(seqno);
    CHECK_FALSE(decode_slot_header(encode_slot_header(SlotHeader{seqno, 100, 1}), kDefaultSlotSize).ok());
  }
  CHECK(decode_slot_header(encode_slot_header(SlotHeader{1, 100, 1}), kDefaultSlotSize).ok());
  // A slot size below a header cannot make the length check wrap.
  CHECK_FALSE(decode_slot_header(encode_slot_header(SlotHeader{1, 100, 1}), 100).ok());
}
