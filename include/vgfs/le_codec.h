// Little-endian fields at fixed offsets of a byte buffer: the one codec of
// every binary record vgfs keeps on a PV (labels, slot headers, job records;
// docs/format.md), and of LVM2's label and mda headers next.
//
// Invariant: no access ever touches a byte outside the buffer. An access
// that would (an offset read from disk, a caller's bug) does nothing, reads
// as zero and sets overrun(), which stays set; a decoder checks the size it
// needs first and may also check overrun() once at the end instead of
// bounding each field by hand.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace vgfs {

// Read-only view of encoded bytes.
class LeReader {
 public:
  explicit LeReader(std::string_view bytes) : bytes_(bytes) {}

  size_t size() const { return bytes_.size(); }
  // True when [at, at + n) lies inside the buffer (no sum can wrap).
  bool fits(size_t at, size_t n) const { return at <= bytes_.size() && n <= bytes_.size() - at; }
  bool overrun() const { return overrun_; }

  uint16_t u16(size_t at) const { return static_cast<uint16_t>(get(at, 2)); }
  uint32_t u32(size_t at) const { return static_cast<uint32_t>(get(at, 4)); }
  uint64_t u64(size_t at) const { return get(at, 8); }
  // The n bytes at `at`, or empty (and overrun()) when they do not fit.
  std::string_view bytes(size_t at, size_t n) const {
    if (!fits(at, n)) {
      overrun_ = true;
      return {};
    }
    return bytes_.substr(at, n);
  }
  // Copies n bytes to `out` (zeros when they do not fit).
  void copy(size_t at, void* out, size_t n) const {
    std::string_view b = bytes(at, n);
    if (b.size() == n) std::memcpy(out, b.data(), n);
    else std::memset(out, 0, n);
  }
  // True when the bytes at `at` equal `expected` (false when they do not fit;
  // this does not count as an overrun: it is how a reader tells formats apart).
  bool equals(size_t at, std::string_view expected) const {
    return fits(at, expected.size()) && bytes_.substr(at, expected.size()) == expected;
  }

 private:
  uint64_t get(size_t at, size_t n) const {
    if (!fits(at, n)) {
      overrun_ = true;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(bytes_[at + i])} << (8 * i);
    return v;
  }

  std::string_view bytes_;
  mutable bool overrun_ = false;
};

// Writes fields into a buffer it owns, zero-filled at construction.
class LeWriter {
 public:
  explicit LeWriter(size_t size) : bytes_(size, '\0') {}

  size_t size() const { return bytes_.size(); }
  bool overrun() const { return overrun_; }

  void u16(size_t at, uint16_t v) { put(at, v, 2); }
  void u32(size_t at, uint32_t v) { put(at, v, 4); }
  void u64(size_t at, uint64_t v) { put(at, v, 8); }
  void bytes(size_t at, const void* p, size_t n) {
    if (!fits(at, n)) {
      overrun_ = true;
      return;
    }
    std::memcpy(bytes_.data() + at, p, n);
  }
  void bytes(size_t at, std::string_view s) { bytes(at, s.data(), s.size()); }

  // What was written so far (for checksums over a prefix).
  std::string_view view() const { return bytes_; }
  char* data() { return bytes_.data(); }
  std::string take() { return std::move(bytes_); }

 private:
  bool fits(size_t at, size_t n) const { return at <= bytes_.size() && n <= bytes_.size() - at; }
  void put(size_t at, uint64_t v, size_t n) {
    if (!fits(at, n)) {
      overrun_ = true;
      return;
    }
    for (size_t i = 0; i < n; ++i) bytes_[at + i] = static_cast<char>(static_cast<unsigned char>(v >> (8 * i)));
  }

  std::string bytes_;
  bool overrun_ = false;
};

}  // namespace vgfs
