// Kinds of command-line targets and their errors (see src/cli/targets.h).
#include "cli/targets.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "vgfs/config.h"

namespace vgfs::cli {

TargetKind classify_target(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return errno == ENOTCONN ? TargetKind::kStale : TargetKind::kMissing;
  if (S_ISREG(st.st_mode)) return TargetKind::kFile;
  if (!S_ISDIR(st.st_mode)) return TargetKind::kOther;
  const std::string ctl = path + "/.vgfs/ctl";
  if (::stat(ctl.c_str(), &st) == 0) return TargetKind::kMount;
  return errno == ENOTCONN ? TargetKind::kStale : TargetKind::kFolder;
}

std::string stale_message(const std::string& path) {
  return fmt::format("{}: transport endpoint not connected: run fusermount3 -u {}", path, path);
}

namespace {

// "a config file" when it loads as one, else "a file": the message then
// says what was probably meant.
std::string file_kind(const std::string& path) {
  return load_config(path, ConfigParts::kVgAndPvs).ok() ? "a config file" : "a file, not a folder";
}

}  // namespace

Status require_mount_point(const std::string& verb, const std::string& path) {
  switch (classify_target(path)) {
    case TargetKind::kMount:
      return Status::Ok();
    case TargetKind::kStale:
      return Status::Error(ENOTCONN, stale_message(path));
    case TargetKind::kFile:
      return Status::Error(EINVAL, fmt::format("{} is {}; {} needs the mount point of a mounted VG", path,
                                               file_kind(path), verb));
    case TargetKind::kFolder:
      return Status::Error(EINVAL, fmt::format("{} is not the mount point of a mounted VG (no .vgfs/ctl in it); {} "
                                               "needs one", path, verb));
    case TargetKind::kMissing: {
      struct stat st;
      int err = ::stat(path.c_str(), &st) != 0 ? errno : ENOENT;
      return Status::Error(ENOENT, fmt::format("{}: {}; {} needs the mount point of a mounted VG", path,
                                               std::strerror(err), verb));
    }
    case TargetKind::kOther:
      break;
  }
  return Status::Error(EINVAL, fmt::format("{} is not a folder; {} needs the mount point of a mounted VG", path, verb));
}

Status require_config(const std::string& verb, const std::string& path) {
  switch (classify_target(path)) {
    case TargetKind::kMount:
      return Status::Error(EINVAL, fmt::format("{} is the mount point of a mounted VG; {} needs the VG's config file",
                                               path, verb));
    case TargetKind::kStale:
      return Status::Error(ENOTCONN, stale_message(path));
    case TargetKind::kFolder:
      return Status::Error(EISDIR, fmt::format("{} is a folder; {} needs the VG's config file (YAML)", path, verb));
    default:
      return Status::Ok();
  }
}

Status require_mount_folder(const std::string& path) {
  switch (classify_target(path)) {
    case TargetKind::kStale:
      return Status::Error(ENOTCONN, stale_message(path));
    case TargetKind::kFile:
      return Status::Error(EINVAL, fmt::format("{} is {}; mount needs a folder to mount on (vgfs mount CONFIG "
                                               "MOUNTPOINT)", path, file_kind(path)));
    default:
      return Status::Ok();
  }
}

}  // namespace vgfs::cli
