// guarded(): runs one FUSE request handler so that no exception leaves it.
//
// Invariant: whatever the handler throws (std::bad_alloc, nlohmann's errors,
// std::system_error, anything), the request is answered exactly once with an
// errno — ENOMEM for an allocation failure, EIO otherwise — one line naming
// the operation and the exception goes to stderr (the daemon log), and the
// worker thread goes on serving. An exception escaping a handler would reach
// libfuse's C code and end the daemon with std::terminate: every LV gone.
//
// It relies on each handler replying as its last step (fuse_reply_* never
// throws): a handler that threw has not replied yet.
//
// Header-only and independent of libfuse (the reply function is a
// parameter), so the unit tests exercise it without a mount.
#pragma once

#include <cerrno>
#include <cstdio>
#include <exception>
#include <new>

namespace vgfs {

// The errno a request fails with for the exception being handled; logs it.
// Call only inside a catch block.
inline int errno_for_current_exception(const char* op) noexcept {
  try {
    throw;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "vgfs: %s request failed: out of memory\n", op);
    return ENOMEM;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vgfs: %s request failed: internal error: %s\n", op, e.what());
    return EIO;
  } catch (...) {
    std::fprintf(stderr, "vgfs: %s request failed: internal error (unknown exception)\n", op);
    return EIO;
  }
}

// Runs `handler()`; when it throws, answers `req` with `reply_err(req, errno)`.
template <class Req, class ReplyErr, class Handler>
void guarded(const char* op, Req req, ReplyErr reply_err, Handler&& handler) noexcept {
  try {
    handler();
  } catch (...) {
    reply_err(req, errno_for_current_exception(op));
  }
}

}  // namespace vgfs
