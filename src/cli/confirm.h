// The confirmation LVM2 asks for before a command destroys LV data
// (lvremove, lvreduce), unless -y/--yes.
//
// As LVM2's yes_no_prompt(): the question goes to stderr and the answer is
// read from stdin, a terminal or not (so `echo y | vgfs lvremove ...`
// works, as with LVM2). "y"/"yes"/"n"/"no" (any case, a prefix, blanks
// around) and a newline answer it; anything else is "Invalid input" and the
// question is asked again; end of input before a whole answer line
// (stdin from /dev/null, a closed pipe, Ctrl-D) is no, shown as "[n]".
//
// Invariant: returns true only for a yes followed by a newline.
#pragma once

#include <cstdio>
#include <string>

namespace vgfs::cli {

bool confirm(const std::string& question, std::FILE* in = stdin, std::FILE* out = stderr);

}  // namespace vgfs::cli
