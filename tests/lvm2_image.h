// A test-only writer of LVM2 PV images in memory, so the lvm2_* unit tests
// can build valid and hostile labels, mda headers and text rings with
// correct CRCs (docs/lvm2.md gives the layout). vgfs itself does not write
// LVM2 yet; this is not that writer.
#pragma once

#include <boost/endian/conversion.hpp>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "vgfs/lvm2_label.h"
#include "vgfs/lvm2_mda.h"

namespace lvm2_test {

using namespace vgfs;
using namespace vgfs::lvm2;

inline void put32(std::string* s, size_t at, uint32_t v) {
  boost::endian::store_little_u32(reinterpret_cast<unsigned char*>(s->data()) + at, v);
}
inline void put64(std::string* s, size_t at, uint64_t v) {
  boost::endian::store_little_u64(reinterpret_cast<unsigned char*>(s->data()) + at, v);
}

inline std::string from_hex(const char* hex) {
  std::string out;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) out += static_cast<char>(std::stoi(std::string(hex + i, 2), nullptr, 16));
  return out;
}

struct LabelSpec {
  uint64_t sector = 1;
  std::string uuid = "Wv0vT3HPYRGxYVrCfJSry68d0IgT00hX";
  uint64_t device_size = 64 << 20;
  std::vector<DiskArea> data = {{1 << 20, 0}};
  std::vector<DiskArea> mdas = {{4096, (1 << 20) - 4096}};
  uint32_t ext_version = 2;
  uint32_t ext_flags = 1;
  std::vector<DiskArea> bootloader;
  uint32_t pv_offset = 32;
};

// Recomputes the CRC of a label sector (bytes 20..511 at offset 16).
inline void seal_label(std::string* sector) { put32(sector, 16, crc(sector->data() + 20, 512 - 20)); }

inline std::string label_sector(const LabelSpec& l) {
  std::string s(512, '\0');
  std::memcpy(s.data(), "LABELONE", 8);
  put64(&s, 8, l.sector);
  put32(&s, 20, l.pv_offset);
  std::memcpy(s.data() + 24, "LVM2 001", 8);
  size_t at = l.pv_offset;
  std::memcpy(s.data() + at, l.uuid.data(), 32);
  put64(&s, at + 32, l.device_size);
  at += 40;
  auto list = [&](const std::vector<DiskArea>& areas) {
    for (const DiskArea& a : areas) {
      put64(&s, at, a.offset);
      put64(&s, at + 8, a.size);
      at += 16;
    }
    at += 16;  // terminator (zero)
  };
  list(l.data);
  list(l.mdas);
  put32(&s, at, l.ext_version);
  put32(&s, at + 4, l.ext_flags);
  at += 8;
  if (l.ext_version) list(l.bootloader);
  seal_label(&s);
  return s;
}

inline void seal_mda_header(std::string* h) { put32(h, 0, crc(h->data() + 4, 512 - 4)); }

inline std::string mda_header(uint64_t start, uint64_t size, const RawLocation& slot0, const RawLocation& slot1 = {}) {
  std::string h(512, '\0');
  std::memcpy(h.data() + 4, " LVM2 x[5A%r0N*>", 16);
  put32(&h, 20, 1);
  put64(&h, 24, start);
  put64(&h, 32, size);
  const RawLocation* slots[2] = {&slot0, &slot1};
  for (int i = 0; i < 2; ++i) {
    put64(&h, 40 + 24 * i, slots[i]->offset);
    put64(&h, 48 + 24 * i, slots[i]->size);
    put32(&h, 56 + 24 * i, slots[i]->checksum);
    put32(&h, 60 + 24 * i, slots[i]->flags);
  }
  seal_mda_header(&h);
  return h;
}

// Writes `text` + NUL into the ring of the mda at `start` (`size` bytes) at
// `offset` from the area start, wrapping to offset 512 past the end, and
// returns its slot.
inline RawLocation put_text(std::string* image, uint64_t start, uint64_t size, uint64_t offset, const std::string& text) {
  std::string bytes = text + '\0';
  RawLocation slot{offset, bytes.size(), crc(bytes.data(), bytes.size()), 0};
  for (size_t i = 0; i < bytes.size(); ++i) {
    uint64_t at = offset + i;
    if (at >= size) at = at - size + 512;
    (*image)[start + at] = bytes[i];
  }
  return slot;
}

// A one-mda PV image of `image_size` bytes holding `text` at `text_offset`.
inline std::string pv_image(const std::string& text, uint64_t image_size = 2 << 20, uint64_t text_offset = 512,
                            LabelSpec spec = {}) {
  std::string image(image_size, '\0');
  const std::string label = label_sector(spec);
  std::memcpy(image.data() + spec.sector * 512, label.data(), 512);
  for (const DiskArea& m : spec.mdas) {
    RawLocation slot = text.empty() ? RawLocation{} : put_text(&image, m.offset, m.size, text_offset, text);
    const std::string h = mda_header(m.offset, m.size, slot);
    std::memcpy(image.data() + m.offset, h.data(), 512);
  }
  return image;
}

inline ByteSource memory_source(std::shared_ptr<std::string> bytes, std::string name = "mem.img") {
  ByteSource s;
  s.name = std::move(name);
  s.size = bytes->size();
  s.read = [bytes](void* buf, uint64_t length, uint64_t offset) {
    std::memcpy(buf, bytes->data() + offset, length);
    return Status::Ok();
  };
  return s;
}

inline ByteSource memory_source(std::string bytes, std::string name = "mem.img") {
  return memory_source(std::make_shared<std::string>(std::move(bytes)), std::move(name));
}

}  // namespace lvm2_test
