// Fuzz target: parse_command (include/vgfs/control.h), the line a user
// writes to `.vgfs/ctl`.
//
// Oracle: a line is refused with EINVAL and a sentence, or the Command is
// fully checked (a known verb, valid names, a job number, a size > 0, an
// absolute path), and written back as a canonical line it parses to the same
// Command.
// Paths are written back with quote_argument(), as the CLI writes them.
#include <fmt/format.h>

#include <variant>

#include "fuzz_util.h"
#include "vgfs/control.h"
#include "vgfs/nbd_uri.h"

using namespace vgfs;

namespace {

// The canonical line of a command: its verb, then each argument as one
// word; paths quoted with quote_argument() as the CLI writes them.
std::string canonical(const Command& command) {
  std::string line(verb(command));
  auto add = [&](const std::string& w) { line += " " + w; };
  auto add_all = [&](const std::vector<std::string>& ws) {
    for (const std::string& w : ws) add(w);
  };
  std::visit(Overloaded{
                 [&](const cmd::Move& c) {
                   add(c.lv + (c.les ? ":" + format_range(c.les->first, c.les->count) : ""));
                   add(c.pv + (c.pe ? fmt::format(":{}", *c.pe) : ""));
                   if (c.limit) add(fmt::format("limit={}", c.limit));
                 },
                 [&](const cmd::Pvmove& c) {
                   add(c.pv);
                   add_all(c.destinations);
                   if (c.limit) add(fmt::format("limit={}", c.limit));
                 },
                 [&](const cmd::Abort& c) { add(fmt::format("{}", c.job)); },
                 [&](const cmd::Finish& c) {
                   add(fmt::format("{}", c.job));
                   if (c.limit) add(fmt::format("limit={}", c.limit));
                 },
                 [&](const cmd::Pause& c) { add(fmt::format("{}", c.job)); },
                 [&](const cmd::Resume& c) { add(fmt::format("{}", c.job)); },
                 [&](const cmd::Limit& c) { add(fmt::format("{} {}", c.job, c.rate)); },
                 [&](const cmd::Lvcreate& c) {
                   add(c.lv);
                   add(fmt::format("{}", c.size));
                   add_all(c.pvs);
                   if (c.uid) add(fmt::format("uid={}", *c.uid));
                   if (c.gid) add(fmt::format("gid={}", *c.gid));
                   if (c.mode) add(fmt::format("mode={:o}", *c.mode));
                 },
                 [&](const cmd::Lvextend& c) {
                   add(c.lv);
                   add(fmt::format("{}", c.size));
                 },
                 [&](const cmd::Lvreduce& c) {
                   add(c.lv);
                   add(fmt::format("{}", c.size));
                 },
                 [&](const cmd::Lvremove& c) { add(c.lv); },
                 [&](const cmd::Lvrename& c) {
                   add(c.from);
                   add(c.to);
                 },
                 [&](const cmd::Pvadd& c) {
                   Result<std::string> quoted = quote_argument(c.path);
                   FUZZ_CHECK(quoted.ok(), "pvadd path cannot be quoted: " + c.path);
                   add(*quoted);
                   if (!c.name.empty()) add(c.name);
                   if (c.force) add("force=yes");
                 },
                 [&](const cmd::Pvremove& c) { add(c.pv); },
             },
             command);
  return line + "\n";
}

void check_lv(const std::string& name) { FUZZ_CHECK(check_name("LV", name).ok(), "LV " + name); }
void check_pv(const std::string& name) { FUZZ_CHECK(check_name("PV", name).ok(), "PV " + name); }
void check_pvs(const std::vector<std::string>& names) {
  for (const std::string& d : names) FUZZ_CHECK(check_name("PV", d).ok(), "destination PV " + d);
}

// Every argument of the command is as parse_command() promises.
void check_fields(const Command& command) {
  std::visit(Overloaded{
                 [](const cmd::Move& c) {
                   check_lv(c.lv);
                   check_pv(c.pv);
                   if (c.les) FUZZ_CHECK(c.les->count > 0, "an empty LE range");
                 },
                 [](const cmd::Pvmove& c) {
                   check_pv(c.pv);
                   check_pvs(c.destinations);
                 },
                 [](const cmd::Abort&) {},  // job 0: another tool's unfinished move
                 [](const cmd::Finish& c) { FUZZ_CHECK(c.job == 0, "finish of a vgfs job"); },
                 [](const cmd::Pause& c) { FUZZ_CHECK(c.job != 0, "job 0"); },
                 [](const cmd::Resume& c) { FUZZ_CHECK(c.job != 0, "job 0"); },
                 [](const cmd::Limit& c) { FUZZ_CHECK(c.job != 0, "job 0"); },
                 [](const cmd::Lvcreate& c) {
                   check_lv(c.lv);
                   FUZZ_CHECK(c.size > 0, "size 0");
                   check_pvs(c.pvs);
                   FUZZ_CHECK(!c.mode || *c.mode <= 0777, "mode beyond 0777");
                 },
                 [](const cmd::Lvextend& c) {
                   check_lv(c.lv);
                   FUZZ_CHECK(c.size > 0, "size 0");
                 },
                 [](const cmd::Lvreduce& c) {
                   check_lv(c.lv);
                   FUZZ_CHECK(c.size > 0, "size 0");
                 },
                 [](const cmd::Lvremove& c) { check_lv(c.lv); },
                 [](const cmd::Lvrename& c) {
                   check_lv(c.from);
                   FUZZ_CHECK(check_name("LV", c.to).ok(), "new name " + c.to);
                 },
                 [](const cmd::Pvadd& c) {
                   // An absolute path, or an NBD URI (docs/nbd.md).
                   FUZZ_CHECK(!c.path.empty() && (c.path[0] == '/' || is_nbd_uri(c.path)), "pvadd path " + c.path);
                   if (!c.name.empty()) check_pv(c.name);
                 },
                 [](const cmd::Pvremove& c) { check_pv(c.pv); },
             },
             command);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view line(reinterpret_cast<const char*>(data), size);
  Result<Command> c = parse_command(line);
  if (!c.ok()) {
    fuzz::check_error(c.status());
    FUZZ_CHECK(c.status().code() == EINVAL, "parse_command refuses with EINVAL");
    return 0;
  }
  check_fields(*c);

  const std::string line2 = canonical(*c);
  Result<Command> again = parse_command(line2);
  FUZZ_CHECK(again.ok(), "the canonical form \"" + line2 + "\" does not parse: " + again.status().message());
  FUZZ_CHECK(*c == *again, "the canonical form \"" + line2 + "\" parses to another command");
  return 0;
}
