#include "fuse/background.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

namespace vgfs {

namespace {

// Long enough for INIT and the ring registration on a loaded machine; after
// it the parent returns anyway, since the mount is there.
constexpr int kSettleTimeoutMs = 10'000;

std::atomic<int> g_ready_fd{-1};  // the write end of the handshake pipe, in the daemon

}  // namespace

int Background::start(bool foreground) {
  if (foreground) {
    (void)chdir("/");
    return 0;
  }
  int handshake[2];
  if (pipe2(handshake, O_CLOEXEC) != 0) {
    std::perror("vgfs: pipe");
    return -1;
  }
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("vgfs: fork");
    return -1;
  }
  if (pid > 0) {  // the user's `vgfs mount`
    ::close(handshake[1]);
    pollfd p{handshake[0], POLLIN, 0};
    int r;
    do r = poll(&p, 1, kSettleTimeoutMs);
    while (r < 0 && errno == EINTR);
    char byte = 0;
    ssize_t n = r > 0 ? ::read(handshake[0], &byte, 1) : -1;
    // EOF without the byte: the daemon exited (or died) before its mount settled.
    _exit(r > 0 && n == 0 ? 1 : 0);
  }
  ::close(handshake[0]);
  if (setsid() == -1) std::perror("vgfs: setsid");
  (void)chdir("/");
  int null = ::open("/dev/null", O_RDWR);
  if (null >= 0) {
    (void)dup2(null, 0);
    (void)dup2(null, 1);
    (void)dup2(null, 2);
    if (null > 2) ::close(null);
  }
  g_ready_fd = handshake[1];
  return 0;
}

void Background::ready() {
  int fd = g_ready_fd.exchange(-1);
  if (fd < 0) return;
  char byte = 1;
  (void)!::write(fd, &byte, 1);
  ::close(fd);
}

}  // namespace vgfs
