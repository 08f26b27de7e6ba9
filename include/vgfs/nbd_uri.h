// Whether a PV path names an NBD export (docs/nbd.md) rather than a local
// file or block device.
//
// Invariant: a pure test of the scheme; the config keeps such paths as
// written (they are not file names to make absolute) and PvDevice::open
// hands them to the NBD backend (vgfs/nbd_backend.h).
#pragma once

#include <string_view>

namespace vgfs {

inline bool is_nbd_uri(std::string_view path) {
  for (std::string_view scheme : {"nbd://", "nbds://", "nbd+unix://", "nbds+unix://"})
    if (path.substr(0, scheme.size()) == scheme) return true;
  return false;
}

}  // namespace vgfs
