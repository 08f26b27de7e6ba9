// The daemon's log: one line per event a user may need after the fact (job
// start and end, metadata repairs, commit problems, mount and unmount).
//
// Invariant: every line goes whole to exactly one sink, chosen once at mount
// (stderr in the foreground and for the CLI, syslog after daemonizing); a
// line never holds a control character (it passes through printable()), so a
// PV path or a reason read from disk cannot break it in two. Thread-safe.
// Not for the per-request path: each call takes a lock and a system call.
#pragma once

#include <string>
#include <string_view>

namespace vgfs::log {

enum class Level { kError = 0, kWarning = 1, kInfo = 2, kDebug = 3 };
enum class Sink { kStderr, kSyslog };

// Sink and the most detailed level written: a mount sets kInfo (kDebug with
// `-o debug`); until then stderr and kWarning, what the CLI always printed.
// syslog: ident "vgfs", facility LOG_DAEMON; the socket is /dev/log through
// syslog(3), or the Unix datagram socket named by VGFS_SYSLOG_SOCKET (for
// tests: a listener of their own where no syslog daemon runs).
void configure(Sink sink, Level level);
bool enabled(Level level);

// The stderr line for a message, without its newline:
// "vgfs: msg", "vgfs: warning: msg", "vgfs: debug: msg" (errors keep the
// "vgfs: msg" form the CLI has always printed).
std::string format_line(Level level, std::string_view message);
// The RFC 3164 datagram sent to VGFS_SYSLOG_SOCKET: "<PRI>vgfs[PID]: msg".
std::string format_syslog(Level level, std::string_view message, int pid);

void write(Level level, std::string_view message);
inline void error(std::string_view m) { write(Level::kError, m); }
inline void warning(std::string_view m) { write(Level::kWarning, m); }
inline void info(std::string_view m) { write(Level::kInfo, m); }
inline void debug(std::string_view m) { write(Level::kDebug, m); }

}  // namespace vgfs::log
