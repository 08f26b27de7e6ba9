// Unit tests of the value rules of include/vgfs/units.h (sizes.h, size_text.h,
// names.h, ranges.h, uuid.h, crc32c.h): sizes, names, ranges, UUIDs, CRC32C.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "vgfs/units.h"

using namespace vgfs;

TEST_CASE("parse_size accepts every suffix and bare numbers") {
  struct Case {
    const char* text;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"0", 0},
      {"1", 1},
      {"512", 512},
      {"512B", 512},
      {"1B", 1},
      {"1KiB", 1024},
      {"4KiB", 4096},
      {"3KiB", 3072},
      {"1MiB", 1048576},
      {"4MiB", 4194304},
      {"256KiB", 262144},
      {"1GiB", 1073741824ull},
      {"2GiB", 2147483648ull},
      {"1TiB", 1099511627776ull},
      {"3TiB", 3298534883328ull},
      {"1000", 1000},
      {"18446744073709551615", 18446744073709551615ull},
      {"16777215TiB", 16777215ull * TiB},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<uint64_t> r = parse_size(c.text);
    REQUIRE(r.ok());
    CHECK(*r == c.bytes);
  }
}

TEST_CASE("parse_size rejects malformed and overflowing sizes") {
  const char* bad[] = {
      "",        "4XB",      "-1",         "1.5GiB",   "99999999999TiB", "16777216TiB",
      "18446744073709551616", "MiB", "4 MiB extra", "0x10", "4MiBB", "KiB4", "+-1",
      "4MB",     "4M",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    Result<uint64_t> r = parse_size(text);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("format_size picks the largest exact suffix") {
  CHECK(format_size(4194304) == "4MiB");
  CHECK(format_size(1000) == "1000B");
  CHECK(format_size(1) == "1B");
  CHECK(format_size(1024) == "1KiB");
  CHECK(format_size(1536) == "1536B");
  CHECK(format_size(256 * KiB) == "256KiB");
  CHECK(format_size(1025 * MiB) == "1025MiB");
  CHECK(format_size(3 * GiB) == "3GiB");
  CHECK(format_size(2 * TiB) == "2TiB");
  CHECK(format_size(1024 * TiB) == "1024TiB");
  CHECK(format_size(GiB + KiB) == "1048577KiB");
}

TEST_CASE("format_size and parse_size round trip") {
  std::vector<uint64_t> values = {0,        1,           7,          1023,     1024,
                                  1025,     4096,        65536,      MiB - 1,  MiB,
                                  3 * MiB,  GiB + 512,   5 * GiB,    TiB,      7 * TiB + MiB,
                                  UINT64_MAX, UINT64_MAX - 1023};
  for (uint64_t v : values) {
    CAPTURE(v);
    std::string text = format_size(v);
    Result<uint64_t> back = parse_size(text);
    REQUIRE(back.ok());
    CHECK(*back == v);
  }
}

TEST_CASE("human_size gives one decimal") {
  CHECK(human_size(3 * GiB / 2) == "1.5GiB");
}

TEST_CASE("check_name accepts valid names") {
  std::string long_ok(127, 'a');
  for (const std::string& n :
       {std::string("lv0"), std::string("a.b"), std::string("x_y+z-1"), std::string("A"),
        std::string("0"), std::string("a-"), std::string("a."), long_ok}) {
    CAPTURE(n);
    Status s = check_name("LV", n);
    CHECK(s.ok());
    CHECK(s.code() == 0);
  }
}

TEST_CASE("check_name rejects invalid names and names the kind") {
  std::string too_long(128, 'a');
  for (const std::string& n :
       {std::string(""), std::string("-a"), std::string(".a"), std::string("a/b"),
        std::string("a b"), too_long, std::string("a:b"), std::string("a\nb"),
        std::string("é"), std::string("."), std::string(".."), std::string("a*")}) {
    CAPTURE(n);
    Status s = check_name("LV", n);
    CHECK_FALSE(s.ok());
    CHECK(s.code() == EINVAL);
    CHECK(s.message().find("LV") != std::string::npos);
  }
  Status pv = check_name("PV", "bad/name");
  CHECK_FALSE(pv.ok());
  CHECK(pv.message().find("PV") != std::string::npos);
  Status vg = check_name("VG", "");
  CHECK_FALSE(vg.ok());
  CHECK(vg.message().find("VG") != std::string::npos);
}

TEST_CASE("parse_range reads FIRST-LAST and single numbers") {
  Result<IndexRange> a = parse_range("0-499");
  REQUIRE(a.ok());
  CHECK(a->first == 0);
  CHECK(a->count == 500);
  CHECK(a->last() == 499);

  Result<IndexRange> b = parse_range("7");
  REQUIRE(b.ok());
  CHECK(b->first == 7);
  CHECK(b->count == 1);
  CHECK(b->last() == 7);

  Result<IndexRange> c = parse_range("3-3");
  REQUIRE(c.ok());
  CHECK(c->first == 3);
  CHECK(c->count == 1);

  Result<IndexRange> d = parse_range("500-502");
  REQUIRE(d.ok());
  CHECK(d->first == 500);
  CHECK(d->count == 3);
}

TEST_CASE("parse_range rejects malformed ranges") {
  for (const char* text : {"5-3", "a-b", "1-", "", "-", "-1", "1-2-3", "1.5", "x", "1 - 2"}) {
    CAPTURE(text);
    Result<IndexRange> r = parse_range(text);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("format_range and parse_range round trip") {
  CHECK(format_range(0, 500) == "0-499");
  CHECK(format_range(500, 3) == "500-502");
  for (auto [first, count] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0, 1}, {7, 1}, {0, 500}, {100, 3}, {123456789, 1000}}) {
    Result<IndexRange> r = parse_range(format_range(first, count));
    REQUIRE(r.ok());
    CHECK(r->first == first);
    CHECK(r->count == count);
  }
}

TEST_CASE("crc32c known answers (Castagnoli)") {
  const std::string digits = "123456789";
  CHECK(crc32c(digits.data(), digits.size()) == 0xE3069283u);
  CHECK(crc32c(digits.data(), 0) == 0u);

  // RFC 3720 appendix B.4 test vectors.
  std::vector<uint8_t> zeros(32, 0x00);
  CHECK(crc32c(zeros.data(), zeros.size()) == 0x8A9136AAu);
  std::vector<uint8_t> ones(32, 0xFF);
  CHECK(crc32c(ones.data(), ones.size()) == 0x62A8AB43u);
  std::vector<uint8_t> inc(32);
  for (size_t i = 0; i < inc.size(); ++i) inc[i] = static_cast<uint8_t>(i);
  CHECK(crc32c(inc.data(), inc.size()) == 0x46DD794Eu);
  std::vector<uint8_t> dec(32);
  for (size_t i = 0; i < dec.size(); ++i) dec[i] = static_cast<uint8_t>(31 - i);
  CHECK(crc32c(dec.data(), dec.size()) == 0x113FDB5Cu);
}

TEST_CASE("uuid format and parse round trip") {
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    Uuid u = new_uuid();
    std::string text = format_uuid(u);
    CAPTURE(text);
    REQUIRE(text.size() == 36);
    for (size_t k = 0; k < text.size(); ++k) {
      if (k == 8 || k == 13 || k == 18 || k == 23) {
        CHECK(text[k] == '-');
      } else {
        bool hex = (text[k] >= '0' && text[k] <= '9') || (text[k] >= 'a' && text[k] <= 'f');
        CHECK(hex);
      }
    }
    Result<Uuid> back = parse_uuid(text);
    REQUIRE(back.ok());
    CHECK(*back == u);
    seen.insert(text);
  }
  CHECK(seen.size() == 50);  // random UUIDs do not repeat

  Uuid fixed{};
  for (size_t i = 0; i < fixed.size(); ++i) fixed[i] = static_cast<uint8_t>(0x10 * (i % 16) + i);
  CHECK(format_uuid(fixed) == "00112233-4455-6677-8899-aabbccddeeff");
  Result<Uuid> parsed = parse_uuid("00112233-4455-6677-8899-aabbccddeeff");
  REQUIRE(parsed.ok());
  CHECK(*parsed == fixed);
}

TEST_CASE("parse_uuid rejects malformed text") {
  for (const char* text : {"", "not-a-uuid", "00112233-4455-6677-8899-aabbccddeef",
                           "00112233-4455-6677-8899-aabbccddeeffa",
                           "0011223344556677-8899-aabb-ccddeeff", "g0112233-4455-6677-8899-aabbccddeeff"}) {
    CAPTURE(text);
    Result<Uuid> r = parse_uuid(text);
    CHECK_FALSE(r.ok());
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("parse_lvm_size takes sizes as LVM2's -L does") {
  struct Case {
    const char* text;
    char sign;
    uint64_t bytes;
  };
  const Case cases[] = {
      {"100M", 0, 100 * MiB},   {"100m", 0, 100 * MiB},    {"1G", 0, GiB},          {"1g", 0, GiB},
      {"1.5G", 0, GiB + GiB / 2}, {"0.5m", 0, 512 * KiB}, {"100", 0, 100 * MiB},    {"2.5", 0, 2 * MiB + MiB / 2},
      {"512k", 0, 512 * KiB},   {"512K", 0, 512 * KiB},    {"2T", 0, 2 * TiB},      {"1p", 0, 1024 * TiB},
      {"8s", 0, 4096},          {"8S", 0, 4096},           {"4096b", 0, 4096},      {"4096B", 0, 4096},
      {"+1G", '+', GiB},        {"-512M", '-', 512 * MiB}, {"+1.25g", '+', GiB + GiB / 4},
      // The IEC forms parse_size takes keep working.
      {"4MiB", 0, 4 * MiB},     {"3GiB", 0, 3 * GiB},      {"1TiB", 0, TiB},        {"64KiB", 0, 64 * KiB},
      // A fraction of a byte rounds up.
      {"0.1k", 0, 103},         {"0.001b", 0, 1},          {"15E", 0, 15 * 1024 * 1024 * TiB},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    Result<LvmSize> r = parse_lvm_size(c.text);
    REQUIRE(r.ok());
    CHECK(r->sign == c.sign);
    CHECK(r->bytes == c.bytes);
  }
}

TEST_CASE("parse_lvm_size rejects what LVM2 rejects") {
  const char* bad[] = {"",   "G",   "1.G",   ".5G", "1.5.5G", "1x",  "1GB",  "1 G", "++1G", "+",
                       "16E", "17179869184G", "1.1234567890123456789G", "0x10", "-", "1MB"};
  for (const char* text : bad) {
    std::string shown = text;
    CAPTURE(shown);
    Result<LvmSize> r = parse_lvm_size(text);
    CHECK_FALSE(r.ok());
    if (!r.ok()) {
      CHECK(r.status().code() == EINVAL);
      CHECK(r.status().message().find(text) != std::string::npos);
    }
  }
}

TEST_CASE("div_ceil rounds up and never wraps") {
  CHECK(div_ceil(0, 4) == 0);
  CHECK(div_ceil(1, 4) == 1);
  CHECK(div_ceil(4, 4) == 1);
  CHECK(div_ceil(5, 4) == 2);
  CHECK(div_ceil(256 * KiB + 1, 256 * KiB) == 2);
  // (a + b - 1) / b wraps to 0 here; div_ceil does not.
  CHECK(div_ceil(UINT64_MAX, 2) == (uint64_t{1} << 63));
  CHECK(div_ceil(UINT64_MAX, 64) == (uint64_t{1} << 58));
  CHECK(div_ceil(UINT64_MAX, 1) == UINT64_MAX);
  static_assert(div_ceil(9, 8) == 2, "usable in constant expressions");
}
