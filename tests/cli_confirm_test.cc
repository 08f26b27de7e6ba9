// Unit tests of LVM2's yes/no question (src/cli/confirm.h).
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "cli/confirm.h"

namespace {

struct Asked {
  bool yes;
  std::string shown;
};

Asked ask(std::string input) {
  std::FILE* in = fmemopen(input.data(), input.size(), "r");
  if (input.empty()) in = std::fopen("/dev/null", "r");
  char* buf = nullptr;
  size_t len = 0;
  std::FILE* out = open_memstream(&buf, &len);
  REQUIRE(in);
  REQUIRE(out);
  const bool yes = vgfs::cli::confirm("Do you really want to remove active logical volume vg0/lv0?", in, out);
  std::fclose(in);
  std::fclose(out);
  Asked a{yes, std::string(buf, len)};
  std::free(buf);
  return a;
}

}  // namespace

TEST_CASE("confirm: yes and no, as LVM2 reads them") {
  const std::string q = "Do you really want to remove active logical volume vg0/lv0? [y/n]: ";
  for (const char* yes : {"y\n", "Y\n", "yes\n", "YES\n", "  ye \n"}) {
    INFO(yes);
    Asked a = ask(yes);
    CHECK(a.yes);
    CHECK(a.shown == q);
  }
  for (const char* no : {"n\n", "no\n", "No\n"}) {
    INFO(no);
    CHECK(!ask(no).yes);
  }
}

TEST_CASE("confirm: end of input is no; invalid input asks again") {
  const std::string q = "Do you really want to remove active logical volume vg0/lv0? [y/n]: ";
  Asked a = ask("");
  CHECK(!a.yes);
  CHECK(a.shown == q + "[n]\n");
  a = ask("y");  // no newline: not an answer
  CHECK(!a.yes);
  CHECK(a.shown == q + "\n[n]\n");
  a = ask("maybe\n\ny\n");
  CHECK(a.yes);
  CHECK(a.shown == q + "  WARNING: Invalid input 'maybe'.\n" + q + "  WARNING: Invalid input ''.\n" + q);
  a = ask("yesplease\n");
  CHECK(!a.yes);
}
