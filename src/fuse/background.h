// Going to the background once the mount is up, like libfuse's
// fuse_daemonize, with one difference: the user's `vgfs mount` returns only
// when the daemon says its mount is settled (Background::ready), not as soon
// as the fork is done. With -o io_uring the rings register after INIT, in
// the daemon; a user who switches enable_uring back to N right after `vgfs
// mount` returned must not take io_uring from the mount (README, "FUSE over
// io_uring").
//
// Invariant: the parent exits 0 after ready() or when the daemon has been
// silent for kSettleTimeout (the mount exists either way), and 1 when the
// daemon died before ready(); ready() may be called any number of times,
// from any thread.
#pragma once

namespace vgfs {

class Background {
 public:
  // In the foreground: changes to "/" and returns 0. Otherwise forks: the
  // parent waits as described above and never returns; the child starts a
  // new session, changes to "/", puts /dev/null on stdin/stdout/stderr and
  // returns 0. Returns -1 when the fork failed.
  static int start(bool foreground);

  // The mount serves requests the way it will from now on: let the parent go.
  static void ready();
};

}  // namespace vgfs
