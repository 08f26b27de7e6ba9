#include "vgfs/log.h"

#include <syslog.h>

#include <doctest/doctest.h>

namespace vgfs {

TEST_CASE("log lines: level tag on stderr, control characters escaped") {
  CHECK(log::format_line(log::Level::kInfo, "job 3 started") == "vgfs: job 3 started");
  CHECK(log::format_line(log::Level::kWarning, "seqno 4 not written") == "vgfs: warning: seqno 4 not written");
  CHECK(log::format_line(log::Level::kError, "cannot mount") == "vgfs: cannot mount");
  CHECK(log::format_line(log::Level::kDebug, "x") == "vgfs: debug: x");
  // A reason read from disk cannot break the line in two.
  CHECK(log::format_line(log::Level::kInfo, "a\nb") == "vgfs: a\\x0ab");
}

TEST_CASE("log syslog datagram: PRI is LOG_DAEMON plus the severity") {
  CHECK(log::format_syslog(log::Level::kInfo, "mounted", 42) == "<30>vgfs[42]: mounted");
  CHECK(log::format_syslog(log::Level::kWarning, "w", 7) == "<28>vgfs[7]: w");
  CHECK(log::format_syslog(log::Level::kError, "e\r", 7) == "<27>vgfs[7]: e\\x0d");
}

TEST_CASE("log level: debug lines only after configure(kDebug)") {
  log::configure(log::Sink::kStderr, log::Level::kInfo);
  CHECK(log::enabled(log::Level::kInfo));
  CHECK_FALSE(log::enabled(log::Level::kDebug));
  log::configure(log::Sink::kStderr, log::Level::kDebug);
  CHECK(log::enabled(log::Level::kDebug));
  log::configure(log::Sink::kStderr, log::Level::kWarning);
}

}  // namespace vgfs
