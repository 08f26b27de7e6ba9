// Opening a PV (include/vgfs/pv_device.h).
#include "vgfs/pv_device.h"

#include <atomic>

#include "vgfs/local_backend.h"
#include "vgfs/nbd_backend.h"
#include "vgfs/nbd_uri.h"

namespace vgfs {

namespace {
std::atomic<PvDevice::BackendWrapper> backend_wrapper{nullptr};
}  // namespace

void PvDevice::set_backend_wrapper(BackendWrapper wrap) { backend_wrapper.store(wrap); }

Result<PvDevice> PvDevice::open(const std::string& path, bool writable, std::string label) {
  std::unique_ptr<PvBackend> backend;
  if (is_nbd_uri(path)) {
    Result<std::unique_ptr<NbdBackend>> nbd = NbdBackend::open(path, writable, std::move(label));
    if (!nbd.ok()) return nbd.status();
    backend = std::move(*nbd);
  } else {
    Result<std::unique_ptr<LocalBackend>> local = LocalBackend::open(path, writable, std::move(label));
    if (!local.ok()) return local.status();
    backend = std::move(*local);
  }
  if (BackendWrapper wrap = backend_wrapper.load()) backend = wrap(path, std::move(backend));
  return from_backend(std::move(backend), path, writable);
}

PvDevice PvDevice::from_backend(std::unique_ptr<PvBackend> backend, std::string path, bool writable) {
  PvDevice d;
  d.backend_ = std::move(backend);
  d.path_ = std::move(path);
  d.writable_ = writable;
  return d;
}

}  // namespace vgfs
