// The owner or group of an LV file as a user types it: a number, or a user
// or group name looked up on this host (getpwnam/getgrnam), as chown(1)
// takes it.
//
// Invariant: what comes back is a numeric id from 0 to 4294967294 (-1, the
// "leave unchanged" value of chown(2), is never one); the metadata keeps
// only the number, as a filesystem does, so a name is resolved once, where
// the command runs.
#pragma once

#include <cstdint>
#include <string_view>

#include "vgfs/status.h"

namespace vgfs {

enum class OwnerKind { kUser, kGroup };

// "1000" -> 1000, "alice" -> alice's uid. An unknown name or a number out of
// range is EINVAL with a message naming the text ("no user named \"bob\" on
// this host"), for the caller to prefix with where it came from.
Result<uint32_t> resolve_owner_id(std::string_view text, OwnerKind kind);

}  // namespace vgfs
