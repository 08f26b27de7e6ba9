// Unit tests of the little-endian field codec (include/vgfs/le_codec.h):
// byte order, and that no access leaves the buffer.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "vgfs/le_codec.h"

using namespace vgfs;

TEST_CASE("fields are little-endian at their offsets") {
  LeWriter w(24);
  w.u16(0, 0x0102);
  w.u32(2, 0x03040506);
  w.u64(6, 0x0708090a0b0c0d0eULL);
  w.bytes(14, "xyz");
  CHECK_FALSE(w.overrun());
  const std::string b = w.take();
  REQUIRE(b.size() == 24);
  const std::string expect("\x02\x01\x06\x05\x04\x03\x0e\x0d\x0c\x0b\x0a\x09\x08\x07xyz\0\0\0\0\0\0\0", 24);
  CHECK(b == expect);
  LeReader r(b);
  CHECK(r.u16(0) == 0x0102);
  CHECK(r.u32(2) == 0x03040506u);
  CHECK(r.u64(6) == 0x0708090a0b0c0d0eULL);
  CHECK(r.bytes(14, 3) == "xyz");
  CHECK(r.equals(14, "xyz"));
  CHECK_FALSE(r.equals(14, "xyw"));
  CHECK_FALSE(r.overrun());
  // High bytes survive (no sign extension).
  LeWriter h(8);
  h.u64(0, UINT64_MAX - 1);
  CHECK(LeReader(h.view()).u64(0) == UINT64_MAX - 1);
}

TEST_CASE("out-of-range accesses read zero, write nothing and set overrun()") {
  const std::string b(16, '\x7f');
  LeReader r(b);
  CHECK(r.fits(8, 8));
  CHECK_FALSE(r.fits(9, 8));
  CHECK_FALSE(r.fits(SIZE_MAX, 2));  // no wrap
  CHECK(r.u64(8) == 0x7f7f7f7f7f7f7f7fULL);
  CHECK_FALSE(r.overrun());
  CHECK_FALSE(r.equals(12, "12345"));  // telling formats apart is no overrun
  CHECK_FALSE(r.overrun());
  CHECK(r.u64(9) == 0);
  CHECK(r.overrun());
  LeReader r2(b);
  CHECK(r2.bytes(SIZE_MAX - 1, 4).empty());
  CHECK(r2.overrun());
  unsigned char out[4] = {1, 2, 3, 4};
  LeReader r3(b);
  r3.copy(14, out, 4);
  CHECK(out[0] == 0);
  CHECK(r3.overrun());

  LeWriter w(8);
  w.u32(6, 0xffffffff);
  CHECK(w.overrun());
  w.u16(6, 0xffff);  // in range: written even after an overrun
  CHECK(w.view() == std::string("\0\0\0\0\0\0\xff\xff", 8));
  LeWriter w2(8);
  w2.bytes(SIZE_MAX, "a");
  CHECK(w2.overrun());
}
