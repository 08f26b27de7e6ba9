// Unit tests of the LVM2 metadata text parser and emitter
// (include/vgfs/lvm2_config.h).
#include <doctest/doctest.h>

#include <string>

#include "lvm2_fixture.h"
#include "vgfs/lvm2_config.h"

using namespace vgfs;
using namespace vgfs::lvm2;

namespace {

ConfigTree parse_ok(std::string_view text) {
  Result<ConfigTree> t = parse_config(text, "t");
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  return *t;
}

std::string error_of(std::string_view text) {
  Result<ConfigTree> t = parse_config(text, "t");
  REQUIRE_FALSE(t.ok());
  CHECK(t.status().code() == EINVAL);
  return t.status().message();
}

void check_round_trip(std::string_view text) {
  ConfigTree once = parse_ok(text);
  const std::string emitted = emit_config(once);
  Result<ConfigTree> twice = parse_config(emitted, "emitted");
  const std::string why = twice.ok() ? "" : twice.status().message() + "\n" + emitted;
  REQUIRE_MESSAGE(twice.ok(), why);
  CHECK(*twice == once);
  CHECK(emit_config(*twice) == emitted);
}

}  // namespace

TEST_CASE("lvm2 text: LVM2's own metadata parses, keeps every key in order, and round-trips") {
  ConfigTree t = parse_ok(lvm2_fixture::kVgText);
  REQUIRE(t.top.size() == 6);
  CHECK(t.top[0].key == "vgp");
  CHECK(t.top[0].section);
  CHECK(t.top[1].key == "contents");
  CHECK(t.top[5].key == "creation_time");
  CHECK(t.top[5].values[0].integer == 1796396165);
  const ConfigNode& vg = t.top[0];
  CHECK(vg.children[0].key == "id");
  CHECK(vg.find("seqno")->values[0] == ConfigValue::of_int(9));
  const ConfigNode* status = vg.find("status");
  REQUIRE(status);
  CHECK(status->list);
  CHECK(status->values.size() == 3);
  CHECK(status->values[2].text == "WRITE");
  CHECK(vg.find("flags")->list);
  CHECK(vg.find("flags")->values.empty());
  // Keys vgfs does not model stay, e.g. the thin pool's.
  const ConfigNode* pool = vg.find("logical_volumes")->find("pool")->find("segment1");
  REQUIRE(pool);
  CHECK(pool->find("discards")->values[0].text == "passdown");
  check_round_trip(lvm2_fixture::kVgText);
  // The emitted text keeps LVM2's style where GRUB's reader looks.
  const std::string emitted = emit_config(t);
  CHECK(emitted.find("extent_size = 8192\n") != std::string::npos);
  CHECK(emitted.find("stripes = [\n\"pv0\", 0\n]") != std::string::npos);
  CHECK(emitted.find("stripes = [\n\"pv0\", 2,\n\"pv1\", 0\n]") != std::string::npos);
  CHECK(emitted.rfind("vgp {\n", 0) == 0);
}

TEST_CASE("lvm2 text: values") {
  ConfigTree t = parse_ok(
      "a = 10 b = -5 c = 010 d = 1.5 e = \"q\\\"uote\\\\back\\x\" f = 'raw\\' g = [1, \"two\" 3]\n"
      "h = [] i = bare j = 9223372036854775807 k = -9223372036854775808 \"odd key\" = 1 # comment = 2\n");
  CHECK(t.find("a")->values[0].integer == 10);
  CHECK(t.find("b")->values[0].integer == -5);
  CHECK(t.find("c")->values[0].integer == 8);  // octal, as strtoll base 0 reads it
  CHECK(t.find("d")->values[0].kind == ConfigValue::Kind::kFloat);
  CHECK(t.find("d")->values[0].text == "1.5");
  CHECK(t.find("e")->values[0].text == "q\"uote\\back\\x");
  CHECK(t.find("f")->values[0].text == "raw\\");
  CHECK(t.find("g")->values.size() == 3);
  CHECK(t.find("h")->list);
  CHECK(t.find("i")->values[0].text == "bare");
  CHECK(t.find("j")->values[0].integer == INT64_MAX);
  CHECK(t.find("k")->values[0].integer == INT64_MIN);
  CHECK(t.find("odd key"));
  CHECK_FALSE(t.find("comment"));
  check_round_trip("a = 10 b = -5 c = 010 d = 1.5 e = \"q\\\"uote\\\\back\\x\" f = 'raw\\' g = [1, \"two\" 3]\n"
                   "h = [] i = bare \"odd key\" = 1 \"a#b\" { \"x\\\"y\" = '\"' }\n");
  // A NUL ends the text, as in a metadata area.
  CHECK(parse_ok(std::string("a = 1\n\0b = {", 13)).top.size() == 1);
}

TEST_CASE("lvm2 text: errors name the line and what is wrong") {
  CHECK(error_of("a = 1\nb = \"open\n") == "t: line 2: unterminated string");
  CHECK(error_of("a = [1, 2\n\n") == "t: line 1: unterminated list of a");
  CHECK(error_of("vg {\nx = 1\n") == "t: line 1: section vg is never closed");
  CHECK(error_of("a = 1\na = 2\n") == "t: line 2: key a appears twice in one section");
  CHECK(error_of("}") == "t: line 1: a '}' without a section to close");
  CHECK(error_of("a 1") == "t: line 1: expected '=' or '{' after key a");
  CHECK(error_of("a = ") == "t: line 1: key a has no value");
  CHECK(error_of("a = [[1]]") == "t: line 1: a list inside the list of a");
  CHECK(error_of("a = 9223372036854775808") == "t: line 1: integer 9223372036854775808 is out of 64-bit range");
  CHECK(error_of("a = 08") == "t: line 1: \"08\" is not an octal number");
  CHECK(error_of("a = -") == "t: line 1: \"-\" is not a number");
  CHECK(error_of("= 1") == "t: line 1: expected a key, found '='");
  // An empty quoted key at the very end: the message must not read past the
  // text (fuzz/regressions/lvm2_text/empty-quoted-key-at-end).
  CHECK(error_of("\"\"") == "t: line 1: expected a key, found the end of the text");
  CHECK(error_of(std::string_view("x = 1\n''", 8)) == "t: line 2: expected a key, found the end of the text");
  std::string deep;
  for (int i = 0; i < kMaxDepth + 1; ++i) deep += "s {";
  CHECK(error_of(deep).find("nested deeper than 32") != std::string::npos);
  // Duplicate keys in different sections are fine.
  parse_ok("a { x = 1 } b { x = 1 }");
}

TEST_CASE("lvm2 text: repeated keys are found in big sections too, naming the second place") {
  std::string text = "lvs {\n";
  for (int i = 0; i < 40; ++i) text += "k" + std::to_string(i) + " = 1\n";
  text += "k7 = 2\nk3 = 3\n}\n";
  CHECK(error_of(text) == "t: line 42: key k7 appears twice in one section");
}

TEST_CASE("lvm2 text: the head of a text stops at the first section's keys asked for") {
  // What follows the head is not read: damage there does not matter to it.
  const std::string text = "vg {\nid = \"x\"\nseqno = 7\nphysical_volumes {\npv0 {\n}\n}\nlogical_volumes { oops\n";
  Result<ConfigTree> head = parse_config_head(text, "t");
  REQUIRE(head.ok());
  REQUIRE(head->top.size() == 1);
  CHECK(head->top[0].children.size() == 2);
  Result<ConfigTree> more = parse_config_head(text, "t", {"id", "seqno", "physical_volumes"});
  REQUIRE(more.ok());
  CHECK(more->top[0].children.size() == 3);
  CHECK_FALSE(parse_config(text, "t").ok());
  // A text without the keys is read whole, errors and all.
  CHECK_FALSE(parse_config_head("vg {\nid = \"x\"\n} b = [", "t").ok());
}
