// The control protocol of `.vgfs/ctl` (SPEC §7): one command line in, one
// reply out.
//
// A command line is words separated by blanks (spaces, tabs). A word may
// hold blanks and any other byte but newline and NUL: within double quotes
// blanks are literal, and a backslash, inside quotes or out, takes the next
// byte literally (`\"` and `\\` inside quotes). So `pvadd "/d/a b.img"` and
// `pvadd /d/a\ b.img` both name the file `/d/a b.img`. A line with a NUL
// byte, an unterminated quote or a trailing lone backslash is refused.
//
// Invariant: parse_command() either returns a fully checked Command or an
// EINVAL Status whose sentence says what is malformed; it never touches VG
// state. execute() runs a parsed command against the jobs of a mount. A
// Reply's text is exactly what a reader of the control file sees: "ok ..."
// on success, "error: <sentence>" on failure, newline-terminated.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/status.h"
#include "vgfs/units.h"

namespace vgfs {

class VolumeManager;

struct Command {
  std::string verb;  // move, pvmove, abort, pause, resume, limit, lvcreate, lvextend,
                     // lvreduce, lvremove, lvrename, pvadd, pvremove
  std::string lv;                   // move and the lv* commands (lvrename: the old name)
  std::string new_name;             // lvrename
  uint64_t size = 0;                // lvcreate, lvextend, lvreduce: bytes
  std::string path;                 // pvadd
  std::optional<IndexRange> les;    // move LV:FIRST-LAST
  std::string pv;                   // move (destination), pvmove (source), pvadd (name, may be empty), pvremove
  std::optional<uint64_t> pe;       // move PV:PE
  std::vector<std::string> dest_pvs;  // pvmove destinations, lvcreate candidates
  uint64_t job = 0;                 // abort, pause, resume, limit
  uint64_t rate = 0;                // limit, bytes/s (0 = none)
};

Result<Command> parse_command(std::string_view line);
// One argument as a word of a command line (quoted when it needs to be);
// EINVAL for a newline or NUL byte, which no command can carry.
Result<std::string> quote_argument(std::string_view arg);

struct Reply {
  int code = 0;      // 0 or an errno for the write() of the command
  std::string text;  // "ok ...\n" or "error: ...\n"

  static Reply from(const Status& status);
  static Reply ok(std::string_view what);
};

Reply execute(VolumeManager& manager, const Command& command);

}  // namespace vgfs
