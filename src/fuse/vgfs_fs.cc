// The FUSE low-level server of a mounted VG (src/fuse/vgfs_fs.h).
//
// Layout follows libfuse's passthrough_hp: a fixed inode table built at mount
// time, one handler per operation, a multithreaded session loop. LV reads
// reply with the PV file descriptors themselves (libfuse splices them when the
// kernel allows); LV writes copy straight from the request buffer or pipe to
// the PV descriptors.
#define FUSE_USE_VERSION 314
#include "fuse/vgfs_fs.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fuse3/fuse_lowlevel.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <charconv>
#include <optional>

#include "vgfs/control.h"
#include "vgfs/volume_manager.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "views/views.h"

namespace vgfs {

namespace {

enum class Kind { kDir, kLv, kCtl, kVg, kVgJson, kLvInfo, kLvMap, kPvInfo, kPvMap, kJobsDir, kJobDir, kJobStatus, kJobBitmap };

struct Node {
  std::string name;
  fuse_ino_t parent = 0;
  Kind kind = Kind::kDir;
  uint32_t index = 0;  // LV or PV index for kLv and the per-LV/PV views
  std::map<std::string, fuse_ino_t, std::less<>> children;
};

// Job entries come and go, so they are not in the table: job N owns the
// three inodes from kJobInoBase + 3N (its folder, status, bitmap).
constexpr fuse_ino_t kJobInoBase = fuse_ino_t{1} << 40;

// What an inode is, for fixed and job entries alike.
struct Entry {
  Kind kind = Kind::kDir;
  uint32_t index = 0;  // LV or PV index
  uint64_t job = 0;
  fuse_ino_t parent = 0;
};

// What an open `.vgfs` file serves: a snapshot made at open, or the reply of
// the last control command written to this open file.
struct OpenText {
  std::mutex mutex;
  std::string text;
};

constexpr double kTimeout = 1.0;

class VgFs {
 public:
  VgFs(std::unique_ptr<VgStore> store, const MountOptions& options)
      : store_(std::move(store)), volume_(*store_), manager_(*store_, volume_), options_(options), uid_(getuid()),
        gid_(getgid()) {
    clock_gettime(CLOCK_REALTIME, &mounted_at_);
    build_tree();
  }

  VolumeSet& volume() { return volume_; }
  VolumeManager& manager() { return manager_; }
  static VgFs& of(fuse_req_t req) { return *static_cast<VgFs*>(fuse_req_userdata(req)); }

  std::optional<Entry> entry(fuse_ino_t ino) const {
    if (ino >= kJobInoBase) {
      uint64_t id = (ino - kJobInoBase) / 3;
      if (!manager_.job(id).ok()) return std::nullopt;
      Kind kinds[] = {Kind::kJobDir, Kind::kJobStatus, Kind::kJobBitmap};
      fuse_ino_t dir = kJobInoBase + 3 * id;
      return Entry{kinds[(ino - kJobInoBase) % 3], 0, id, ino == dir ? jobs_dir_ : dir};
    }
    if (ino < 1 || ino > nodes_.size()) return std::nullopt;
    const Node& n = nodes_[ino - 1];
    return Entry{n.kind, n.index, 0, n.parent};
  }
  // The LV index behind an LV file inode (only valid for kLv inodes).
  uint32_t lv_of(fuse_ino_t ino) const { return nodes_[ino - 1].index; }
  Kind kind_of(fuse_ino_t ino) const { return ino >= kJobInoBase ? Kind::kJobStatus : nodes_[ino - 1].kind; }

  std::optional<fuse_ino_t> child(fuse_ino_t parent, std::string_view name) const {
    if (parent == jobs_dir_) {
      uint64_t id = 0;
      auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
      if (ec != std::errc() || p != name.data() + name.size() || !manager_.job(id).ok()) return std::nullopt;
      return kJobInoBase + 3 * id;
    }
    if (parent >= kJobInoBase) {
      if (name == "status") return parent + 1;
      if (name == "bitmap") return parent + 2;
      return std::nullopt;
    }
    const Node& dir = nodes_[parent - 1];
    auto it = dir.children.find(name);
    if (it == dir.children.end()) return std::nullopt;
    return it->second;
  }

  std::vector<std::pair<std::string, fuse_ino_t>> children(fuse_ino_t dir) const {
    std::vector<std::pair<std::string, fuse_ino_t>> out;
    if (dir == jobs_dir_) {
      for (const JobStatus& j : manager_.jobs()) out.emplace_back(std::to_string(j.id), kJobInoBase + 3 * j.id);
    } else if (dir >= kJobInoBase) {
      out = {{"status", dir + 1}, {"bitmap", dir + 2}};
    } else {
      for (const auto& [name, ino] : nodes_[dir - 1].children) out.emplace_back(name, ino);
    }
    return out;
  }

  void fill_attr(fuse_ino_t ino, const Entry& e, struct stat* st) const {
    std::memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = uid_;
    st->st_gid = gid_;
    st->st_nlink = 1;
    st->st_atim = st->st_mtim = st->st_ctim = mounted_at_;
    switch (e.kind) {
      case Kind::kDir:
      case Kind::kJobsDir:
      case Kind::kJobDir:
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        break;
      case Kind::kLv:
        st->st_mode = S_IFREG | lv_modes_[e.index];
        st->st_size = static_cast<off_t>(volume_.lv_size(e.index));
        st->st_blksize = 4096;
        st->st_blocks = st->st_size / 512;
        break;
      case Kind::kCtl:
        st->st_mode = S_IFREG | (store_->read_only() ? 0400 : 0600);
        break;
      default:
        st->st_mode = S_IFREG | 0444;
        st->st_size = 0;  // served with direct I/O; the size is not known before reading
        break;
    }
  }

  // Renders a view file from the current metadata and jobs.
  std::string render(const Entry& e) {
    if (e.kind == Kind::kJobStatus) {
      Result<JobStatus> j = manager_.job(e.job);
      return j.ok() ? views::job_status(*j) : std::string();
    }
    if (e.kind == Kind::kJobBitmap) {
      Result<std::string> b = manager_.bitmap(e.job);
      return b.ok() ? *b : std::string();
    }
    const VgMetadata md = manager_.metadata();
    switch (e.kind) {
      case Kind::kVg: return views::vg_summary(md);
      case Kind::kVgJson: return views::vg_json(md, manager_.jobs()).dump(2) + "\n";
      case Kind::kLvInfo: return views::lv_info(md, e.index);
      case Kind::kLvMap: return views::lv_map(md, e.index);
      case Kind::kPvInfo: return views::pv_info(md, e.index);
      case Kind::kPvMap: return views::pv_map(md, e.index);
      default: return {};
    }
  }

  Reply control(std::string_view line) {
    Result<Command> cmd = parse_command(line);
    if (!cmd.ok()) return Reply::from(cmd.status());
    if (store_->read_only()) return Reply::from(Status::Error(EROFS, "the VG is mounted read-only"));
    return execute(manager_, *cmd);
  }

  bool read_only() const { return store_->read_only(); }
  const MountOptions& options() const { return options_; }
  VgMetadata metadata() const { return manager_.metadata(); }

 private:
  fuse_ino_t add(fuse_ino_t parent, std::string name, Kind kind, uint32_t index = 0) {
    nodes_.push_back(Node{name, parent, kind, index, {}});
    fuse_ino_t ino = nodes_.size();
    if (parent) nodes_[parent - 1].children.emplace(std::move(name), ino);
    return ino;
  }

  void build_tree() {
    const VgMetadata& md = store_->metadata();
    fuse_ino_t root = add(0, "", Kind::kDir);
    for (uint32_t i = 0; i < md.lvs.size(); ++i) {
      add(root, md.lvs[i].name, Kind::kLv, i);
      lv_modes_.push_back(md.lvs[i].mode);
    }
    fuse_ino_t dot = add(root, ".vgfs", Kind::kDir);
    add(dot, "ctl", Kind::kCtl);
    add(dot, "vg", Kind::kVg);
    add(dot, "vg.json", Kind::kVgJson);
    fuse_ino_t lvs = add(dot, "lvs", Kind::kDir);
    for (uint32_t i = 0; i < md.lvs.size(); ++i) {
      fuse_ino_t d = add(lvs, md.lvs[i].name, Kind::kDir, i);
      add(d, "info", Kind::kLvInfo, i);
      add(d, "map", Kind::kLvMap, i);
    }
    fuse_ino_t pvs = add(dot, "pvs", Kind::kDir);
    for (uint32_t i = 0; i < md.pvs.size(); ++i) {
      fuse_ino_t d = add(pvs, md.pvs[i].name, Kind::kDir, i);
      add(d, "info", Kind::kPvInfo, i);
      add(d, "map", Kind::kPvMap, i);
    }
    jobs_dir_ = add(dot, "jobs", Kind::kJobsDir);
  }

  std::unique_ptr<VgStore> store_;
  VolumeSet volume_;
  VolumeManager manager_;
  MountOptions options_;
  uid_t uid_;
  gid_t gid_;
  timespec mounted_at_{};
  std::vector<Node> nodes_;  // inode ino is nodes_[ino - 1]
  std::vector<uint32_t> lv_modes_;
  fuse_ino_t jobs_dir_ = 0;
};

// ---- FUSE operations ------------------------------------------------------

void op_init(void* userdata, struct fuse_conn_info* conn) {
  const MountOptions& o = static_cast<VgFs*>(userdata)->options();
  conn->max_write = kMaxIoSize;
  conn->max_readahead = kMaxIoSize;
  conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  if (o.splice_write && (conn->capable & FUSE_CAP_SPLICE_WRITE)) conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
  if (o.splice_read && (conn->capable & FUSE_CAP_SPLICE_READ)) conn->want |= FUSE_CAP_SPLICE_READ;
  else conn->want &= ~FUSE_CAP_SPLICE_READ;
}

void reply_entry(fuse_req_t req, VgFs& fs, fuse_ino_t ino, const Entry& e) {
  fuse_entry_param param{};
  param.ino = ino;
  // Job entries come and go: the kernel must ask again each time.
  bool dynamic = ino >= kJobInoBase;
  param.attr_timeout = dynamic ? 0 : kTimeout;
  param.entry_timeout = dynamic ? 0 : kTimeout;
  fs.fill_attr(ino, e, &param.attr);
  fuse_reply_entry(req, &param);
}

bool is_dir(Kind k) { return k == Kind::kDir || k == Kind::kJobsDir || k == Kind::kJobDir; }

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> dir = fs.entry(parent);
  if (!dir) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(dir->kind)) return (void)fuse_reply_err(req, ENOTDIR);
  std::optional<fuse_ino_t> ino = fs.child(parent, name);
  std::optional<Entry> e = ino ? fs.entry(*ino) : std::nullopt;
  if (!e) {
    // A negative entry for fixed folders may be cached; not for the jobs folder.
    if (dir->kind == Kind::kJobsDir || dir->kind == Kind::kJobDir) return (void)fuse_reply_err(req, ENOENT);
    fuse_entry_param none{};
    none.entry_timeout = kTimeout;
    return (void)fuse_reply_entry(req, &none);
  }
  reply_entry(req, fs, *ino, *e);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> e = fs.entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fs.fill_attr(ino, *e, &st);
  fuse_reply_attr(req, &st, ino >= kJobInoBase ? 0 : kTimeout);
}

// Block-device semantics: the size is fixed, owner and mode come from the
// metadata; only no-op size changes and time updates are accepted.
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> e = fs.entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fs.fill_attr(ino, *e, &st);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (e->kind == Kind::kCtl) {  // `echo cmd > ctl` truncates first
    } else if (e->kind != Kind::kLv || attr->st_size != st.st_size) {
      return (void)fuse_reply_err(req, EPERM);
    }
  }
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) return (void)fuse_reply_err(req, EPERM);
  fuse_reply_attr(req, &st, kTimeout);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  std::optional<Entry> e = VgFs::of(req).entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(e->kind)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = e->kind == Kind::kDir;
  fuse_reply_open(req, fi);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> dir = fs.entry(ino);
  if (!dir) return (void)fuse_reply_err(req, ENOENT);
  std::vector<std::pair<std::string, fuse_ino_t>> entries{{".", ino}, {"..", dir->parent ? dir->parent : ino}};
  for (auto& c : fs.children(ino)) entries.push_back(std::move(c));
  std::string buf(size, '\0');
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < entries.size(); ++i) {
    struct stat st{};
    st.st_ino = entries[i].second;
    st.st_mode = is_dir(fs.entry(entries[i].second).value_or(Entry{Kind::kLv}).kind) ? S_IFDIR : S_IFREG;
    size_t len = fuse_add_direntry(req, buf.data() + used, size - used, entries[i].first.c_str(), &st,
                                   static_cast<off_t>(i + 1));
    if (len > size - used) break;
    used += len;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> e = fs.entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  if (is_dir(e->kind)) return (void)fuse_reply_err(req, EISDIR);
  bool writing = (fi->flags & O_ACCMODE) != O_RDONLY;
  if (e->kind == Kind::kLv) {
    if (writing && fs.read_only()) return (void)fuse_reply_err(req, EROFS);
    fi->keep_cache = 1;  // all writes pass through this mount, so cached pages stay true
    return (void)fuse_reply_open(req, fi);  // O_TRUNC is ignored, as on a block device
  }
  if (e->kind != Kind::kCtl && writing) return (void)fuse_reply_err(req, EACCES);
  auto* text = new OpenText;
  if (e->kind != Kind::kCtl) text->text = fs.render(*e);
  fi->fh = reinterpret_cast<uint64_t>(text);
  fi->direct_io = 1;
  fuse_reply_open(req, fi);
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  delete reinterpret_cast<OpenText*>(fi->fh);
  fuse_reply_err(req, 0);
}

// fuse_bufvec ends in a one-element array; the pieces continue right after it.
struct PieceVec {
  fuse_bufvec vec;
  fuse_buf more[kMaxPieces - 1];
};
static_assert(offsetof(PieceVec, more) == sizeof(fuse_bufvec));

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  if (fs.kind_of(ino) != Kind::kLv) {
    auto* text = reinterpret_cast<OpenText*>(fi->fh);
    std::lock_guard lock(text->mutex);
    size_t from = std::min(static_cast<size_t>(off), text->text.size());
    return (void)fuse_reply_buf(req, text->text.data() + from, std::min(size, text->text.size() - from));
  }
  VolumeSet::IoGuard guard(fs.volume());  // the PEs stay this LV's until the reply is sent
  PvPiece pieces[kMaxPieces];
  size_t count = fs.volume().map(fs.lv_of(ino), static_cast<uint64_t>(off), size, pieces);
  if (count == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  PieceVec pv;
  pv.vec.count = count;
  pv.vec.idx = 0;
  pv.vec.off = 0;
  for (size_t i = 0; i < count; ++i) {
    fuse_buf& b = i == 0 ? pv.vec.buf[0] : pv.more[i - 1];
    b = fuse_buf{};
    b.size = pieces[i].length;
    b.flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY);
    b.fd = pieces[i].fd;
    b.pos = static_cast<off_t>(pieces[i].offset);
  }
  fuse_reply_data(req, &pv.vec, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec* in, off_t off, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  const Kind kind = fs.kind_of(ino);
  const size_t size = fuse_buf_size(in);
  auto to_memory = [&](char* dst, size_t length) {
    fuse_bufvec mem = FUSE_BUFVEC_INIT(length);
    mem.buf[0].mem = dst;
    return fuse_buf_copy(&mem, in, FUSE_BUF_NO_SPLICE);
  };
  if (kind == Kind::kCtl) {
    std::string line(size, '\0');
    ssize_t got = to_memory(line.data(), size);
    if (got < 0) return (void)fuse_reply_err(req, static_cast<int>(-got));
    line.resize(static_cast<size_t>(got));
    Reply reply = fs.control(line);
    auto* text = reinterpret_cast<OpenText*>(fi->fh);
    {
      std::lock_guard lock(text->mutex);
      text->text = reply.text;
    }
    if (reply.code) return (void)fuse_reply_err(req, reply.code);
    return (void)fuse_reply_write(req, size);
  }
  if (kind != Kind::kLv) return (void)fuse_reply_err(req, EACCES);
  if (fs.read_only()) return (void)fuse_reply_err(req, EROFS);
  const uint32_t lv = fs.lv_of(ino);
  VolumeSet& volume = fs.volume();
  if (static_cast<uint64_t>(off) >= volume.lv_size(lv)) return (void)fuse_reply_err(req, ENOSPC);
  {
    VolumeSet::IoGuard guard(volume);
    if (!volume.has_transfers(lv)) {  // the common case: straight from the request to the PVs
      PvPiece pieces[kMaxPieces];
      size_t count = volume.map(lv, static_cast<uint64_t>(off), size, pieces);
      size_t done = 0;
      for (size_t i = 0; i < count; ++i) {
        fuse_bufvec dst = FUSE_BUFVEC_INIT(pieces[i].length);
        dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY);
        dst.buf[0].fd = pieces[i].fd;
        dst.buf[0].pos = static_cast<off_t>(pieces[i].offset);
        ssize_t got = fuse_buf_copy(&dst, in, static_cast<fuse_buf_copy_flags>(0));
        if (got != static_cast<ssize_t>(pieces[i].length)) return (void)fuse_reply_err(req, EIO);
        volume.note_written(pieces[i].pv);
        done += pieces[i].length;
      }
      return (void)fuse_reply_write(req, done);
    }
  }
  // A migration runs on this LV: the write rules need the data in memory.
  thread_local std::vector<char> buffer(kMaxIoSize);
  ssize_t got = to_memory(buffer.data(), std::min(size, buffer.size()));
  if (got < 0) return (void)fuse_reply_err(req, static_cast<int>(-got));
  Result<size_t> done = volume.write(lv, static_cast<uint64_t>(off), buffer.data(), static_cast<size_t>(got));
  if (!done.ok()) return (void)fuse_reply_err(req, EIO);
  fuse_reply_write(req, *done);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  if (fs.kind_of(ino) != Kind::kLv) return (void)fuse_reply_err(req, 0);
  Status st = fs.volume().flush();
  fuse_reply_err(req, st.ok() ? 0 : EIO);
}

void op_flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  if (fs.kind_of(ino) != Kind::kLv) return (void)fuse_reply_err(req, EOPNOTSUPP);
  const uint32_t lv = fs.lv_of(ino);
  if (fs.read_only()) return (void)fuse_reply_err(req, EROFS);
  const bool keep = mode & FALLOC_FL_KEEP_SIZE;
  const int op = mode & ~FALLOC_FL_KEEP_SIZE;
  if (off < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  uint64_t size = fs.volume().lv_size(lv);
  if (op == 0) {  // preallocation: every byte of an LV already exists
    return (void)fuse_reply_err(req, static_cast<uint64_t>(off) + static_cast<uint64_t>(length) <= size ? 0 : ENOSPC);
  }
  if (!keep && op == FALLOC_FL_ZERO_RANGE && static_cast<uint64_t>(off + length) > size)
    return (void)fuse_reply_err(req, ENOSPC);
  if (op != FALLOC_FL_PUNCH_HOLE && op != FALLOC_FL_ZERO_RANGE) return (void)fuse_reply_err(req, EOPNOTSUPP);
  Status st = fs.volume().discard(lv, static_cast<uint64_t>(off), static_cast<uint64_t>(length),
                                  op == FALLOC_FL_ZERO_RANGE);
  fuse_reply_err(req, st.ok() ? 0 : st.code());
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  VgFs& fs = VgFs::of(req);
  const VgMetadata md = fs.metadata();
  struct statvfs sv{};
  uint64_t total = 0;
  for (const PvInfo& pv : md.pvs) total += pv.pe_count;
  sv.f_bsize = sv.f_frsize = md.extent_size;
  sv.f_blocks = total;
  sv.f_bfree = sv.f_bavail = md.total_free_extents();
  sv.f_files = md.lvs.size();
  sv.f_namemax = 127;
  fuse_reply_statfs(req, &sv);
}

// The namespace is fixed by the metadata: no entry is created, removed or renamed.
void op_mknod(fuse_req_t req, fuse_ino_t, const char*, mode_t, dev_t) { fuse_reply_err(req, EPERM); }
void op_mkdir(fuse_req_t req, fuse_ino_t, const char*, mode_t) { fuse_reply_err(req, EPERM); }
void op_unlink(fuse_req_t req, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void op_symlink(fuse_req_t req, const char*, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void op_link(fuse_req_t req, fuse_ino_t, fuse_ino_t, const char*) { fuse_reply_err(req, EPERM); }
void op_rename(fuse_req_t req, fuse_ino_t, const char*, fuse_ino_t, const char*, unsigned) { fuse_reply_err(req, EPERM); }
void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t, struct fuse_file_info*) {
  bool exists = VgFs::of(req).child(parent, name).has_value();
  fuse_reply_err(req, exists ? EEXIST : EPERM);
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = op_init;
  ops.lookup = op_lookup;
  ops.getattr = op_getattr;
  ops.setattr = op_setattr;
  ops.opendir = op_opendir;
  ops.readdir = op_readdir;
  ops.open = op_open;
  ops.release = op_release;
  ops.read = op_read;
  ops.write_buf = op_write_buf;
  ops.fsync = op_fsync;
  ops.flush = op_flush;
  ops.fallocate = op_fallocate;
  ops.statfs = op_statfs;
  ops.mknod = op_mknod;
  ops.mkdir = op_mkdir;
  ops.unlink = op_unlink;
  ops.rmdir = op_unlink;
  ops.symlink = op_symlink;
  ops.link = op_link;
  ops.rename = op_rename;
  ops.create = op_create;
  return ops;
}

}  // namespace

int run_mount(const MountOptions& options) {
  Result<VgConfig> config = load_config(options.config);
  if (!config.ok()) {
    fmt::print(stderr, "vgfs: {}\n", config.status().message());
    return 1;
  }
  std::vector<std::string> warnings;
  Result<std::unique_ptr<VgStore>> store =
      VgStore::open(*config, options.read_only ? OpenMode::kReadOnly : OpenMode::kReadWrite, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", w);
  if (!store.ok()) {
    fmt::print(stderr, "vgfs: {}\n", store.status().message());
    return 1;
  }
  std::string vg_name = (*store)->metadata().name;
  VgFs fs(std::move(*store), options);

  std::vector<std::string> argv_store = {"vgfs", "-o",
                                         fmt::format("fsname=vgfs:{},subtype=vgfs,default_permissions{}{}", vg_name,
                                                     options.allow_other ? ",allow_other" : "",
                                                     options.read_only ? ",ro" : "")};
  if (options.debug) argv_store.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : argv_store) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  fuse_lowlevel_ops ops = make_ops();

  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
  if (!se) {
    fmt::print(stderr, "vgfs: cannot start the FUSE session\n");
    return 1;
  }
  int status = 1;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, options.mountpoint.c_str()) == 0) {
      // The mount is ready: only now go to the background.
      if (fuse_daemonize(options.foreground ? 1 : 0) == 0) {
        // Copier threads start only now: fork() keeps just the calling thread.
        if (!options.read_only) (void)fs.manager().start();
        fuse_loop_config* loop = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(loop, 1);
        fuse_loop_cfg_set_max_threads(loop, options.max_threads);
        fuse_loop_cfg_set_idle_threads(loop, options.max_threads);
        status = fuse_session_loop_mt(se, loop) == 0 ? 0 : 1;
        fuse_loop_cfg_destroy(loop);
      }
      fs.manager().shutdown();  // checkpoints every running job
      Status st = fs.volume().flush();
      if (!st.ok()) fmt::print(stderr, "vgfs: {}\n", st.message());
      fuse_session_unmount(se);
    } else {
      fmt::print(stderr, "vgfs: cannot mount on {}\n", options.mountpoint);
    }
    fuse_remove_signal_handlers(se);
  }
  fuse_session_destroy(se);
  fuse_opt_free_args(&args);
  return status;
}

}  // namespace vgfs
