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

// A failed Status must carry a code and a sentence (include/vgfs/status.h).
inline void check_error(const Status& st) {
  FUZZ_CHECK(st.code() != 0, "an error without an errno code");
  FUZZ_CHECK(!st.message().empty(), "an error without a message");
}

}  // namespace vgfs::fuzz
