// mount(8)'s helper form of vgfs (src/cli/mount_helper.h).
#include "cli/mount_helper.h"

#include <fmt/format.h>

#include <cstring>

namespace vgfs::cli {

bool invoked_as_mount_helper(const char* argv0) {
  if (argv0 == nullptr) return false;
  const char* slash = std::strrchr(argv0, '/');
  return std::strcmp(slash ? slash + 1 : argv0, "mount.fuse.vgfs") == 0;
}

Result<HelperCommand> mount_helper_command(const std::vector<std::string>& args) {
  HelperCommand out;
  std::vector<std::string> operands, options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-o" || a == "-t" || a == "-N") {
      if (i + 1 == args.size()) return Status::Error(EINVAL, fmt::format("mount.fuse.vgfs: {} needs a value", a));
      if (a == "-o") options.push_back(args[i + 1]);
      if (a == "-N")
        return Status::Error(EINVAL, "mount.fuse.vgfs: -N (mount in another namespace) is not supported");
      ++i;  // -t: our own type, fuse.vgfs
    } else if (a.rfind("-o", 0) == 0 && a.size() > 2) {
      options.push_back(a.substr(2));
    } else if (a.size() > 1 && a[0] == '-' && a.find_first_not_of("sfnv", 1) == std::string::npos) {
      if (a.find('f') != std::string::npos) out.fake = true;
    } else if (!a.empty() && a[0] == '-') {
      return Status::Error(EINVAL, fmt::format("mount.fuse.vgfs: unknown option \"{}\" (usage: mount.fuse.vgfs "
                                               "CONFIG MOUNTPOINT [-sfnv] [-o OPTIONS])", a));
    } else {
      operands.push_back(a);
    }
  }
  if (operands.size() != 2)
    return Status::Error(EINVAL, fmt::format("mount.fuse.vgfs: give CONFIG and MOUNTPOINT ({} operand{} given)",
                                             operands.size(), operands.size() == 1 ? "" : "s"));
  out.args = {"mount", operands[0], operands[1]};
  for (const std::string& o : options) {
    out.args.push_back("-o");
    out.args.push_back(o);
  }
  return out;
}

}  // namespace vgfs::cli
