// The control protocol of `.vgfs/ctl` (SPEC §7): one command line in, one
// reply out.
//
// Invariant: parse_command() either returns a fully checked Command or an
// EINVAL Status whose sentence says what is malformed; it never touches VG
// state. A Reply's text is exactly what a reader of the control file sees:
// "ok ..." on success, "error: <sentence>" on failure, newline-terminated.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "vgfs/status.h"

namespace vgfs {

struct Command {
  std::string verb;               // lower-case verb, e.g. "move"
  std::vector<std::string> args;  // whitespace-separated arguments
};

// Splits one line (trailing newline allowed) into a known verb and its
// arguments, checking the argument count. Verbs known so far: none; every
// line is answered "unknown command" until jobs and lifecycle land.
Result<Command> parse_command(std::string_view line);

struct Reply {
  int code = 0;      // 0 or an errno for the write() of the command
  std::string text;  // "ok ...\n" or "error: ...\n"

  static Reply from(const Status& status);
  static Reply ok(std::string_view what);
};

}  // namespace vgfs
