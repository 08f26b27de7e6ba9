// LV reads and writes that do not wait for their PVs (VolumeSet::AsyncIo,
// include/vgfs/volume.h): the FUSE layer replies from their completions, so
// a few FUSE threads keep many NBD requests in flight (docs/nbd.md).
#include <algorithm>

#include "vgfs/volume.h"

namespace vgfs {

void VolumeSet::AsyncIo::piece_done(PvRequest& request, Status status) {
  auto& io = *static_cast<AsyncIo*>(request.context);
  // Only the first failure writes error_; finish_one()'s acq_rel count
  // publishes it to the thread that calls `done`.
  if (!status.ok() && !io.failed_.exchange(true, std::memory_order_acq_rel)) io.error_ = std::move(status);
  io.finish_one();
}

void VolumeSet::AsyncIo::finish_one() {
  if (pending_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // Every piece has completed: the PEs may change hands now. A read's bytes
  // are in the caller's buffer; a write's are on the PVs.
  guard_.reset();
  Result<size_t> result = failed_.load(std::memory_order_acquire) ? Result<size_t>(std::move(error_))
                                                                  : Result<size_t>(length_);
  error_ = Status();
  done(*this, std::move(result));  // may reuse or free *this: nothing after it
}

bool VolumeSet::start_read(AsyncIo& io, uint32_t slot, uint64_t offset, char* buf, size_t length) {
  return start(io, false, slot, offset, buf, length);
}

bool VolumeSet::start_write(AsyncIo& io, uint32_t slot, uint64_t offset, const char* buf, size_t length) {
  // PvRequest::buf is not const for reads' sake; a write only reads it.
  return start(io, true, slot, offset, const_cast<char*>(buf), length);
}

bool VolumeSet::start(AsyncIo& io, bool write, uint32_t slot, uint64_t offset, char* buf, size_t length) {
  io.guard_.emplace(*this);
  // A write that saw no transfer under its guard finishes before a job that
  // starts now copies anything: the job's start waits for it (quiesce()).
  bool ok = !(write && has_transfers(slot)) && length <= kMaxIoSize;
  PvPiece pieces[kMaxPieces];
  size_t n = ok ? map(slot, offset, length, pieces) : 0;
  ok = ok && n > 0 && n <= kMaxAsyncPieces;
  for (size_t i = 0; ok && i < n; ++i) {
    ok = pieces[i].dev->capabilities().async_submit;
    // A PV that shrank under the mount: the synchronous path reports it.
    if (ok && write) ok = pieces[i].dev->check_range(pieces[i].offset, pieces[i].length).ok();
  }
  if (!ok) {
    io.guard_.reset();
    return false;
  }
  if (write) mark_written(slot);  // before any PV sees it: flush(slot)
  io.failed_.store(false, std::memory_order_relaxed);
  io.length_ = 0;
  for (size_t i = 0; i < n; ++i) io.length_ += pieces[i].length;
  // One count per piece plus one held while sending, so no completion can
  // finish the op (and let its owner reuse it) before the last is sent.
  io.pending_.store(n + 1, std::memory_order_relaxed);
  size_t at = 0;
  for (size_t i = 0; i < n; ++i) {
    PvRequest& r = io.requests_[i];
    r.op = write ? PvRequest::Op::kWrite : PvRequest::Op::kRead;
    r.buf = buf + at;
    r.length = pieces[i].length;
    r.offset = pieces[i].offset;
    r.flags = WriteFlags::kNone;
    r.done = &AsyncIo::piece_done;
    r.context = &io;
    at += pieces[i].length;
    pieces[i].dev->submit(r);
  }
  io.finish_one();
  return true;
}

}  // namespace vgfs
