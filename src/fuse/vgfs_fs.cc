// The FUSE low-level server of a mounted VG (src/fuse/vgfs_fs.h).
//
// Layout follows libfuse's passthrough_hp: a fixed inode table built at mount
// time, one handler per operation, a multithreaded session loop. LV reads
// reply with the PV file descriptors themselves (libfuse splices them when the
// kernel allows); LV writes copy straight from the request buffer or pipe to
// the PV descriptors.
#define FUSE_USE_VERSION 314
#include "fuse/vgfs_fs.h"
#include "fuse/pending_truncate.h"
#include "fuse/async_slots.h"

#include <fcntl.h>
#include <malloc.h>
#include <fmt/format.h>
#include <fuse3/fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>

#include <charconv>
#include <optional>
#include <span>

#include "vgfs/control.h"
#include "vgfs/log.h"
#include "vgfs/volume_manager.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume.h"
#include "fuse/guarded.h"
#include "fuse/background.h"
#include "fuse/uring_transport.h"
#include "views/views.h"

namespace vgfs {

namespace {

enum class Kind { kDir, kLv, kCtl, kVg, kVgJson, kLvInfo, kLvMap, kPvInfo, kPvMap, kLvsDir, kPvsDir, kJobsDir, kLvDir, kPvDir, kJobDir, kJobStatus, kJobBitmap };

// Inode numbers. The fixed entries are 1-8; LVs, PVs and jobs come and go,
// so their inodes derive from a number that stays theirs: LV slot s owns
// kLvBase + 4s .. +3 (file, folder, info, map), PV index i owns kPvBase + 3i
// .. +2 (folder, info, map), job N owns kJobBase + 3N .. +2 (folder, status,
// bitmap).
enum : fuse_ino_t { kRootIno = 1, kDotIno, kCtlIno, kVgIno, kVgJsonIno, kLvsIno, kPvsIno, kJobsIno };
constexpr fuse_ino_t kLvBase = fuse_ino_t{1} << 32;
constexpr fuse_ino_t kPvBase = fuse_ino_t{2} << 32;
constexpr fuse_ino_t kJobBase = fuse_ino_t{1} << 40;

struct Entry {
  Kind kind = Kind::kDir;
  uint64_t id = 0;  // LV slot, PV index or job number
  fuse_ino_t parent = 0;
};

// What an open `.vgfs` file serves: a snapshot made at open, or the reply of
// the last control command written to this open file.
struct OpenText {
  std::mutex mutex;
  std::string text;
};

constexpr double kTimeout = 1.0;

// The largest READ or WRITE the kernel may send (max_read, max_write and so
// max_pages). libfuse replies on the zero-copy splice path only when the
// reply fits its pipe by its own estimate: a page per reply piece, two pages
// of slack, the 16-byte header and the data, against the 1 MiB a pipe grows
// to without CAP_SYS_RESOURCE (/proc/sys/fs/pipe-max-size); a reply that
// does not fit takes the allocate, pread, writev and free fallback. A READ
// is at most 251 pages, so that a read crossing one run boundary (two
// pieces: 4 pages, the header and 251 pages) still fits; reads of more pieces
// (extents or stripe chunks smaller than a request) are answered from a
// buffer of this thread's instead (read_into_memory). A WRITE is copied out
// of libfuse's request buffer (1 MiB plus a page: FUSE_MAX_MAX_PAGES), so it
// may be 256 pages, a user's 1 MiB write in one request (1.37x the MiB/s of
// two 252-page requests, docs/benchmarks.md); with -o splice_read libfuse
// splices the WRITE into its pipe first, and the request (max_write plus a
// page) must fit that pipe: 252 pages then. A user's 1 MiB read becomes two
// requests (1004 + 20 KiB).
constexpr size_t kPageSize = 4096;
constexpr size_t kMaxWritePages = 256;
constexpr size_t kMaxSplicedWritePages = 252;
constexpr size_t kMaxRequestSize = kMaxWritePages * kPageSize;  // the largest request of any kind
constexpr size_t kMaxReadPages = 251;
constexpr size_t kMaxReadSize = kMaxReadPages * kPageSize;
// Reply pieces libfuse splices at kMaxReadSize (see above).
constexpr size_t kMaxSplicePieces = 2;

// How many reply pieces this process may splice: kMaxPieces when its pipes
// can grow past the pipe-max-size limit (CAP_SYS_RESOURCE: a daemon run as
// root) to what libfuse asks for a reply of kMaxPieces pieces, else
// kMaxSplicePieces. A striped LV's read spans a piece per stripe chunk (16
// for 64 KiB chunks); the copy through a buffer costs a second copy of the
// data, which the splice saves (docs/benchmarks.md, issue 11).
size_t splice_piece_limit() {
  static const size_t limit = [] {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return kMaxSplicePieces;
    const size_t need = kPageSize * (kMaxPieces + 2) + 16 + kMaxReadSize;
    const int got = ::fcntl(p[0], F_SETPIPE_SZ, static_cast<int>(need));
    ::close(p[0]);
    ::close(p[1]);
    return got >= 0 && static_cast<size_t>(got) >= need ? kMaxPieces : kMaxSplicePieces;
  }();
  return limit;
}
static_assert(kMaxRequestSize <= kMaxIoSize, "PvPiece arrays of kMaxPieces cover a request");
static_assert(kPageSize * (kMaxSplicePieces + 2) + 16 + kMaxReadSize <= 1 * MiB, "a two-piece READ reply fits the pipe");
// The longest control command: one write() of at most this many bytes.
constexpr size_t kMaxCommand = 4096;

// One line in the daemon log for an I/O error the caller only sees as errno.
void log_io_error(const Status& st) { log::error(st.message()); }

// FUSE background requests (asynchronous direct I/O) when a PV completes
// asynchronously: about libnbd's suggested requests in flight per connection.
constexpr unsigned kAsyncBackground = 64;

class VgFs {
 public:
  VgFs(std::unique_ptr<VgStore> store, const MountOptions& options)
      : store_(std::move(store)), volume_(*store_), manager_(*store_, volume_), options_(options), uid_(getuid()),
        gid_(getgid()) {
    clock_gettime(CLOCK_REALTIME, &mounted_at_);
  }

  VolumeSet& volume() { return volume_; }
  VolumeManager& manager() { return manager_; }
  void set_session(fuse_session* se) { se_ = se; }
  // LV files: each open gets a handle of its own, for the truncates to 0
  // that wait for it (src/fuse/pending_truncate.h).
  uint64_t new_lv_handle() { return next_lv_handle_.fetch_add(1, std::memory_order_relaxed); }
  PendingTruncates& pending_truncates() { return pending_truncates_; }
  AsyncSlots& async_slots() { return async_slots_; }
  // A truncate to 0 took effect (`handle` had one pending): the LV reads as zeros.
  Status truncate_to_zero(uint32_t slot) { return volume_.discard(slot, 0, volume_.lv_size(slot), true); }
  // A pending truncate was cancelled: the kernel believes the size 0 the
  // truncate replied; make it ask again.
  void forget_size(fuse_ino_t ino) {
    if (se_) fuse_lowlevel_notify_inval_inode(se_, ino, -1, 0);
  }
  static VgFs& of(fuse_req_t req) { return *static_cast<VgFs*>(fuse_req_userdata(req)); }

  std::optional<Entry> entry(fuse_ino_t ino) const {
    static const Entry fixed[] = {{Kind::kDir, 0, kRootIno},   {Kind::kDir, 0, kRootIno},    {Kind::kCtl, 0, kDotIno},
                                  {Kind::kVg, 0, kDotIno},     {Kind::kVgJson, 0, kDotIno},  {Kind::kLvsDir, 0, kDotIno},
                                  {Kind::kPvsDir, 0, kDotIno}, {Kind::kJobsDir, 0, kDotIno}};
    if (ino >= kRootIno && ino <= kJobsIno) return fixed[ino - kRootIno];
    if (ino >= kJobBase) {
      uint64_t id = (ino - kJobBase) / 3;
      if (!manager_.job(id).ok()) return std::nullopt;
      const Kind kinds[] = {Kind::kJobDir, Kind::kJobStatus, Kind::kJobBitmap};
      fuse_ino_t dir = kJobBase + 3 * id;
      return Entry{kinds[(ino - kJobBase) % 3], id, ino == dir ? fuse_ino_t{kJobsIno} : dir};
    }
    if (ino >= kPvBase) {
      uint64_t i = (ino - kPvBase) / 3;
      if (i >= manager_.pv_names().size()) return std::nullopt;
      const Kind kinds[] = {Kind::kPvDir, Kind::kPvInfo, Kind::kPvMap};
      fuse_ino_t dir = kPvBase + 3 * i;
      return Entry{kinds[(ino - kPvBase) % 3], i, ino == dir ? fuse_ino_t{kPvsIno} : dir};
    }
    if (ino >= kLvBase) {
      uint64_t slot = (ino - kLvBase) / 4;
      if (slot >= kMaxLvSlots || !volume_.exists(static_cast<uint32_t>(slot))) return std::nullopt;
      const Kind kinds[] = {Kind::kLv, Kind::kLvDir, Kind::kLvInfo, Kind::kLvMap};
      fuse_ino_t dir = kLvBase + 4 * slot + 1;
      Kind k = kinds[(ino - kLvBase) % 4];
      return Entry{k, slot, k == Kind::kLv ? fuse_ino_t{kRootIno} : k == Kind::kLvDir ? fuse_ino_t{kLvsIno} : dir};
    }
    return std::nullopt;
  }
  static uint32_t slot_of(fuse_ino_t ino) { return static_cast<uint32_t>((ino - kLvBase) / 4); }
  static bool is_lv_file(fuse_ino_t ino) { return ino >= kLvBase && ino < kPvBase && (ino - kLvBase) % 4 == 0; }
  static fuse_ino_t lv_file_ino(uint32_t slot) { return kLvBase + 4 * fuse_ino_t{slot}; }

  std::vector<std::pair<std::string, fuse_ino_t>> children(fuse_ino_t dir) const {
    std::vector<std::pair<std::string, fuse_ino_t>> out;
    switch (dir) {
      case kRootIno:
        for (const auto& [name, slot] : volume_.slots()) out.emplace_back(name, lv_file_ino(slot));
        out.emplace_back(".vgfs", kDotIno);
        return out;
      case kDotIno:
        return {{"ctl", kCtlIno}, {"vg", kVgIno}, {"vg.json", kVgJsonIno}, {"lvs", kLvsIno}, {"pvs", kPvsIno}, {"jobs", kJobsIno}};
      case kLvsIno:
        for (const auto& [name, slot] : volume_.slots()) out.emplace_back(name, lv_file_ino(slot) + 1);
        return out;
      case kPvsIno: {
        std::vector<std::string> names = manager_.pv_names();
        for (size_t i = 0; i < names.size(); ++i) out.emplace_back(names[i], kPvBase + 3 * i);
        return out;
      }
      case kJobsIno:
        for (const JobStatus& j : manager_.jobs()) out.emplace_back(std::to_string(j.id), kJobBase + 3 * j.id);
        return out;
    }
    if (dir >= kJobBase) return {{"status", dir + 1}, {"bitmap", dir + 2}};
    if (dir >= kPvBase || dir >= kLvBase) return {{"info", dir + 1}, {"map", dir + 2}};
    return out;
  }

  std::optional<fuse_ino_t> child(fuse_ino_t parent, std::string_view name) const {
    if (parent == kRootIno || parent == kLvsIno) {
      if (parent == kRootIno && name == ".vgfs") return fuse_ino_t{kDotIno};
      std::optional<uint32_t> slot = volume_.slot(name);
      if (!slot || volume_.lv_hidden(*slot)) return std::nullopt;  // hidden LVs are no files
      return lv_file_ino(*slot) + (parent == kLvsIno ? 1 : 0);
    }
    if (parent == kJobsIno) {
      uint64_t id = 0;
      auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
      if (ec != std::errc() || p != name.data() + name.size() || !manager_.job(id).ok()) return std::nullopt;
      return kJobBase + 3 * id;
    }
    for (const auto& [n, ino] : children(parent))
      if (n == name) return ino;
    return std::nullopt;
  }

  void fill_attr(fuse_ino_t ino, const Entry& e, struct stat* st) const {
    std::memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_uid = uid_;
    st->st_gid = gid_;
    st->st_nlink = 1;
    st->st_atim = st->st_mtim = st->st_ctim = mounted_at_;
    switch (e.kind) {
      case Kind::kDir: case Kind::kLvsDir: case Kind::kPvsDir: case Kind::kJobsDir:
      case Kind::kLvDir: case Kind::kPvDir: case Kind::kJobDir:
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
        break;
      case Kind::kLv:
        st->st_mode = S_IFREG | volume_.lv_mode(static_cast<uint32_t>(e.id));
        st->st_uid = volume_.lv_uid(static_cast<uint32_t>(e.id)).value_or(uid_);
        st->st_gid = volume_.lv_gid(static_cast<uint32_t>(e.id)).value_or(gid_);
        st->st_size = static_cast<off_t>(volume_.lv_size(static_cast<uint32_t>(e.id)));
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
      Result<JobStatus> j = manager_.job(e.id);
      return j.ok() ? views::job_status(*j) : std::string();
    }
    if (e.kind == Kind::kJobBitmap) {
      Result<std::string> b = manager_.bitmap(e.id);
      return b.ok() ? *b : std::string();
    }
    const VgMetadata md = manager_.metadata();
    int lv = md.find_lv(volume_.lv_name(static_cast<uint32_t>(e.id)));
    switch (e.kind) {
      case Kind::kVg: return views::vg_summary(md);
      case Kind::kVgJson: return views::vg_json(md, manager_.jobs()).dump(2) + "\n";
      case Kind::kLvInfo: return lv < 0 ? "" : views::lv_info(md, static_cast<uint32_t>(lv));
      case Kind::kLvMap: return lv < 0 ? "" : views::lv_map(md, static_cast<uint32_t>(lv));
      case Kind::kPvInfo: return e.id < md.pvs.size() ? views::pv_info(md, static_cast<uint32_t>(e.id)) : "";
      case Kind::kPvMap: return e.id < md.pvs.size() ? views::pv_map(md, static_cast<uint32_t>(e.id)) : "";
      default: return {};
    }
  }

  Reply control(std::string_view line) {
    if (log::enabled(log::Level::kDebug)) log::debug(fmt::format("control command: {}", line.substr(0, line.find_last_not_of('\n') + 1)));
    Result<Command> cmd = parse_command(line);
    if (!cmd.ok()) return Reply::from(cmd.status());
    if (store_->read_only()) return Reply::from(Status::Error(EROFS, "the VG is mounted read-only"));
    std::vector<std::string> pvs_before = manager_.pv_names();
    // finish 0 and abort 0 serve the LVs of another tool's move: names the
    // kernel may hold as absent.
    std::vector<std::string> foreign_lvs;
    if (std::holds_alternative<cmd::Finish>(*cmd) ||
        (std::holds_alternative<cmd::Abort>(*cmd) && std::get<cmd::Abort>(*cmd).job == kForeignMoveJob))
      if (std::optional<ForeignMove> m = manager_.metadata().foreign_move)
        for (const ForeignMove::Piece& p : m->pieces) foreign_lvs.push_back(p.lv);
    Reply reply = execute(manager_, *cmd);
    if (reply.code == 0) {
      invalidate(*cmd, pvs_before);
      for (const std::string& lv : foreign_lvs) invalidate_lv_name(lv);
    }
    return reply;
  }

  bool read_only() const { return store_->read_only(); }
  const MountOptions& options() const { return options_; }
  VgMetadata metadata() const { return manager_.metadata(); }

 private:
  void invalidate_lv_name(const std::string& name) {
    if (!se_ || name.empty()) return;
    for (fuse_ino_t parent : {kRootIno, kLvsIno}) fuse_lowlevel_notify_inval_entry(se_, parent, name.c_str(), name.size());
  }

  // Tells the kernel what a lifecycle command changed, so `ls`, `stat` and
  // open descriptors see it at once instead of after the cache timeout.
  void invalidate(const Command& c, const std::vector<std::string>& pvs_before) {
    if (!se_) return;
    auto entry = [&](fuse_ino_t parent, const std::string& name) {
      if (!name.empty()) fuse_lowlevel_notify_inval_entry(se_, parent, name.c_str(), name.size());
    };
    auto lv_names = [&](const std::string& name) { invalidate_lv_name(name); };
    auto lv_file = [&](const std::string& name) {
      if (std::optional<uint32_t> slot = volume_.slot(name))
        fuse_lowlevel_notify_inval_inode(se_, lv_file_ino(*slot), 0, 0);
    };
    auto pv_names = [&] {
      for (const std::string& name : pvs_before) entry(kPvsIno, name);
      for (const std::string& name : manager_.pv_names()) entry(kPvsIno, name);
    };
    std::visit(Overloaded{
                   [&](const cmd::Lvcreate& l) { lv_names(l.lv); },
                   [&](const cmd::Lvremove& l) { lv_names(l.lv); },
                   [&](const cmd::Lvrename& l) {
                     lv_names(l.from);
                     lv_names(l.to);
                   },
                   [&](const cmd::Lvextend& l) { lv_file(l.lv); },
                   [&](const cmd::Lvreduce& l) { lv_file(l.lv); },
                   [&](const cmd::Move& m) { lv_file(m.lv); },
                   [&](const cmd::Pvadd&) { pv_names(); },
                   [&](const cmd::Pvremove&) { pv_names(); },
                   // pvmove names no LV; its jobs change the LV maps only when
                   // they complete. Job control changes no name or size.
                   [](const cmd::Pvmove&) {},
                   [](const cmd::Abort&) {},  // (abort 0 and finish 0 show LVs: republished, see below)
                   [](const cmd::Finish&) {},
                   [](const cmd::Pause&) {},
                   [](const cmd::Resume&) {},
                   [](const cmd::Limit&) {},
               },
               c);
  }

  std::unique_ptr<VgStore> store_;
  VolumeSet volume_;
  VolumeManager manager_;
  MountOptions options_;
  uid_t uid_;
  gid_t gid_;
  timespec mounted_at_{};
  fuse_session* se_ = nullptr;
  std::atomic<uint64_t> next_lv_handle_{1};
  PendingTruncates pending_truncates_;
  AsyncSlots async_slots_;  // last: drained before the volume goes
};

// ---- FUSE operations ------------------------------------------------------

void op_init(void* userdata, struct fuse_conn_info* conn) {
  const MountOptions& o = static_cast<VgFs*>(userdata)->options();
  // libfuse derives max_pages from max_write; max_read must equal the mount
  // option of the same name (run_mount).
  conn->max_write = (o.splice_read ? kMaxSplicedWritePages : kMaxWritePages) * kPageSize;
  conn->max_read = kMaxReadSize;
  conn->max_readahead = kMaxReadSize;
  conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;
  // The kernel sends asynchronous direct I/O (io_uring, libaio) as
  // background requests, 12 at once by default. Replies from NBD
  // completions need no thread per request, so let dozens be in flight;
  // VGs of local PVs keep the default (docs/nbd.md).
  if (static_cast<VgFs*>(userdata)->volume().has_async_pvs()) {
    conn->max_background = kAsyncBackground;
    conn->congestion_threshold = kAsyncBackground * 3 / 4;
  }
  if (o.splice_write && (conn->capable & FUSE_CAP_SPLICE_WRITE)) conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
  if (o.splice_read && (conn->capable & FUSE_CAP_SPLICE_READ)) conn->want |= FUSE_CAP_SPLICE_READ;
  else conn->want &= ~FUSE_CAP_SPLICE_READ;
}

void reply_entry(fuse_req_t req, VgFs& fs, fuse_ino_t ino, const Entry& e) {
  fuse_entry_param param{};
  param.ino = ino;
  // Job entries come and go: the kernel must ask again each time.
  bool dynamic = ino >= kJobBase;
  param.attr_timeout = dynamic ? 0 : kTimeout;
  param.entry_timeout = dynamic ? 0 : kTimeout;
  fs.fill_attr(ino, e, &param.attr);
  fuse_reply_entry(req, &param);
}

bool is_dir(Kind k) {
  return k == Kind::kDir || k == Kind::kLvsDir || k == Kind::kPvsDir || k == Kind::kJobsDir || k == Kind::kLvDir ||
         k == Kind::kPvDir || k == Kind::kJobDir;
}

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
    // Other negative entries are cached; lifecycle commands invalidate them.
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
  fuse_reply_attr(req, &st, ino >= kJobBase ? 0 : kTimeout);
}

// Block-device semantics: the size is fixed and only no-op size changes and
// time updates are accepted. chmod and chown on an LV file commit its mode
// and owner to the metadata (VolumeManager::lvchange): root or the owner may
// chmod; only root may give the file another owner or group.
// (The mount uses default_permissions, so the kernel checks first as well.)
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  std::optional<Entry> e = fs.entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  struct stat st;
  fs.fill_attr(ino, *e, &st);
  if (fs.read_only() && (to_set & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
    return (void)fuse_reply_err(req, EROFS);
  bool size_shown_as_zero = false;
  if (to_set & FUSE_SET_ATTR_SIZE) {
    // An LV file: its own size is a no-op, or completes a pending truncate
    // to 0 made through the same open file; 0 through an open file waits
    // (src/fuse/pending_truncate.h); anything else is EPERM and cancels.
    const bool pending = e->kind == Kind::kLv && fi && fs.pending_truncates().take(fi->fh);
    if (e->kind == Kind::kCtl) {  // `echo cmd > ctl` truncates first
    } else if (e->kind == Kind::kLv && attr->st_size == 0 && fi) {
      fs.pending_truncates().add(fi->fh);
      size_shown_as_zero = true;  // the kernel drops its cached pages of the LV
    } else if (e->kind != Kind::kLv || attr->st_size != st.st_size) {
      return (void)fuse_reply_err(req, EPERM);
    } else if (pending) {
      Status st0 = fs.truncate_to_zero(VgFs::slot_of(ino));
      if (!st0.ok()) {
        log_io_error(st0);
        return (void)fuse_reply_err(req, st0.code());
      }
    }
  }
  if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
    if (e->kind != Kind::kLv) return (void)fuse_reply_err(req, EPERM);
    const uid_t caller = fuse_req_ctx(req)->uid;
    LvOwnership change;
    if (to_set & FUSE_SET_ATTR_MODE) {
      if (caller != 0 && caller != st.st_uid) return (void)fuse_reply_err(req, EPERM);
      change.mode = attr->st_mode & 0777;  // setuid/setgid/sticky mean nothing here: dropped
    }
    if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != st.st_uid) {
      if (caller != 0) return (void)fuse_reply_err(req, EPERM);
      change.uid = attr->st_uid;
    }
    if ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != st.st_gid) {
      if (caller != 0) return (void)fuse_reply_err(req, EPERM);
      change.gid = attr->st_gid;
    }
    Status done = fs.manager().lvchange(fs.volume().lv_name(static_cast<uint32_t>(e->id)), change);
    if (!done.ok()) return (void)fuse_reply_err(req, done.code());
    fs.fill_attr(ino, *e, &st);
  }
  if (size_shown_as_zero) {
    st.st_size = 0;
    st.st_blocks = 0;
    return (void)fuse_reply_attr(req, &st, 0);
  }
  fuse_reply_attr(req, &st, kTimeout);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  std::optional<Entry> e = VgFs::of(req).entry(ino);
  if (!e) return (void)fuse_reply_err(req, ENOENT);
  if (!is_dir(e->kind)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->cache_readdir = 0;  // LVs, PVs and jobs come and go
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
    fi->fh = fs.new_lv_handle();
    fs.volume().opened(VgFs::slot_of(ino));
    return (void)fuse_reply_open(req, fi);  // O_TRUNC is ignored, as on a block device
  }
  if (e->kind != Kind::kCtl && writing) return (void)fuse_reply_err(req, EACCES);
  auto* text = new OpenText;
  if (e->kind != Kind::kCtl) text->text = fs.render(*e);
  fi->fh = reinterpret_cast<uint64_t>(text);
  fi->direct_io = 1;
  fuse_reply_open(req, fi);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  if (VgFs::is_lv_file(ino)) {
    VgFs& fs = VgFs::of(req);
    fs.volume().closed(VgFs::slot_of(ino));
    const bool cancelled = fs.pending_truncates().take(fi->fh);  // closed before it took effect
    fuse_reply_err(req, 0);
    if (cancelled) fs.forget_size(ino);
    return;
  }
  delete reinterpret_cast<OpenText*>(fi->fh);
  fuse_reply_err(req, 0);
}

// fuse_bufvec ends in a one-element array; the pieces continue right after it.
struct PieceVec {
  fuse_bufvec vec;
  fuse_buf more[kMaxPieces - 1];
};
static_assert(offsetof(PieceVec, more) == sizeof(fuse_bufvec));

// A read from PVs without a local descriptor: through their backends into
// a buffer (under the caller's IoGuard).
// The pieces of a striped read alternate between the legs, and the pieces
// of one leg follow each other on its PV: each such chain is one preadv
// into the places of its pieces in the reply (a 1 MiB read of 64 KiB
// stripes on two PVs: two calls instead of sixteen).
void read_into_memory(fuse_req_t req, const PvPiece* pieces, size_t count) {
  thread_local std::vector<char> buffer(kMaxIoSize);
  thread_local std::vector<size_t> at(kMaxPieces);
  thread_local std::vector<bool> taken(kMaxPieces);
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) {
    at[i] = total;
    taken[i] = false;
    total += pieces[i].length;
  }
  if (buffer.size() < total) buffer.resize(total);
  auto fail = [&](const Status& st) {
    log_io_error(st);
    fuse_reply_err(req, EIO);
  };
  for (size_t i = 0; i < count; ++i) {
    if (taken[i]) continue;
    const PvCapabilities caps = pieces[i].dev->capabilities();
    if (caps.local_fd < 0) {
      if (Status st = pieces[i].dev->read_at(buffer.data() + at[i], pieces[i].length, pieces[i].offset); !st.ok())
        return fail(st);
      continue;
    }
    iovec iov[64];
    int n = 0;
    uint64_t next = pieces[i].offset;
    for (size_t j = i; j < count && n < 64; ++j) {
      if (taken[j] || pieces[j].dev != pieces[i].dev || pieces[j].offset != next) continue;
      taken[j] = true;
      iov[n++] = iovec{buffer.data() + at[j], pieces[j].length};
      next += pieces[j].length;
    }
    // A full transfer or EIO, as read_at: a short count at the PV's end is
    // a PV truncated under the mount.
    uint64_t pos = pieces[i].offset;
    int first = 0;
    while (first < n) {
      const ssize_t got = ::preadv(caps.local_fd, iov + first, n - first, static_cast<off_t>(pos + caps.local_fd_offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        return fail(Status::Error(EIO, fmt::format("{}: read of {} bytes at byte {} failed: {}", pieces[i].dev->label(),
                                                   next - pos, pos, got < 0 ? std::strerror(errno) : "past its end")));
      pos += static_cast<uint64_t>(got);
      for (size_t left = static_cast<size_t>(got); left > 0;) {
        if (left >= iov[first].iov_len) {
          left -= iov[first].iov_len;
          ++first;
        } else {
          iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
          iov[first].iov_len -= left;
          left = 0;
        }
      }
    }
  }
  fuse_reply_buf(req, buffer.data(), total);
}

// The completions of VolumeSet::AsyncIo (op_read and op_write_buf): reply,
// then free the slot.
void read_done(VolumeSet::AsyncIo& io, Result<size_t> r) {
  AsyncSlot& s = *static_cast<AsyncSlot*>(io.context);
  if (r.ok()) {
    fuse_reply_buf(s.req, s.buf.data(), *r);
  } else {
    log_io_error(r.status());
    fuse_reply_err(s.req, EIO);
  }
  AsyncSlots::give_back(s);
}

void write_done(VolumeSet::AsyncIo& io, Result<size_t> r) {
  AsyncSlot& s = *static_cast<AsyncSlot*>(io.context);
  if (r.ok()) {
    fuse_reply_write(s.req, *r);
  } else {
    log_io_error(r.status());
    fuse_reply_err(s.req, EIO);
  }
  AsyncSlots::give_back(s);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  if (!VgFs::is_lv_file(ino)) {
    // Reply after the lock is released: once the reply is out the reader may
    // close, and RELEASE on another thread deletes `text`.
    auto* text = reinterpret_cast<OpenText*>(fi->fh);
    std::string slice;
    {
      std::lock_guard lock(text->mutex);
      size_t from = std::min(static_cast<size_t>(off), text->text.size());
      slice = text->text.substr(from, size);
    }
    return (void)fuse_reply_buf(req, slice.data(), slice.size());
  }
  // Pieces on NBD PVs: sent at once and replied from their completion (on
  // the connection's I/O thread), so this thread serves the next request
  // meanwhile; alone in flight, served here (src/fuse/async_slots.h). Not
  // for a request from an io_uring ring, which only its queue thread may
  // answer.
  std::optional<AsyncSlots::SyncTurn> alone;
  if (fs.volume().has_async_pvs() && UringTransport::reply_buffer().empty()) {
    if (fs.async_slots().idle()) alone.emplace(fs.async_slots());
    else if (AsyncSlot* s = fs.async_slots().take(size)) {
      s->req = req;
      s->io.done = read_done;
      s->io.context = s;
      if (fs.volume().start_read(s->io, VgFs::slot_of(ino), static_cast<uint64_t>(off), s->buf.data(), size)) return;
      AsyncSlots::give_back(*s);
    }
  }
  VolumeSet::IoGuard guard(fs.volume());  // the PEs stay this LV's until the reply is sent
  PvPiece pieces[kMaxPieces];
  size_t count = fs.volume().map(VgFs::slot_of(ino), static_cast<uint64_t>(off), size, pieces);
  if (count == 0) return (void)fuse_reply_buf(req, nullptr, 0);
  // A request from an io_uring ring: read straight into the entry's payload
  // buffer, which the reply then leaves in place. read_at is a full transfer
  // or an error, so a truncated PV gives EIO here without check_range.
  if (std::span<char> ring = UringTransport::reply_buffer(); !ring.empty()) {
    size_t done = 0;
    for (size_t i = 0; i < count; ++i) {
      if (done + pieces[i].length > ring.size()) return (void)fuse_reply_err(req, EIO);
      if (Status st = pieces[i].dev->read_at(ring.data() + done, pieces[i].length, pieces[i].offset); !st.ok()) {
        log_io_error(st);
        return (void)fuse_reply_err(req, EIO);
      }
      done += pieces[i].length;
    }
    return (void)fuse_reply_buf(req, ring.data(), done);
  }
  // libfuse would not splice a reply of more pieces (kMaxSplicePieces): it
  // would allocate, fill and free a buffer for it. Copy through this
  // thread's buffer instead, without the allocation
  // (read_at is a full transfer or EIO: no check_range needed).
  if (count > splice_piece_limit()) return read_into_memory(req, pieces, count);
  // libfuse cuts a reply short, without a word, where a PV file ends early:
  // a PV truncated under the mount must give EIO, not a short read (EOF) in
  // the middle of an LV. One check per PV (a stat each), over the span its
  // pieces cover: a striped read has many pieces on a few PVs.
  struct Span {
    const PvDevice* dev;
    uint64_t begin, end;
  };
  Span spans[8];
  size_t n_spans = 0;
  bool each = false;  // more PVs than spans: check every piece
  for (size_t i = 0; i < count && !each; ++i) {
    const uint64_t b = pieces[i].offset, e = pieces[i].offset + pieces[i].length;
    size_t k = 0;
    while (k < n_spans && spans[k].dev != pieces[i].dev) ++k;
    if (k < n_spans) {
      spans[k].begin = std::min(spans[k].begin, b);
      spans[k].end = std::max(spans[k].end, e);
    } else if (n_spans < std::size(spans)) {
      spans[n_spans++] = Span{pieces[i].dev, b, e};
    } else {
      each = true;
    }
  }
  for (size_t i = 0; i < (each ? count : n_spans); ++i) {
    Status st = each ? pieces[i].dev->check_range(pieces[i].offset, pieces[i].length)
                     : spans[i].dev->check_range(spans[i].begin, spans[i].end - spans[i].begin);
    if (!st.ok()) {
      log_io_error(st);
      return (void)fuse_reply_err(req, EIO);
    }
  }
  PieceVec pv;
  pv.vec.count = count;
  pv.vec.idx = 0;
  pv.vec.off = 0;
  for (size_t i = 0; i < count; ++i) {
    // Zero-copy needs a descriptor the kernel can splice from.
    const PvCapabilities caps = pieces[i].dev->capabilities();
    if (caps.local_fd < 0) return read_into_memory(req, pieces, count);
    fuse_buf& b = i == 0 ? pv.vec.buf[0] : pv.more[i - 1];
    b = fuse_buf{};
    b.size = pieces[i].length;
    b.flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY);
    b.fd = caps.local_fd;
    b.pos = static_cast<off_t>(pieces[i].offset + caps.local_fd_offset);
  }
  fuse_reply_data(req, &pv.vec, FUSE_BUF_SPLICE_MOVE);
}

void op_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec* in, off_t off, struct fuse_file_info* fi) {
  VgFs& fs = VgFs::of(req);
  const Kind kind = VgFs::is_lv_file(ino) ? Kind::kLv : ino == kCtlIno ? Kind::kCtl : Kind::kVg;
  const size_t size = fuse_buf_size(in);
  auto to_memory = [&](char* dst, size_t length) {
    fuse_bufvec mem = FUSE_BUFVEC_INIT(length);
    mem.buf[0].mem = dst;
    return fuse_buf_copy(&mem, in, FUSE_BUF_NO_SPLICE);
  };
  if (kind == Kind::kCtl) {
    auto* text = reinterpret_cast<OpenText*>(fi->fh);
    // One write() is one command. The kernel cuts a write() longer than
    // max_write into several WRITE requests (sent together for AIO); the
    // first is longer than the cap and every later one ends past byte
    // kMaxCommand of the file, so no piece of a split write ever runs.
    std::string refused;
    if (size > kMaxCommand) refused = fmt::format("command longer than {} bytes", kMaxCommand);
    else if (static_cast<uint64_t>(off) + size > kMaxCommand)
      refused = fmt::format("a command must be written within the first {} bytes of .vgfs/ctl (this write ends at "
                            "byte {}): write it at offset 0, one command per write()",
                            kMaxCommand, static_cast<uint64_t>(off) + size);
    if (!refused.empty()) {
      {
        std::lock_guard lock(text->mutex);
        text->text = "error: " + refused + "\n";
      }
      return (void)fuse_reply_err(req, EINVAL);
    }
    std::string line(size, '\0');
    ssize_t got = to_memory(line.data(), size);
    if (got < 0) return (void)fuse_reply_err(req, static_cast<int>(-got));
    line.resize(static_cast<size_t>(got));
    Reply reply = fs.control(line);
    {
      std::lock_guard lock(text->mutex);
      text->text = reply.text;
    }
    if (reply.code) return (void)fuse_reply_err(req, reply.code);
    return (void)fuse_reply_write(req, size);
  }
  if (kind != Kind::kLv) return (void)fuse_reply_err(req, EACCES);
  if (fs.read_only()) return (void)fuse_reply_err(req, EROFS);
  const uint32_t lv = VgFs::slot_of(ino);
  VolumeSet& volume = fs.volume();
  if (fs.pending_truncates().any() && fs.pending_truncates().take(fi->fh)) {  // the write completes a truncate to 0
    if (Status zeroed = fs.truncate_to_zero(lv); !zeroed.ok()) {
      log_io_error(zeroed);
      return (void)fuse_reply_err(req, EIO);
    }
  }
  if (static_cast<uint64_t>(off) >= volume.lv_size(lv)) return (void)fuse_reply_err(req, ENOSPC);
  // Outside any job, pieces on NBD PVs are sent at once and the write is
  // replied from their completion (as op_read; alone in flight, served
  // here). Inside a job's range the write rules run synchronously
  // (docs/migration.md rules 2-5).
  std::optional<AsyncSlots::SyncTurn> alone;
  if (volume.has_async_pvs() && !volume.has_transfers(lv) && UringTransport::reply_buffer().empty()) {
    if (fs.async_slots().idle()) alone.emplace(fs.async_slots());
    else if (AsyncSlot* s = fs.async_slots().take(size)) {
      ssize_t got = to_memory(s->buf.data(), size);
      if (got < 0) {
        AsyncSlots::give_back(*s);
        return (void)fuse_reply_err(req, static_cast<int>(-got));
      }
      s->req = req;
      s->io.done = write_done;
      s->io.context = s;
      if (volume.start_write(s->io, lv, static_cast<uint64_t>(off), s->buf.data(), static_cast<size_t>(got))) return;
      // Not all on NBD PVs (or a job started meanwhile): the bytes are in
      // the slot's buffer already, write them from there.
      Result<size_t> done = volume.write(lv, static_cast<uint64_t>(off), s->buf.data(), static_cast<size_t>(got));
      AsyncSlots::give_back(*s);
      if (!done.ok()) {
        log_io_error(done.status());
        return (void)fuse_reply_err(req, EIO);
      }
      return (void)fuse_reply_write(req, *done);
    }
  }
  {
    VolumeSet::IoGuard guard(volume);
    PvPiece pieces[kMaxPieces];
    // The common case: straight from the request to the PVs' descriptors.
    const bool direct = !volume.has_transfers(lv);
    const size_t count = direct ? volume.map(lv, static_cast<uint64_t>(off), size, pieces) : 0;
    bool spliceable = direct;
    for (size_t i = 0; i < count; ++i) spliceable = spliceable && pieces[i].dev->capabilities().local_fd >= 0;
    if (spliceable) {
      size_t done = 0;
      for (size_t i = 0; i < count; ++i) {
        // pwrite past the end of a PV that shrank would grow it back with a hole.
        if (Status st = pieces[i].dev->check_range(pieces[i].offset, pieces[i].length); !st.ok()) {
          log_io_error(st);
          return (void)fuse_reply_err(req, EIO);
        }
        fuse_bufvec dst = FUSE_BUFVEC_INIT(pieces[i].length);
        dst.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY);
        const PvCapabilities caps = pieces[i].dev->capabilities();
        dst.buf[0].fd = caps.local_fd;
        dst.buf[0].pos = static_cast<off_t>(pieces[i].offset + caps.local_fd_offset);
        ssize_t got = fuse_buf_copy(&dst, in, static_cast<fuse_buf_copy_flags>(0));
        if (got != static_cast<ssize_t>(pieces[i].length)) return (void)fuse_reply_err(req, EIO);
        pieces[i].dev->note_written();
        done += pieces[i].length;
      }
      return (void)fuse_reply_write(req, done);
    }
  }
  // A migration runs on this LV (the write rules need the data in memory),
  // or a PV has no descriptor to splice into.
  thread_local std::vector<char> buffer(kMaxIoSize);
  ssize_t got = to_memory(buffer.data(), std::min(size, buffer.size()));
  if (got < 0) return (void)fuse_reply_err(req, static_cast<int>(-got));
  Result<size_t> done = volume.write(lv, static_cast<uint64_t>(off), buffer.data(), static_cast<size_t>(got));
  if (!done.ok()) {
    log_io_error(done.status());
    return (void)fuse_reply_err(req, EIO);
  }
  fuse_reply_write(req, *done);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  if (!VgFs::is_lv_file(ino)) return (void)fuse_reply_err(req, 0);
  Status st = fs.volume().flush(VgFs::slot_of(ino));
  if (!st.ok()) log::error(st.message());
  fuse_reply_err(req, st.ok() ? 0 : EIO);
}

void op_flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info*) { fuse_reply_err(req, 0); }

void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length, struct fuse_file_info*) {
  VgFs& fs = VgFs::of(req);
  if (!VgFs::is_lv_file(ino)) return (void)fuse_reply_err(req, EOPNOTSUPP);
  const uint32_t lv = VgFs::slot_of(ino);
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
  if (!st.ok()) log_io_error(st);
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

// Whether the handler of a request may block for long: the io_uring
// transport serves those on worker threads, so one fsync or control command
// does not hold up the other requests of its ring. LV reads and writes wait
// at most for one region copy of a running job (docs/migration.md, rule 3).
bool may_block(uint32_t opcode, uint64_t nodeid) {
  switch (opcode) {
    case FUSE_WRITE: return !VgFs::is_lv_file(nodeid);  // .vgfs/ctl runs commands
    case FUSE_READ: case FUSE_GETATTR: case FUSE_LOOKUP: case FUSE_OPEN: case FUSE_RELEASE: case FUSE_FLUSH:
    case FUSE_OPENDIR: case FUSE_READDIR: case FUSE_RELEASEDIR: case FUSE_STATFS: case FUSE_CREATE:
      return false;
    default: return true;  // fsync, fallocate, setattr (chmod and chown commit), ...
  }
}

// Every handler runs inside guarded() (src/fuse/guarded.h): an exception
// answers its request with EIO or ENOMEM instead of ending the daemon.
template <size_t N>
struct OpName {
  char text[N];
  constexpr OpName(const char (&s)[N]) { std::copy_n(s, N, text); }
};

template <OpName Name, auto Fn>
struct Safe;
template <OpName Name, class... A, void (*Fn)(fuse_req_t, A...)>
struct Safe<Name, Fn> {
  static void call(fuse_req_t req, A... a) noexcept {
    guarded(Name.text, req, [](fuse_req_t r, int err) { fuse_reply_err(r, err); }, [&] { Fn(req, a...); });
  }
};

// init has no request to answer: an exception there is logged and the
// defaults stay.
void safe_init(void* userdata, struct fuse_conn_info* conn) noexcept {
  try {
    op_init(userdata, conn);
  } catch (...) {
    (void)errno_for_current_exception("init");
  }
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops ops{};
  ops.init = safe_init;
  ops.lookup = Safe<"lookup", op_lookup>::call;
  ops.getattr = Safe<"getattr", op_getattr>::call;
  ops.setattr = Safe<"setattr", op_setattr>::call;
  ops.opendir = Safe<"opendir", op_opendir>::call;
  ops.readdir = Safe<"readdir", op_readdir>::call;
  ops.open = Safe<"open", op_open>::call;
  ops.release = Safe<"release", op_release>::call;
  ops.read = Safe<"read", op_read>::call;
  ops.write_buf = Safe<"write", op_write_buf>::call;
  ops.fsync = Safe<"fsync", op_fsync>::call;
  ops.flush = Safe<"flush", op_flush>::call;
  ops.fallocate = Safe<"fallocate", op_fallocate>::call;
  ops.statfs = Safe<"statfs", op_statfs>::call;
  ops.mknod = Safe<"mknod", op_mknod>::call;
  ops.mkdir = Safe<"mkdir", op_mkdir>::call;
  ops.unlink = Safe<"unlink", op_unlink>::call;
  ops.rmdir = Safe<"rmdir", op_unlink>::call;
  ops.symlink = Safe<"symlink", op_symlink>::call;
  ops.link = Safe<"link", op_link>::call;
  ops.rename = Safe<"rename", op_rename>::call;
  ops.create = Safe<"create", op_create>::call;
  return ops;
}

}  // namespace

int run_mount(const MountOptions& options) {
  Result<VgConfig> config =
      options.found ? Result<VgConfig>(*options.found) : load_config(options.config, ConfigParts::kVgAndPvs);
  if (!config.ok()) {
    log::error(config.status().message());
    return 1;
  }
  // LVM2's own commands on this host keep off the VG while it is mounted:
  // its VG lock, taken before the metadata is read, as LVM2 does, and the
  // block devices claimed (include/vgfs/host_locks.h). Held by this
  // process, and by the daemon after the fork (the locks belong to open
  // file descriptions).
  HostLocks host_locks;
  if (options.lvm2) {
    if (Status dm = check_not_in_device_mapper(options.sysfs_root, options.lvm2_vg_id, config->name); !dm.ok()) {
      log::error(dm.message());
      return 1;
    }
    std::vector<std::string> devices;
    for (const PvConfig& pv : config->pvs) devices.push_back(pv.path);
    Result<HostLocks> held = HostLocks::acquire(options.lvm_lock_dir, config->name, !options.read_only, devices);
    if (!held.ok()) {
      log::error(held.status().message());
      return 1;
    }
    host_locks = std::move(*held);
  }
  std::vector<std::string> warnings;
  Result<std::unique_ptr<VgStore>> store = VgStore::open(
      *config, options.read_only ? OpenMode::kReadOnly : OpenMode::kReadWrite, &warnings, *options.format);
  for (const std::string& w : warnings) log::warning(w);  // repairs at open; stderr until daemonized
  if (!store.ok()) {
    log::error(store.status().message());
    return 1;
  }
  if (!options.archive_dir.empty())
    (*store)->set_archive(options.archive_dir);
  else if (!options.config.empty())
    (*store)->set_archive((std::filesystem::path(options.config).parent_path() / "archive").string());
  std::string vg_name = (*store)->metadata().name;
  VgFs fs(std::move(*store), options);
  // Loading parsed the metadata text into a tree that is gone now; give its
  // memory back to the system instead of keeping it in malloc's free lists.
  malloc_trim(0);

  // `-o ro` goes to the kernel too, so /proc/mounts says ro and every open
  // for writing (an LV file, the control file) fails with EROFS before it
  // reaches vgfs; the checks here stay for a remount that bypasses it.
  std::vector<std::string> argv_store = {"vgfs", "-o",
                                         fmt::format("fsname=vgfs:{},subtype=vgfs,default_permissions,max_read={}{}{}",
                                                     vg_name, kMaxReadSize,
                                                     options.allow_other ? ",allow_other" : "",
                                                     options.read_only ? ",ro" : "")};
  if (options.debug) argv_store.push_back("-d");
  std::vector<char*> argv;
  for (std::string& a : argv_store) argv.push_back(a.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  fuse_lowlevel_ops ops = make_ops();

  // `-o io_uring`: check the kernel side now, while the line still reaches
  // the user's terminal (the daemon's stderr is /dev/null).
  bool use_uring = false;
  if (options.io_uring) {
    std::string why;
    use_uring = UringTransport::kernel_ready(&why);
    if (!use_uring) fmt::print(stderr, "vgfs: io_uring: {}; serving through /dev/fuse\n", why);
  }

  fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), &fs);
  if (!se) {
    fmt::print(stderr, "vgfs: cannot start the FUSE session\n");
    return 1;
  }
  fs.set_session(se);
  int status = 1;
  std::unique_ptr<UringTransport> uring;
  if (fuse_set_signal_handlers(se) == 0) {
    if (fuse_session_mount(se, options.mountpoint.c_str()) == 0) {
      fs.manager().set_mount_point(options.mountpoint);  // pvadd refuses paths on it
      // The mount is ready: only now go to the background. `vgfs mount`
      // returns when Background::ready() is called below.
      if (Background::start(options.foreground) == 0) {
        // From here the daemon's stderr is /dev/null: its log is syslog.
        log::configure(options.foreground ? log::Sink::kStderr : log::Sink::kSyslog,
                       options.debug ? log::Level::kDebug : log::Level::kInfo);
        if (!options.foreground)  // the terminal saw these; the log keeps them too
          for (const std::string& w : warnings) log::warning(w);
        log::info(fmt::format("mounted VG {} on {}{}", vg_name, options.mountpoint, options.read_only ? " (ro)" : ""));
        // Copier threads start only now: fork() keeps just the calling thread.
        if (!options.read_only) (void)fs.manager().start();
        if (use_uring) {
          std::string why;
          uring = UringTransport::start(se, kMaxRequestSize, options.debug, may_block, &Background::ready, &why);
          if (!uring) log::warning(fmt::format("io_uring: {}; serving through /dev/fuse", why));
        }
        if (!uring) Background::ready();
        fuse_loop_config* loop = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(loop, 1);
        fuse_loop_cfg_set_max_threads(loop, options.max_threads);
        fuse_loop_cfg_set_idle_threads(loop, options.max_threads);
        status = fuse_session_loop_mt(se, loop) == 0 ? 0 : 1;
        fuse_loop_cfg_destroy(loop);
        fs.async_slots().drain();  // replies still on the wire, before the session goes
      }
      fs.manager().shutdown();  // checkpoints every running job
      Status st = fs.volume().flush();
      if (!st.ok()) log::error(st.message());
      fuse_session_unmount(se);
      log::info(fmt::format("unmounted VG {} from {}", vg_name, options.mountpoint));
      uring.reset();  // the kernel has ended every ring entry: the threads stop
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
