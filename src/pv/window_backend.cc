// A PV inside a byte range of another backend (include/vgfs/window_backend.h).
#include "vgfs/window_backend.h"

#include <fmt/format.h>

#include <algorithm>

namespace vgfs {

Result<std::unique_ptr<WindowBackend>> WindowBackend::open(std::shared_ptr<const PvBackend> base, uint64_t offset,
                                                           uint64_t length, std::string label) {
  if (!base) return Status::Error(EINVAL, fmt::format("{}: no device under the window", label));
  const uint64_t size = base->size();
  if (offset > size || length > size - offset)
    return Status::Error(EINVAL, fmt::format("{}: bytes {}+{} do not fit in {}, which is {} bytes", label, offset,
                                             length, base->label(), size));
  return std::unique_ptr<WindowBackend>(new WindowBackend(std::move(base), offset, length, std::move(label)));
}

Status WindowBackend::inside(const char* what, uint64_t offset, uint64_t length) const {
  if (offset <= length_ && length <= length_ - offset) return Status::Ok();
  return Status::Error(EIO, fmt::format("{}: {} of {} bytes at byte {} lies outside its {} bytes", label(), what,
                                        length, offset, length_));
}

PvCapabilities WindowBackend::capabilities() const {
  PvCapabilities c = base_->capabilities();
  c.local_fd_offset += offset_;
  return c;
}

Status WindowBackend::check_range(uint64_t offset, uint64_t length) const {
  VGFS_RETURN_IF_ERROR(inside("range", offset, length));
  return base_->check_range(offset_ + offset, length);
}

Result<PvExtent> WindowBackend::extent_at(uint64_t offset, uint64_t length) const {
  VGFS_RETURN_IF_ERROR(inside("extent query", offset, length));
  Result<PvExtent> e = base_->extent_at(offset_ + offset, length);
  if (!e.ok()) return e.status();
  return PvExtent{offset, std::min(e->length, length), e->data};
}

Status WindowBackend::do_read(void* buf, uint64_t length, uint64_t offset) const {
  VGFS_RETURN_IF_ERROR(inside("read", offset, length));
  return base_->read(buf, length, offset_ + offset);
}

Status WindowBackend::do_write(const void* buf, uint64_t length, uint64_t offset, bool fua) const {
  VGFS_RETURN_IF_ERROR(inside("write", offset, length));
  return base_->write(buf, length, offset_ + offset, fua ? WriteFlags::kFua : WriteFlags::kNone);
}

Status WindowBackend::do_discard(uint64_t offset, uint64_t length) const {
  VGFS_RETURN_IF_ERROR(inside("discard", offset, length));
  return base_->discard(offset_ + offset, length);
}

Status WindowBackend::do_write_zeroes(uint64_t offset, uint64_t length) const {
  VGFS_RETURN_IF_ERROR(inside("zeroing", offset, length));
  return base_->write_zeroes(offset_ + offset, length);
}

Status WindowBackend::do_zero(uint64_t offset, uint64_t length, bool keep_allocated) const {
  VGFS_RETURN_IF_ERROR(inside("zeroing", offset, length));
  return base_->zero(offset_ + offset, length, keep_allocated);
}

}  // namespace vgfs
