// Unit tests of the control protocol (include/vgfs/control.h, README.md "Control file"):
// parse_command for every verb and every malformed form, and the Reply
// texts a reader of `.vgfs/ctl` sees.
#include <doctest/doctest.h>

#include <cerrno>
#include <string>
#include <variant>
#include <vector>

#include "vgfs/control.h"
#include "vgfs/volume_manager.h"

using namespace vgfs;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

Command parse_ok(const std::string& line) {
  Result<Command> r = parse_command(line);
  REQUIRE_MESSAGE(r.ok(), "\"" << line << "\": " << r.status().message());
  return *r;
}

// The command `line` parses to, which must be a T (the verb's struct).
template <typename T>
T parse_as(const std::string& line) {
  Command c = parse_ok(line);
  REQUIRE_MESSAGE(std::holds_alternative<T>(c), "\"" << line << "\" parsed as " << verb(c));
  CHECK(verb(c) == T::kVerb);
  return std::get<T>(c);
}

void check_einval(const std::string& line) {
  CAPTURE(line);
  Result<Command> r = parse_command(line);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == EINVAL);
  CHECK_FALSE(r.status().message().empty());
  // The sentence is one line: it goes into "error: ...\n".
  CHECK(r.status().message().find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("parse_command: move LV PV") {
  cmd::Move c = parse_as<cmd::Move>("move lv0 pv1");
  CHECK(verb(Command(c)) == "move");
  CHECK(c.lv == "lv0");
  CHECK_FALSE(c.les.has_value());
  CHECK(c.pv == "pv1");
  CHECK_FALSE(c.pe.has_value());
  CHECK(c == cmd::Move{"lv0", std::nullopt, "pv1", std::nullopt});  // no other argument
}

TEST_CASE("parse_command: move LV:FIRST-LAST PV") {
  cmd::Move c = parse_as<cmd::Move>("move lv0:10-20 pv1");
  CHECK(c.lv == "lv0");
  REQUIRE(c.les.has_value());
  CHECK(c.les->first == 10);
  CHECK(c.les->count == 11);
  CHECK(c.les->last() == 20);
  CHECK(c.pv == "pv1");
  CHECK_FALSE(c.pe.has_value());
}

TEST_CASE("parse_command: move LV:N PV:PE") {
  cmd::Move c = parse_as<cmd::Move>("move lv0:7 pv1:100");
  CHECK(c.lv == "lv0");
  REQUIRE(c.les.has_value());
  CHECK(c.les->first == 7);
  CHECK(c.les->count == 1);
  CHECK(c.pv == "pv1");
  REQUIRE(c.pe.has_value());
  CHECK(*c.pe == 100);

  cmd::Move zero = parse_as<cmd::Move>("move lv0:0-0 pv1:0");
  REQUIRE(zero.les.has_value());
  CHECK(zero.les->first == 0);
  CHECK(zero.les->count == 1);
  REQUIRE(zero.pe.has_value());
  CHECK(*zero.pe == 0);
}

TEST_CASE("parse_command: pvmove") {
  cmd::Pvmove one = parse_as<cmd::Pvmove>("pvmove pv0");
  CHECK(one.pv == "pv0");
  CHECK(one.destinations.empty());

  cmd::Pvmove many = parse_as<cmd::Pvmove>("pvmove pv0 pv1 pv2");
  CHECK(many.pv == "pv0");
  CHECK(many.destinations == std::vector<std::string>{"pv1", "pv2"});
}

TEST_CASE("parse_command: move and pvmove take limit=RATE after their arguments") {
  cmd::Move m = parse_as<cmd::Move>("move lv0:1-2 pv1:5 limit=16MiB");
  CHECK(m == cmd::Move{"lv0", IndexRange{1, 2}, "pv1", 5, 16 * MiB});
  CHECK(parse_as<cmd::Move>("move lv0 pv1 limit=1MiB/s").limit == MiB);
  CHECK(parse_as<cmd::Move>("move lv0 pv1").limit == 0);
  cmd::Pvmove p = parse_as<cmd::Pvmove>("pvmove pv0 pv1 pv2 limit=4KiB");
  CHECK(p.destinations == std::vector<std::string>{"pv1", "pv2"});
  CHECK(p.limit == 4 * KiB);
  for (const char* bad : {"move lv0 pv1 limit=fast", "move lv0 pv1 speed=1MiB", "move lv0 pv1 limit=1MiB limit=2MiB",
                          "pvmove pv0 limit=", "move lv0 limit=1MiB", "move limit=1MiB"}) {
    CAPTURE(bad);
    Result<Command> c = parse_command(bad);
    REQUIRE(!c.ok());
    CHECK(c.status().code() == EINVAL);
  }
  // Only move and pvmove have options: a '=' elsewhere is an ordinary word.
  CHECK(!parse_command("lvremove a=b").ok());
}

TEST_CASE("parse_command: abort, pause, resume take a job number") {
  // The job number of an abort, pause or resume; 0 for another verb.
  auto job = [](const Command& c) {
    return std::visit(Overloaded{[](const cmd::Abort& a) { return a.job; }, [](const cmd::Pause& p) { return p.job; },
                                 [](const cmd::Resume& r) { return r.job; }, [](const auto&) { return uint64_t{0}; }},
                      c);
  };
  for (const char* name : {"abort", "pause", "resume"}) {
    CAPTURE(name);
    Command c = parse_ok(std::string(name) + " 3");
    CHECK(verb(c) == name);
    CHECK(job(c) == 3);
    Command big = parse_ok(std::string(name) + " 123456789");
    CHECK(job(big) == 123456789);
  }
  CHECK(std::holds_alternative<cmd::Abort>(parse_ok("abort 3")));
  CHECK(std::holds_alternative<cmd::Pause>(parse_ok("pause 3")));
  CHECK(std::holds_alternative<cmd::Resume>(parse_ok("resume 3")));
}

TEST_CASE("parse_command: limit JOB RATE") {
  cmd::Limit c = parse_as<cmd::Limit>("limit 3 50MiB");
  CHECK(c.job == 3);
  CHECK(c.rate == 50 * MiB);

  cmd::Limit none = parse_as<cmd::Limit>("limit 3 0");
  CHECK(none.job == 3);
  CHECK(none.rate == 0);

  CHECK(parse_as<cmd::Limit>("limit 4 1000").rate == 1000);
  CHECK(parse_as<cmd::Limit>("limit 4 2GiB").rate == 2 * GiB);
  CHECK(parse_as<cmd::Limit>("limit 4 512KiB").rate == 512 * KiB);
}

TEST_CASE("parse_command: trailing newline and extra blanks are accepted") {
  cmd::Abort a = parse_as<cmd::Abort>("abort 3\n");
  CHECK(a.job == 3);

  cmd::Pause crlf = parse_as<cmd::Pause>("pause 5\r\n");
  CHECK(crlf.job == 5);

  cmd::Move m = parse_as<cmd::Move>("  move \t lv0:10-20\t\tpv1:4   \n");
  CHECK(m.lv == "lv0");
  REQUIRE(m.les.has_value());
  CHECK(m.les->first == 10);
  CHECK(m.les->count == 11);
  CHECK(m.pv == "pv1");
  REQUIRE(m.pe.has_value());
  CHECK(*m.pe == 4);

  cmd::Pvmove p = parse_as<cmd::Pvmove>("\tpvmove  pv0\tpv1 \n");
  CHECK(p.pv == "pv0");
  CHECK(p.destinations == std::vector<std::string>{"pv1"});

  cmd::Limit l = parse_as<cmd::Limit>(" limit\t7   50MiB \n");
  CHECK(l.job == 7);
  CHECK(l.rate == 50 * MiB);

  // Job 0 is LVM2's own unfinished pvmove: abort and finish name it.
  cmd::Abort a0 = parse_as<cmd::Abort>("abort 0");
  CHECK(a0.job == 0);
  cmd::Finish f = parse_as<cmd::Finish>("finish 0");
  CHECK(f.job == 0);
  CHECK(f.limit == 0);
  cmd::Finish fl = parse_as<cmd::Finish>("finish 0 limit=20MiB");
  CHECK(fl.limit == 20 * MiB);
}

TEST_CASE("parse_command: malformed commands are EINVAL with a sentence") {
  for (const char* line : {
           "", "\n", "   ", " \t \n", "frob", "frob 1 2", "move", "move lv0", "move lv0 pv1 extra",
           "move lv0:5-3 pv1", "move lv0:a-b pv1", "move lv0: pv1", "move lv0 pv1:x", "move lv0 pv1:3-5",
           "move -bad pv1", "move lv0 .pv1", "move :1-2 pv1", "move lv0 :3", "move lv/0 pv1",
           "pvmove", "pvmove -pv0", "pvmove pv0 pv/1",
           "abort", "abort x", "abort 1 2", "abort -1", "abort 1x",
           "pause", "pause 0", "resume", "resume y",
           "finish", "finish 1", "finish x", "finish 0 limit=", "finish 0 limit=fast", "finish 0 1MiB",
           "limit 1", "limit 1 fast", "limit x 1MiB", "limit 0 1MiB", "limit 1 1MiB 2", "limit",
           "abort 1\nabort 2", "abort 1\nabort 2\n",
       }) {
    check_einval(line);
  }
}

TEST_CASE("parse_command: errors name what is wrong") {
  Result<Command> unknown = parse_command("frob");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().message().find("frob") != std::string::npos);

  Result<Command> job = parse_command("abort x");
  REQUIRE_FALSE(job.ok());
  CHECK(job.status().message().find("\"x\"") != std::string::npos);

  Result<Command> two = parse_command("abort 1\nabort 2");
  REQUIRE_FALSE(two.ok());
  CHECK(two.status().code() == EINVAL);
}

TEST_CASE("Reply::from an error status") {
  Status s = Status::Error(ENOENT, "no LV named lv9");
  Reply r = Reply::from(s);
  CHECK(r.code == ENOENT);
  CHECK(r.text == "error: no LV named lv9\n");

  Reply busy = Reply::from(Status::Error(EBUSY, "range busy"));
  CHECK(busy.code == EBUSY);
  CHECK(busy.text == "error: range busy\n");

  Result<Command> bad = parse_command("frob 1");
  REQUIRE_FALSE(bad.ok());
  Reply from_parse = Reply::from(bad.status());
  CHECK(from_parse.code == EINVAL);
  CHECK(starts_with(from_parse.text, "error: "));
  CHECK(ends_with(from_parse.text, "\n"));
  CHECK(from_parse.text.find('\n') == from_parse.text.size() - 1);  // one line
  CHECK(from_parse.text.size() > std::string("error: \n").size());
}

TEST_CASE("Reply::from an ok status and Reply::ok") {
  Reply okay = Reply::from(Status::Ok());
  CHECK(okay.code == 0);
  CHECK(okay.text == "ok\n");

  Reply r = Reply::ok("job 1");
  CHECK(r.code == 0);
  CHECK(r.text == "ok job 1\n");
  CHECK(Reply::ok("jobs 1,2,3").text == "ok jobs 1,2,3\n");
  CHECK(Reply::ok("").text == "ok\n");
}

TEST_CASE("lifecycle verbs parse") {
  cmd::Lvcreate create = parse_as<cmd::Lvcreate>("lvcreate data 10MiB pv0 pv1\n");
  CHECK(create.lv == "data");
  CHECK(create.size == 10 * vgfs::MiB);
  CHECK(create.pvs == std::vector<std::string>{"pv0", "pv1"});
  cmd::Lvextend extend = parse_as<cmd::Lvextend>("lvextend data 1GiB");
  CHECK(extend.lv == "data");
  CHECK(extend.size == vgfs::GiB);
  cmd::Lvreduce reduce = parse_as<cmd::Lvreduce>("lvreduce data 1MiB");
  CHECK(reduce.lv == "data");
  CHECK(reduce.size == vgfs::MiB);
  cmd::Lvrename rename = parse_as<cmd::Lvrename>("lvrename old new");
  CHECK(rename.from == "old");
  CHECK(rename.to == "new");
  cmd::Pvadd add = parse_as<cmd::Pvadd>("pvadd /srv/pv9.img");
  CHECK(add.path == "/srv/pv9.img");
  CHECK(add.name.empty());
  cmd::Pvadd named = parse_as<cmd::Pvadd>("pvadd /srv/pv9.img pv9");
  CHECK(named.name == "pv9");
  CHECK_FALSE(named.force);
  CHECK(parse_as<cmd::Pvadd>("pvadd /srv/pv9.img pv9 force=yes") == cmd::Pvadd{"/srv/pv9.img", "pv9", true});
  CHECK(parse_as<cmd::Pvadd>("pvadd /srv/pv9.img force=yes") == cmd::Pvadd{"/srv/pv9.img", "", true});
  CHECK(parse_as<cmd::Pvadd>("pvadd /srv/force=yes") == cmd::Pvadd{"/srv/force=yes", "", false});  // a path
  CHECK_FALSE(vgfs::parse_command("pvadd /srv/pv9.img pv9 force=no").ok());
  cmd::Pvremove remove = parse_as<cmd::Pvremove>("pvremove pv0");
  CHECK(remove.pv == "pv0");
  REQUIRE(vgfs::parse_command("lvremove data").ok());
  CHECK(parse_as<cmd::Lvremove>("lvremove data").lv == "data");
}

TEST_CASE("lvcreate options: uid=, gid=, mode= after the arguments") {
  cmd::Lvcreate c = parse_as<cmd::Lvcreate>("lvcreate data 10MiB pv0 mode=0640 uid=65534 gid=100");
  CHECK(c.pvs == std::vector<std::string>{"pv0"});
  CHECK(c.uid == std::optional<uint32_t>(65534));
  CHECK(c.gid == std::optional<uint32_t>(100));
  CHECK(c.mode == std::optional<uint32_t>(0640));
  cmd::Lvcreate plain = parse_as<cmd::Lvcreate>("lvcreate data 10MiB");
  CHECK_FALSE(plain.uid);
  CHECK_FALSE(plain.mode);
  CHECK(parse_as<cmd::Lvcreate>("lvcreate data 1MiB mode=755").mode == std::optional<uint32_t>(0755));
  for (const char* line : {"lvcreate data 1MiB uid=x", "lvcreate data 1MiB uid=1 uid=2", "lvcreate data 1MiB mode=0999",
                           "lvcreate data 1MiB mode=4755", "lvcreate data 1MiB gid=4294967295", "lvcreate data 1MiB owner=1",
                           "lvcreate data 1MiB uid=", "lvextend data 1MiB uid=1", "lvcreate uid=1"}) {
    CAPTURE(line);
    Result<vgfs::Command> r = vgfs::parse_command(line);
    CHECK_FALSE(r.ok());
    CHECK(r.status().code() == EINVAL);
  }
}

TEST_CASE("malformed lifecycle commands are EINVAL") {
  for (const char* line : {"lvcreate", "lvcreate data", "lvcreate data 0", "lvcreate data ten", "lvcreate .x 1MiB",
                           "lvextend data", "lvextend data 1MiB pv0", "lvreduce data", "lvremove",
                           "lvremove a b", "lvrename a", "lvrename a -b", "pvadd", "pvadd rel/path.img",
                           "pvadd /a /b /c", "pvremove", "pvremove a b"}) {
    CAPTURE(line);
    Result<vgfs::Command> c = vgfs::parse_command(line);
    CHECK_FALSE(c.ok());
    CHECK(c.status().code() == EINVAL);
    CHECK_FALSE(c.status().message().empty());
  }
}

// ---- quoting (issue 8 defect 10): arguments are carried exactly ----

TEST_CASE("parse_command: quoted and backslash-escaped words keep their blanks") {
  CHECK(parse_as<cmd::Pvadd>("pvadd \"/d/a b.img\"").path == "/d/a b.img");
  CHECK(parse_as<cmd::Pvadd>("pvadd \"/d/a b.img\" pvx").name == "pvx");
  CHECK(parse_as<cmd::Pvadd>("pvadd /d/a\\ b.img").path == "/d/a b.img");
  CHECK(parse_as<cmd::Pvadd>("pvadd \"/d/q\\\"uote\\\\slash\"").path == "/d/q\"uote\\slash");
  CHECK(parse_as<cmd::Pvadd>("pvadd /d/\"x y\"z").path == "/d/x yz");
  CHECK(parse_as<cmd::Pvadd>("pvadd \"/d/tab\there\"").path == "/d/tab\there");
  CHECK(parse_as<cmd::Pvadd>(std::string("pvadd \"/d/\xff\xfe\"")).path == "/d/\xff\xfe");
  // Before quoting existed, the blank split the path and named the PV "b.img".
  cmd::Pvadd c = parse_as<cmd::Pvadd>("pvadd \"/d/a b.img\"");
  CHECK(c.name.empty());
}

TEST_CASE("parse_command: unterminated quotes, lone backslashes and NUL bytes are refused") {
  check_einval("pvadd \"/d/a b.img");
  check_einval("pvadd /d/a\\");
  check_einval(std::string("pvadd /d/a\0b", 12));
  check_einval("pvadd \"/d/a\nb\"");
  CHECK(parse_command("pvadd \"/d/a").status().message().find("unterminated quote") != std::string::npos);
}

// Found by fuzz/control_fuzz.cc (fuzz/regressions/control/pvadd-path-with-cr):
// a bare CR inside a line made `pvadd /s\r ` carry "/s\r" while `pvadd /s\r`
// carried "/s". Only the line's end may hold one; a quoted CR is carried.
TEST_CASE("parse_command: a bare carriage return inside the line is refused, a quoted one is carried") {
  CHECK(parse_command("pvadd /s\r ").status().code() == EINVAL);
  CHECK(parse_command("pvadd /s\r /t").status().message().find("carriage return") != std::string::npos);
  CHECK(parse_as<cmd::Pvadd>("pvadd /s\r\n").path == "/s");
  CHECK(parse_as<cmd::Pvadd>("pvadd \"/s\r\" \n").path == "/s\r");
}

TEST_CASE("quote_argument round-trips through parse_command") {
  for (std::string path : {"/plain", "/d/a b.img", "/q\"uote", "/back\\slash", "/tab\tx", "/cr\rx", "/\xff\xfe",
                           "/trail ", "/\"", "/a  b"}) {
    CAPTURE(path);
    Result<std::string> q = quote_argument(path);
    REQUIRE(q.ok());
    CHECK(parse_as<cmd::Pvadd>("pvadd " + *q + " name").path == path);
    CHECK(parse_as<cmd::Pvadd>("pvadd " + *q + "\n").path == path);
  }
  CHECK(quote_argument("/plain").value() == "/plain");
  CHECK(quote_argument("a\nb").status().code() == EINVAL);
  CHECK(quote_argument("a\nb").status().message().find("newline") != std::string::npos);
  CHECK(quote_argument(std::string("a\0b", 3)).status().code() == EINVAL);
}

TEST_CASE("replies escape control bytes: one line, nothing for the terminal") {
  Reply r = Reply::from(Status::Error(ENOENT, "no file /d/\x1b[31mred\nfake: line"));
  CHECK(r.text == "error: no file /d/\\x1b[31mred\\x0afake: line\n");
  CHECK(Reply::ok("PV x added at /\x07").text == "ok PV x added at /\\x07\n");
}

// The ok replies are worded in src/control/ from the manager's typed
// results; these are the texts integration tests and scripts compare.
TEST_CASE("ok_text words each verb's result as the reply always read") {
  CHECK(ok_text(cmd::Move{"lv0", std::nullopt, "pv1", std::nullopt}, JobsStarted{{7}}) == "job 7");
  CHECK(ok_text(cmd::Move{"lv0", std::nullopt, "pv1", std::nullopt}, JobsStarted{{7, 8, 9}}) == "jobs 7,8,9");
  CHECK(ok_text(cmd::Pvmove{"pv0", {}}, JobsStarted{{3, 4}}) == "jobs 3,4");
  CHECK(ok_text(cmd::Pvmove{"pv0", {}}, JobsStarted{{3, 4}, 2, 260}) ==
        "jobs 3,4 (partial: 2 of the 260 runs on PV pv0 move now: its migration area holds no more job records; run "
        "pvmove pv0 again when these jobs end)");
  CHECK(ok_text(cmd::Lvcreate{"b", 1500 * KiB, {}}, LvSized{"b", 1500 * KiB, 2, MiB}) ==
        "LV b created: 2 extents (2MiB), rounded up from 1500KiB");
  CHECK(ok_text(cmd::Lvextend{"a", 8 * MiB}, LvSized{"a", 8 * MiB, 2, 4 * MiB}) == "LV a extended to 2 extents (8MiB)");
  CHECK(ok_text(cmd::Lvreduce{"a", 3 * MiB}, LvSized{"a", 3 * MiB, 3, MiB}) == "LV a reduced to 3 extents (3MiB)");
  CHECK(ok_text(cmd::Lvremove{"a"}) == "LV a removed");
  CHECK(ok_text(cmd::Lvrename{"a", "b"}) == "LV a renamed to b");
  CHECK(ok_text(cmd::Pvadd{"/d/pv2.img", ""}, PvAdded{"pv2", 63, 4 * MiB}) == "PV pv2 added: 63 extents of 4MiB");
  CHECK(ok_text(cmd::Pvremove{"pv0"}, PvRemoved{"pv0", "vg0"}) ==
        "PV pv0 removed from VG vg0; take it out of the config file too");
}
