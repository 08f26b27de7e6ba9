// Owner and group names to numeric ids (include/vgfs/owner_id.h).
#include "vgfs/owner_id.h"

#include <fmt/format.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <string>
#include <vector>

namespace vgfs {

Result<uint32_t> resolve_owner_id(std::string_view text, OwnerKind kind) {
  const char* what = kind == OwnerKind::kUser ? "user" : "group";
  if (text.empty()) return Status::Error(EINVAL, fmt::format("empty {} (give a name or a number)", what));
  // All digits is an id, as chown(1) takes it; a name never is all digits
  // (useradd refuses those).
  if (std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    uint32_t id = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), id, 10);
    if (ec != std::errc() || p != text.data() + text.size() || id == UINT32_MAX)
      return Status::Error(EINVAL, fmt::format("{} id {} is out of range (0 to 4294967294)", what, text));
    return id;
  }
  // The _r forms: the daemon runs this from several threads at once.
  const std::string name(text);
  long hint = ::sysconf(kind == OwnerKind::kUser ? _SC_GETPW_R_SIZE_MAX : _SC_GETGR_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  for (;;) {
    int err = 0;
    bool found = false;
    uint32_t id = 0;
    if (kind == OwnerKind::kUser) {
      struct passwd pw {}, *out = nullptr;
      err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &out);
      if (err == 0 && out) found = true, id = out->pw_uid;
    } else {
      struct group gr {}, *out = nullptr;
      err = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out);
      if (err == 0 && out) found = true, id = out->gr_gid;
    }
    if (err == ERANGE && buf.size() < (1u << 24)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (found) return id;
    if (err != 0 && err != ENOENT && err != ESRCH && err != EBADF && err != EPERM)
      return Status::Error(EINVAL, fmt::format("cannot look up {} \"{}\": {}", what, name, std::strerror(err)));
    return Status::Error(EINVAL, fmt::format("no {} named \"{}\" on this host", what, name));
  }
}

}  // namespace vgfs
