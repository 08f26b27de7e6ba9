// Names of VGs, LVs and PVs (include/vgfs/names.h).
#include "vgfs/names.h"

#include <fmt/format.h>

namespace vgfs {

Status check_name(std::string_view what, std::string_view name) {
  if (name.empty()) return Status::Error(EINVAL, fmt::format("{} name is empty", what));
  if (name.size() > 127)
    return Status::Error(EINVAL, fmt::format("{} name \"{}\" is longer than 127 characters", what, name));
  if (name[0] == '-' || name[0] == '.')
    return Status::Error(EINVAL, fmt::format("bad {} name \"{}\": it must not start with '-' or '.'", what, name));
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '+' || c == '-';
    if (!ok)
      return Status::Error(EINVAL, fmt::format("bad {} name \"{}\": only letters, digits and _ . + - are "
                                               "allowed", what, name));
  }
  return Status::Ok();
}

}  // namespace vgfs
