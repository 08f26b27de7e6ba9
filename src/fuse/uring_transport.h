// FUSE over io_uring under libfuse 3.14's low-level session
// (docs/design.md, "FUSE transport").
//
// Invariant: a request taken from a ring entry is answered on that entry,
// once, through the same fuse_lowlevel_ops handlers that serve /dev/fuse,
// and only the thread of the entry's queue touches that queue's ring (a
// worker that answered a request hands the entry back to it). Everything that does
// not come from a ring (INIT, FORGET, INTERRUPT, notifications, requests sent
// before the rings are registered) keeps going through /dev/fuse, which the
// session loop goes on reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

struct fuse_session;

namespace vgfs {

class UringTransport {
 public:
  // Whether the kernel can serve this mount over io_uring at all; when it
  // cannot, the one-line reason (enable_uring off, no such module parameter,
  // io_uring refused). Cheap; run it before daemonizing so the line is seen.
  static bool kernel_ready(std::string* why);

  // Whether the handler of a request (its opcode and inode) may block for
  // long (fsync, a control command, a metadata commit): such requests are
  // served by worker threads so the others of their queue go on.
  using MayBlock = bool (*)(uint32_t opcode, uint64_t nodeid);

  // Sets up, for every possible CPU, a queue (one io_uring, one thread, a
  // few ring entries of a header and a payload buffer each), a few workers
  // for requests `may_block` names, and hooks the session's I/O
  // (fuse_session_custom_io): call
  // after fuse_session_mount and fuse_daemonize, before the session loop.
  // The rings start when INIT is answered, if the kernel offered io_uring
  // there; otherwise /dev/fuse serves alone and `log` gets the reason.
  // `on_settled` runs once, on a session or ring thread, when the transport
  // is settled: INIT answered without io_uring, or every ring entry
  // registered with the kernel (or refused). Only then may enable_uring go
  // back to N without taking io_uring from this mount: `vgfs mount` returns
  // then (run_mount). Returns nullptr with *why set when nothing could be
  // set up (on_settled is not called then).
  static std::unique_ptr<UringTransport> start(fuse_session* se, size_t max_payload, bool debug, MayBlock may_block,
                                               std::function<void()> on_settled, std::string* why);

  ~UringTransport();  // after unmount: stops and joins the ring threads
  UringTransport(const UringTransport&) = delete;
  UringTransport& operator=(const UringTransport&) = delete;

  // For a handler: the payload buffer of the ring request the calling thread
  // is serving, or an empty span on /dev/fuse. A reply whose data already
  // sits at the start of this buffer goes back without a copy.
  static std::span<char> reply_buffer();

  struct Impl;

 private:
  explicit UringTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vgfs
