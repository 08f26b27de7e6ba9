// The metadata archive (include/vgfs/archive.h).
#include "vgfs/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <vector>

namespace vgfs {

namespace {

// Owns a file descriptor.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

Status errno_error(const std::string& what) {
  int err = errno;
  return Status::Error(err ? err : EIO, fmt::format("{}: {}", what, std::strerror(err)));
}

// The archive folder, opened without following a symlink and checked to be
// ours alone; creates it 0700 when missing.
Result<int> open_folder(const std::string& folder) {
  if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST)
    return errno_error(fmt::format("cannot create the metadata archive folder {}", folder));
  int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR)
      return Status::Error(EPERM, fmt::format("the metadata archive folder {} is a symlink or not a folder; "
                                              "not writing the archive", folder));
    return errno_error(fmt::format("cannot open the metadata archive folder {}", folder));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Status s = errno_error(fmt::format("cannot stat the metadata archive folder {}", folder));
    ::close(fd);
    return s;
  }
  std::string problem;
  if (st.st_uid != ::geteuid())
    problem = fmt::format("is owned by uid {}, not by the user vgfs runs as (uid {})", st.st_uid, ::geteuid());
  else if (st.st_mode & (S_IWGRP | S_IWOTH))
    problem = fmt::format("is writable by others (mode {:04o})", st.st_mode & 07777);
  if (!problem.empty()) {
    ::close(fd);
    return Status::Error(EPERM, fmt::format("the metadata archive folder {} {}; not writing the archive", folder,
                                            problem));
  }
  return fd;
}

Status write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::Error(n < 0 ? errno : EIO, n < 0 ? std::strerror(errno) : "short write");
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Status archive_metadata(const std::string& folder, const VgMetadata& md, const ArchiveRetention& keep,
                        const VgFormat& format) {
  Result<int> opened = open_folder(folder);
  if (!opened.ok()) return opened.status();
  Fd dir(*opened);
  const std::string prefix = md.name + "_";
  const std::string suffix = "." + std::string(format.archive_suffix());
  const std::string name = fmt::format("{}{:08}{}", prefix, md.seqno, suffix);
  const std::string path = fmt::format("{}/{}", folder, name);
  // The temp name starts with '.', so pruning never counts it.
  const std::string temp = fmt::format(".{}.tmp", name);
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = ::openat(dir.fd, temp.c_str(), flags, 0600);
  if (fd < 0 && errno == EEXIST) {  // left by a crash: unlinkat removes a symlink itself, never its target
    (void)::unlinkat(dir.fd, temp.c_str(), 0);
    fd = ::openat(dir.fd, temp.c_str(), flags, 0600);
  }
  if (fd < 0) return errno_error(fmt::format("cannot write the metadata archive {}", path));
  {
    Fd file(fd);
    Status st = write_all(file.fd, format.encode_backup(md));
    if (st.ok() && ::fsync(file.fd) != 0) st = Status::Error(errno, std::strerror(errno));
    if (!st.ok()) {
      (void)::unlinkat(dir.fd, temp.c_str(), 0);
      return st.prefixed(fmt::format("cannot write the metadata archive {}", path));
    }
  }
  // rename replaces whatever has the final name (a symlink included) as a
  // directory entry; it never writes through it.
  if (::renameat(dir.fd, temp.c_str(), dir.fd, name.c_str()) != 0) {
    Status st = errno_error(fmt::format("cannot write the metadata archive {}", path));
    (void)::unlinkat(dir.fd, temp.c_str(), 0);
    return st;
  }
  (void)::fsync(dir.fd);

  // Prune: only regular files of this VG, never through a symlink.
  int list_fd = ::dup(dir.fd);
  if (list_fd < 0) return errno_error(fmt::format("cannot list the metadata archive folder {}", folder));
  DIR* d = ::fdopendir(list_fd);
  if (!d) {
    ::close(list_fd);
    return errno_error(fmt::format("cannot list the metadata archive folder {}", folder));
  }
  struct Archived {
    std::string name;
    time_t modified;
  };
  std::vector<Archived> kept;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(prefix, 0) != 0 || n.size() < suffix.size() ||
        n.compare(n.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    struct stat st {};
    if (::fstatat(dir.fd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) continue;
    kept.push_back(Archived{std::move(n), st.st_mtime});
  }
  ::closedir(d);
  // Names sort by seqno (8 digits, zero-padded; a longer seqno sorts after).
  std::sort(kept.begin(), kept.end(), [](const Archived& a, const Archived& b) {
    return a.name.size() != b.name.size() ? a.name.size() < b.name.size() : a.name < b.name;
  });
  const time_t cutoff = ::time(nullptr) - static_cast<time_t>(keep.days) * 24 * 3600;
  for (size_t i = 0; i + keep.min_count < kept.size(); ++i)
    if (kept[i].modified < cutoff) (void)::unlinkat(dir.fd, kept[i].name.c_str(), 0);
  return Status::Ok();
}

}  // namespace vgfs
