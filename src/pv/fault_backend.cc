// Injected PV faults for tests (include/vgfs/fault_backend.h).
#include "vgfs/fault_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace vgfs {

FaultBackend::FaultBackend(std::unique_ptr<PvBackend> inner, std::string path, FaultInjector* rules)
    : PvBackend(inner->label()), inner_(std::move(inner)), path_(std::move(path)), rules_(rules) {}

std::unique_ptr<PvBackend> FaultBackend::wrap_for_scope(const std::string& path, std::unique_ptr<PvBackend> inner) {
  return std::make_unique<FaultBackend>(std::move(inner), path, nullptr);
}

PvCapabilities FaultBackend::capabilities() const {
  PvCapabilities c = inner_->capabilities();
  if (rules()) {
    c.local_fd = -1;
    c.local_fd_offset = 0;
  }
  return c;
}

Fault FaultBackend::fault_for(FaultOp op, uint64_t offset, uint64_t length) const {
  FaultInjector* f = rules();
  return f ? f->check(op, path_, offset, length) : Fault{};
}

Status FaultBackend::do_read(void* buf, uint64_t length, uint64_t offset) const {
  Fault f = fault_for(FaultOp::kRead, offset, length);
  if (!f.fire) return inner_->read(buf, length, offset);
  if (f.kind == FaultKind::kError)
    return Status::Error(f.error, fmt::format("{}: read at byte {} failed: {}", label(), offset, std::strerror(f.error)));
  // kShort: the first `keep` bytes arrive, then the end of the file.
  if (f.keep >= length) return inner_->read(buf, length, offset);
  const uint64_t keep = f.keep;
  if (keep > 0) VGFS_RETURN_IF_ERROR(inner_->read(buf, keep, offset));
  return Status::Error(EIO, fmt::format("{}: read at byte {} is past the end (has the PV shrunk?)", label(),
                                        offset + keep));
}

Status FaultBackend::do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const {
  Fault f = fault_for(FaultOp::kWrite, offset, length);
  const WriteFlags flags = fua ? WriteFlags::kFua : WriteFlags::kNone;
  if (!f.fire) return inner_->write(buf, length, offset, flags);
  // A torn write puts its first `keep` bytes on the PV, then fails.
  const uint64_t keep = f.kind == FaultKind::kTear ? std::min(f.keep, length) : 0;
  if (keep > 0) VGFS_RETURN_IF_ERROR(inner_->write(buf, keep, offset, flags));
  return Status::Error(EIO, fmt::format("{}: write at byte {} failed: {}", label(), offset, std::strerror(f.error)));
}

Status FaultBackend::do_flush() const {
  if (Fault f = fault_for(FaultOp::kSync, 0, 0); f.fire)
    return Status::Error(EIO, fmt::format("{}: fdatasync failed: {}", label(), std::strerror(f.error)));
  return inner_->flush();
}

Status FaultBackend::do_discard(uint64_t offset, uint64_t length) const {
  if (Fault f = fault_for(FaultOp::kPunch, offset, length); f.fire) {
    if (f.kind == FaultKind::kNoop) return Status::Ok();
    return Status::Error(f.error, fmt::format("{}: discard at byte {} failed: {}", label(), offset, std::strerror(f.error)));
  }
  return inner_->discard(offset, length);
}

}  // namespace vgfs
