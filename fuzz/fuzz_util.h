// Shared helpers of the libFuzzer targets in fuzz/ (docs/fuzzing.md).
//
// Invariant: an oracle failure is a crash (abort) with one line on stderr
// naming the broken property, so libFuzzer saves the input like any other
// crash and a reproducer run shows what was wrong.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "vgfs/status.h"

#define FUZZ_CHECK(cond, what)                                                            \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "fuzz oracle failed at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   #cond, std::string(what).c_str());                                    \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace vgfs::fuzz {

// Reads fixed-size parameters off the front of a fuzz input; past the end
// they read as zero, so every input is valid.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t u8() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  uint64_t u64() {  // little-endian
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{u8()} << (8 * i);
    return v;
  }
  std::string_view rest() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  const uint8_t* data_;
  size_t size_;
};

inline void put_le(std::string* s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline void store_le32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

// Known defects (issue 8) that other changes are fixing: while they are
// open, the targets let them pass so a short run stays green and a long run
// digs past them. VGFS_FUZZ_STRICT=1 (scripts/fuzz --strict, --regressions)
// turns them into failures again; the list is in docs/fuzzing.md.
inline bool strict() {
  static const bool on = [] {
    const char* v = std::getenv("VGFS_FUZZ_STRICT");
    return v && *v && std::string_view(v) != "0";
  }();
  return on;
}

// True when `s` is well-formed UTF-8 (no overlong forms, no surrogates).
inline bool is_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 99;
    if (n == 99 || i + n >= s.size() + (n == 0)) return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (size_t k = 1; k <= n; ++k) {
      const unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

// A failed Status must carry a code and a sentence (include/vgfs/status.h).
inline void check_error(const Status& st) {
  FUZZ_CHECK(st.code() != 0, "an error without an errno code");
  FUZZ_CHECK(!st.message().empty(), "an error without a message");
}

}  // namespace vgfs::fuzz
