// escape_bytes / printable / unescape_bytes (include/vgfs/escape.h).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "vgfs/escape.h"

using namespace vgfs;

TEST_CASE("escape_bytes: controls, invalid UTF-8 and backslashes") {
  CHECK(escape_bytes("/srv/pv0.img") == "/srv/pv0.img");
  CHECK(escape_bytes("a\nb") == "a\\x0ab");
  CHECK(escape_bytes("\x1b[2J") == "\\x1b[2J");
  CHECK(escape_bytes("\x7f") == "\\x7f");
  CHECK(escape_bytes("/d/\xff.img") == "/d/\\xff.img");
  CHECK(escape_bytes("a\\b") == "a\\\\b");
  CHECK(escape_bytes("caf\xc3\xa9") == "caf\xc3\xa9");          // é stays
  CHECK(escape_bytes("\xc2\x9b") == "\\xc2\\x9b");              // C1 CSI
  CHECK(escape_bytes("\xc0\xaf") == "\\xc0\\xaf");              // overlong '/'
  CHECK(escape_bytes("\xed\xa0\x80") == "\\xed\\xa0\\x80");     // surrogate
  CHECK(escape_bytes("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // past U+10FFFF
  CHECK(escape_bytes("\xe2\x82") == "\\xe2\\x82");              // cut short
  CHECK(escape_bytes(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(printable("a\\b\n") == "a\\b\\x0a");
  CHECK(printable(printable("\xff\\")) == printable("\xff\\"));
}

TEST_CASE("escape_bytes round-trips every byte string and always makes valid JSON") {
  std::mt19937 rng(8);
  for (int n = 0; n < 2000; ++n) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng());
    std::string e = escape_bytes(s);
    Result<std::string> back = unescape_bytes(e);
    REQUIRE(back.ok());
    CHECK(*back == s);
    for (char c : e) CHECK((static_cast<unsigned char>(c) >= 0x20 && c != 0x7f));
    CHECK_NOTHROW((void)nlohmann::json(e).dump());
  }
  CHECK(!unescape_bytes("a\\q").ok());
  CHECK(!unescape_bytes("a\\x4").ok());
}
