// Fuzz target: parse_command (include/vgfs/control.h), the line a user
// writes to `.vgfs/ctl`.
//
// Oracle: a line is refused with EINVAL and a sentence, or the Command is
// fully checked (a known verb, valid names, a job number, a size > 0, an
// absolute path), and written back as a canonical line it parses to the same
// Command.
// Paths are written back with quote_argument(), as the CLI writes them.
#include <fmt/format.h>

#include "fuzz_util.h"
#include "vgfs/control.h"

using namespace vgfs;

namespace {

std::string canonical(const Command& c) {
  std::string line = c.verb;
  auto add = [&](const std::string& w) { line += " " + w; };
  if (c.verb == "move") {
    add(c.lv + (c.les ? ":" + format_range(c.les->first, c.les->count) : ""));
    add(c.pv + (c.pe ? fmt::format(":{}", *c.pe) : ""));
  } else if (c.verb == "pvmove") {
    add(c.pv);
  } else if (c.verb == "abort" || c.verb == "pause" || c.verb == "resume") {
    add(fmt::format("{}", c.job));
  } else if (c.verb == "limit") {
    add(fmt::format("{} {}", c.job, c.rate));
  } else if (c.verb == "lvcreate" || c.verb == "lvextend" || c.verb == "lvreduce") {
    add(c.lv);
    add(fmt::format("{}", c.size));
  } else if (c.verb == "lvremove") {
    add(c.lv);
  } else if (c.verb == "lvrename") {
    add(c.lv);
    add(c.new_name);
  } else if (c.verb == "pvadd") {
    Result<std::string> quoted = quote_argument(c.path);
    FUZZ_CHECK(quoted.ok(), "pvadd path cannot be quoted: " + c.path);
    add(*quoted);
    if (!c.pv.empty()) add(c.pv);
  } else if (c.verb == "pvremove") {
    add(c.pv);
  }
  for (const std::string& d : c.dest_pvs) add(d);
  return line + "\n";
}

bool same(const Command& a, const Command& b) {
  return a.verb == b.verb && a.lv == b.lv && a.new_name == b.new_name && a.size == b.size && a.path == b.path &&
         a.les.has_value() == b.les.has_value() && (!a.les || (a.les->first == b.les->first && a.les->count == b.les->count)) &&
         a.pv == b.pv && a.pe == b.pe && a.dest_pvs == b.dest_pvs && a.job == b.job && a.rate == b.rate;
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
  const Command& cmd = *c;
  const std::string& v = cmd.verb;
  if (!cmd.lv.empty() || v == "move" || v.starts_with("lv")) FUZZ_CHECK(check_name("LV", cmd.lv).ok(), "LV " + cmd.lv);
  if (v == "lvrename") FUZZ_CHECK(check_name("LV", cmd.new_name).ok(), "new name " + cmd.new_name);
  if (!cmd.pv.empty() || v == "move" || v == "pvmove" || v == "pvremove")
    FUZZ_CHECK(check_name("PV", cmd.pv).ok(), "PV " + cmd.pv);
  for (const std::string& d : cmd.dest_pvs) FUZZ_CHECK(check_name("PV", d).ok(), "destination PV " + d);
  if (v == "abort" || v == "pause" || v == "resume" || v == "limit") FUZZ_CHECK(cmd.job != 0, "job 0");
  if (v == "lvcreate" || v == "lvextend" || v == "lvreduce") FUZZ_CHECK(cmd.size > 0, "size 0");
  if (v == "pvadd") FUZZ_CHECK(!cmd.path.empty() && cmd.path[0] == '/', "pvadd path " + cmd.path);
  if (cmd.les) FUZZ_CHECK(cmd.les->count > 0, "an empty LE range");

  const std::string line2 = canonical(cmd);
  Result<Command> again = parse_command(line2);
  FUZZ_CHECK(again.ok(), "the canonical form \"" + line2 + "\" does not parse: " + again.status().message());
  FUZZ_CHECK(same(cmd, *again), "the canonical form \"" + line2 + "\" parses to another command");
  return 0;
}
