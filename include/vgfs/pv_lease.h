// The exclusive lease record a PV reachable from other hosts (an NBD export)
// carries in the room its format leaves for it (VgFormat::lease_offset,
// docs/nbd.md "One mount per export"): who holds the PV, and when the
// holder last said it is alive.
//
// Invariant: a record decodes only with its magic, version and CRC32C
// intact and its strings inside their fields; anything else (zeros, another
// format's bytes, a torn write) is "no lease", never a half-trusted holder.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "vgfs/uuid.h"

namespace vgfs {

constexpr uint64_t kLeaseSize = 4096;

struct LeaseRecord {
  bool held = false;      // false: released by its last holder
  Uuid holder{};          // random, one per taking
  uint64_t counter = 0;   // grows with every renewal
  uint64_t renewed_ms = 0;  // the holder's wall clock at the last renewal (ms since the epoch)
  uint32_t period_s = 0;  // the holder renews this often
  uint32_t expiry_s = 0;  // and counts as gone this long after its last renewal
  uint64_t pid = 0;
  std::string host;       // at most 255 bytes
  std::string boot_id;    // /proc/sys/kernel/random/boot_id, at most 63 bytes
};

// Exactly kLeaseSize bytes.
std::string encode_lease(const LeaseRecord& lease);
std::optional<LeaseRecord> decode_lease(std::string_view block);

// This host's name and boot id, as a lease records them.
std::string lease_host_name();
std::string lease_boot_id();

// Why `lease` (held by someone else) still counts as held at wall-clock
// time `now_ms`, for the refusal; empty when it does not: released, a
// holder on this host (same name and boot id) whose process is gone, or
// one (on any host) not renewed for longer than its expiry.
std::string lease_live_reason(const LeaseRecord& lease, uint64_t now_ms);

}  // namespace vgfs
