// The control protocol of `.vgfs/ctl` (README.md "Control file"): one command line in, one
// reply out.
//
// A command line is words separated by blanks (spaces, tabs). A word may
// hold blanks and any other byte but newline and NUL: within double quotes
// blanks are literal, and a backslash, inside quotes or out, takes the next
// byte literally (`\"` and `\\` inside quotes). So `pvadd "/d/a b.img"` and
// `pvadd /d/a\ b.img` both name the file `/d/a b.img`. A line with a NUL
// byte, an unterminated quote or a trailing lone backslash is refused.
//
// Invariant: parse_command() either returns a fully checked Command (one
// struct per verb, in a std::variant) or an EINVAL Status whose sentence
// says what is malformed; it never touches VG state. execute() runs a parsed
// command against the jobs of a mount; the manager returns typed results and
// only this layer words them. A Reply's text is exactly what a reader of the
// control file sees: "ok ..." on success, "error: <sentence>" on failure,
// newline-terminated.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "vgfs/status.h"
#include "vgfs/units.h"

namespace vgfs {

class VolumeManager;
struct JobsStarted;
struct LvSized;
struct PvAdded;
struct PvRemoved;

// One struct per verb; a Command is exactly one of them. Each holds only
// the arguments its verb takes, checked by parse_command().
namespace cmd {

// `limit=RATE` after the arguments of move and pvmove starts the jobs with
// that copy rate, in force before the first region is copied (a `limit`
// command sent after the reply comes after the copier has started).
struct Move {  // move LV[:LE_FIRST-LE_LAST] PV[:PE_FIRST] [limit=RATE]
  static constexpr std::string_view kVerb = "move";
  std::string lv;
  std::optional<IndexRange> les;  // all of the LV when absent
  std::string pv;                 // the destination
  std::optional<uint64_t> pe;     // the first destination PE, chosen when absent
  uint64_t limit = 0;             // bytes/s for the new jobs, 0 = none
  bool operator==(const Move&) const = default;
};
struct Pvmove {  // pvmove PV [DEST_PV ...] [limit=RATE]
  static constexpr std::string_view kVerb = "pvmove";
  std::string pv;                         // the PV to empty
  std::vector<std::string> destinations;  // any other PV when empty
  uint64_t limit = 0;                     // bytes/s for the new jobs, 0 = none
  bool operator==(const Pvmove&) const = default;
};
struct Abort {  // abort JOB
  static constexpr std::string_view kVerb = "abort";
  uint64_t job = 0;
  bool operator==(const Abort&) const = default;
};
// Job 0 is a move another tool left unfinished (LVM2's pvmove0,
// VgMetadata::foreign_move): abort 0 puts it back, finish 0 hands it to vgfs
// jobs, which start at `limit` like move's.
struct Finish {  // finish 0 [limit=RATE]
  static constexpr std::string_view kVerb = "finish";
  uint64_t job = 0;
  uint64_t limit = 0;  // bytes/s for the new jobs, 0 = none
  bool operator==(const Finish&) const = default;
};
struct Pause {  // pause JOB
  static constexpr std::string_view kVerb = "pause";
  uint64_t job = 0;
  bool operator==(const Pause&) const = default;
};
struct Resume {  // resume JOB
  static constexpr std::string_view kVerb = "resume";
  uint64_t job = 0;
  bool operator==(const Resume&) const = default;
};
struct Limit {  // limit JOB RATE
  static constexpr std::string_view kVerb = "limit";
  uint64_t job = 0;
  uint64_t rate = 0;  // bytes/s, 0 = none
  bool operator==(const Limit&) const = default;
};
// lvcreate's options, like move's, are the trailing words holding '=':
// uid=N gid=N (numbers) and mode=OCTAL (permission bits, <= 0777).
struct Lvcreate {  // lvcreate NAME SIZE [PV ...] [uid=N] [gid=N] [mode=OCTAL]
  static constexpr std::string_view kVerb = "lvcreate";
  std::string lv;
  uint64_t size = 0;             // bytes, > 0
  std::vector<std::string> pvs;  // candidates; any PV when empty
  std::optional<uint32_t> uid{}, gid{}, mode{};  // unset: the mounting user's, mode 0600
  bool operator==(const Lvcreate&) const = default;
};
struct Lvextend {  // lvextend NAME SIZE
  static constexpr std::string_view kVerb = "lvextend";
  std::string lv;
  uint64_t size = 0;  // the new size in bytes, > 0
  bool operator==(const Lvextend&) const = default;
};
struct Lvreduce {  // lvreduce NAME SIZE
  static constexpr std::string_view kVerb = "lvreduce";
  std::string lv;
  uint64_t size = 0;  // the new size in bytes, > 0
  bool operator==(const Lvreduce&) const = default;
};
struct Lvremove {  // lvremove NAME
  static constexpr std::string_view kVerb = "lvremove";
  std::string lv;
  bool operator==(const Lvremove&) const = default;
};
struct Lvrename {  // lvrename OLD NEW
  static constexpr std::string_view kVerb = "lvrename";
  std::string from;
  std::string to;
  bool operator==(const Lvrename&) const = default;
};
struct Pvadd {  // pvadd PATH [NAME] [force=yes]
  static constexpr std::string_view kVerb = "pvadd";
  std::string path;  // absolute
  std::string name;  // empty: the first free pvN
  bool force = false;  // overwrite what the device holds (an old label, data)
  bool operator==(const Pvadd&) const = default;
};
struct Pvremove {  // pvremove PV
  static constexpr std::string_view kVerb = "pvremove";
  std::string pv;
  bool operator==(const Pvremove&) const = default;
};

}  // namespace cmd

using Command = std::variant<cmd::Move, cmd::Pvmove, cmd::Abort, cmd::Finish, cmd::Pause, cmd::Resume, cmd::Limit, cmd::Lvcreate,
                             cmd::Lvextend, cmd::Lvreduce, cmd::Lvremove, cmd::Lvrename, cmd::Pvadd, cmd::Pvremove>;

// A visitor from lambdas, one per verb: std::visit(Overloaded{...}, command)
// does not compile when a verb is left out, so a new verb is handled
// everywhere or the build says where not.
template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;  // clang before 17 deduces no aggregate

// The verb of a command, as the command line spells it.
std::string_view verb(const Command& command);

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

// Runs the command; a commit's warnings are appended to the ok reply.
Reply execute(VolumeManager& manager, const Command& command);

// The words after "ok " for a command the manager carried out (execute()
// uses them; tests check them against the manager's typed results).
std::string ok_text(const cmd::Move& command, const JobsStarted& started);
std::string ok_text(const cmd::Pvmove& command, const JobsStarted& started);
std::string ok_text(const cmd::Finish& command, const JobsStarted& started);
std::string ok_text(const cmd::Lvcreate& command, const LvSized& created);
std::string ok_text(const cmd::Lvextend& command, const LvSized& extended);
std::string ok_text(const cmd::Lvreduce& command, const LvSized& reduced);
std::string ok_text(const cmd::Lvremove& command);
std::string ok_text(const cmd::Lvrename& command);
std::string ok_text(const cmd::Pvadd& command, const PvAdded& added);
std::string ok_text(const cmd::Pvremove& command, const PvRemoved& removed);

}  // namespace vgfs
