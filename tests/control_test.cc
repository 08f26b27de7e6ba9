// Unit tests of the control protocol (include/vgfs/control.h).
#include <doctest/doctest.h>

#include <cerrno>
#include <string>

#include "vgfs/control.h"

using namespace vgfs;

namespace {
bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}
}  // namespace

TEST_CASE("parse_command: unknown verbs are EINVAL 'unknown command'") {
  for (const char* line : {"frobnicate 1", "frobnicate 1\n", "FROBNICATE a b c", "xyzzy", "  frobnicate  \n"}) {
    CAPTURE(line);
    Result<Command> r = parse_command(line);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK(r.status().message().find("unknown command") != std::string::npos);
  }
}

TEST_CASE("parse_command: empty and blank lines are EINVAL") {
  for (const char* line : {"", "\n", "   ", " \t \n"}) {
    CAPTURE(line);
    Result<Command> r = parse_command(line);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
    CHECK_FALSE(r.status().message().empty());
  }
}

TEST_CASE("Reply::from an error status") {
  Status s = Status::Error(ENOENT, "no LV named lv9");
  Reply r = Reply::from(s);
  CHECK(r.code == ENOENT);
  CHECK(starts_with(r.text, "error: "));
  CHECK(ends_with(r.text, "\n"));
  CHECK(r.text.find("no LV named lv9") != std::string::npos);
  CHECK(r.text.find('\n') == r.text.size() - 1);  // one line

  Reply busy = Reply::from(Status::Error(EBUSY, "range busy"));
  CHECK(busy.code == EBUSY);
  CHECK(starts_with(busy.text, "error: "));
  CHECK(ends_with(busy.text, "\n"));

  Result<Command> bad = parse_command("frobnicate 1");
  REQUIRE_FALSE(bad.ok());
  Reply from_parse = Reply::from(bad.status());
  CHECK(from_parse.code == EINVAL);
  CHECK(starts_with(from_parse.text, "error: "));
  CHECK(from_parse.text.find("unknown command") != std::string::npos);
  CHECK(ends_with(from_parse.text, "\n"));
}

TEST_CASE("Reply::ok") {
  Reply r = Reply::ok("job 1");
  CHECK(r.code == 0);
  CHECK(r.text == "ok job 1\n");
  CHECK(Reply::ok("jobs 1,2,3").text == "ok jobs 1,2,3\n");
}
