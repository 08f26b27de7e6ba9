#include "vgfs/log.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "vgfs/escape.h"

namespace vgfs::log {

namespace {

std::mutex mutex;                 // one line at a time, and the sink with it
Sink sink = Sink::kStderr;
// Until a mount configures the log, only warnings and errors: the CLI's
// offline commands print what they always printed.
std::atomic<int> max_level{static_cast<int>(Level::kWarning)};
int socket_fd = -1;               // VGFS_SYSLOG_SOCKET, connected

int priority(Level level) {
  switch (level) {
    case Level::kError: return LOG_ERR;
    case Level::kWarning: return LOG_WARNING;
    case Level::kInfo: return LOG_INFO;
    case Level::kDebug: return LOG_DEBUG;
  }
  return LOG_INFO;
}

int connect_test_socket(const char* path) {
  sockaddr_un addr{};
  if (std::strlen(path) >= sizeof(addr.sun_path)) return -1;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

void configure(Sink s, Level level) {
  std::lock_guard lock(mutex);
  max_level = static_cast<int>(level);
  sink = s;
  if (socket_fd >= 0) ::close(socket_fd);
  socket_fd = -1;
  if (s != Sink::kSyslog) return;
  if (const char* path = std::getenv("VGFS_SYSLOG_SOCKET"); path && *path) socket_fd = connect_test_socket(path);
  if (socket_fd < 0) ::openlog("vgfs", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

bool enabled(Level level) { return static_cast<int>(level) <= max_level.load(std::memory_order_relaxed); }

std::string format_line(Level level, std::string_view message) {
  const char* tag = level == Level::kWarning ? "warning: " : level == Level::kDebug ? "debug: " : "";
  return fmt::format("vgfs: {}{}", tag, printable(message));
}

std::string format_syslog(Level level, std::string_view message, int pid) {
  return fmt::format("<{}>vgfs[{}]: {}", LOG_DAEMON | priority(level), pid, printable(message));
}

void write(Level level, std::string_view message) {
  if (!enabled(level)) return;
  std::lock_guard lock(mutex);
  if (sink == Sink::kStderr) {
    std::string line = format_line(level, message) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  } else if (socket_fd >= 0) {
    std::string d = format_syslog(level, message, static_cast<int>(::getpid()));
    (void)::send(socket_fd, d.data(), d.size(), MSG_NOSIGNAL);
  } else {
    ::syslog(priority(level), "%s", printable(message).c_str());
  }
}

}  // namespace vgfs::log
