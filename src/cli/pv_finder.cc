// Finding PVs on paths (src/cli/pv_finder.h): moved out of `vgfs scan` so
// mount and the reports find them the same way.
#include "cli/pv_finder.h"

#include <blkid/blkid.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>

#include "vgfs/crc32c.h"
#include "vgfs/metadata.h"

namespace vgfs::cli {

namespace {

using lvm2::ByteSource;

// An open read-only file descriptor shared by the sources that read it.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

Result<ByteSource> open_source(const std::string& path) {
  auto fd = std::make_shared<Fd>();
  fd->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd->fd < 0) return Status::Error(errno, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  struct stat st;
  if (::fstat(fd->fd, &st) != 0) return Status::Error(errno, fmt::format("{}: {}", path, std::strerror(errno)));
  uint64_t size = 0;
  if (S_ISREG(st.st_mode)) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd->fd, BLKGETSIZE64, &size) != 0)
      return Status::Error(errno, fmt::format("{}: cannot get the device size: {}", path, std::strerror(errno)));
  } else {
    return Status::Error(EINVAL, fmt::format("{}: not an image file or a block device", path));
  }
  ByteSource s;
  s.name = path;
  s.size = size;
  s.read = [fd, path](void* buf, uint64_t length, uint64_t offset) -> Status {
    char* p = static_cast<char*>(buf);
    while (length > 0) {
      ssize_t got = ::pread(fd->fd, p, length, static_cast<off_t>(offset));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0)
        return Status::Error(EIO, fmt::format("{}: read at byte {} failed: {}", path, offset,
                                              got < 0 ? std::strerror(errno) : "unexpected end of file"));
      p += got;
      length -= static_cast<uint64_t>(got);
      offset += static_cast<uint64_t>(got);
    }
    return Status::Ok();
  };
  return s;
}

// The partitions libblkid finds in a partition table of `path` (GPT, MBR,
// ...): number, first byte, size in bytes. Empty when there is no table.
struct Partition {
  int number = 0;
  uint64_t offset = 0, size = 0;
};
std::vector<Partition> partitions_of(const std::string& path) {
  std::vector<Partition> out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return out;
  blkid_probe pr = blkid_new_probe();
  if (pr && blkid_probe_set_device(pr, fd, 0, 0) == 0) {
    blkid_probe_enable_partitions(pr, 1);
    if (blkid_partlist list = blkid_probe_get_partitions(pr)) {
      const int n = blkid_partlist_numof_partitions(list);
      for (int i = 0; i < n; ++i) {
        blkid_partition p = blkid_partlist_get_partition(list, i);
        if (!p) continue;
        const blkid_loff_t start = blkid_partition_get_start(p), size = blkid_partition_get_size(p);
        if (start <= 0 || size <= 0) continue;
        out.push_back({blkid_partition_get_partno(p), static_cast<uint64_t>(start) * 512,
                       static_cast<uint64_t>(size) * 512});
      }
    }
  }
  if (pr) blkid_free_probe(pr);
  ::close(fd);
  return out;
}

std::optional<VgfsPv> probe_vgfs(const ByteSource& s, std::vector<std::string>* warnings) {
  std::optional<VgfsPv> out;
  for (uint64_t at : kLabelOffsets) {
    std::string block(kLabelSize, '\0');
    if (s.size < at + kLabelSize || !s.read_at(block.data(), block.size(), at).ok()) continue;
    if (!looks_like_label(block)) continue;
    Result<PvLabel> l = decode_label(block, s.size);
    if (!l.ok()) {
      warnings->push_back(fmt::format("{}: vgfs label at byte {}: {}", s.name, at, l.status().message()));
      continue;
    }
    out = VgfsPv{*l, "", 0};
    break;
  }
  if (!out) return out;
  for (uint64_t slot : out->label.layout.slot_offset) {
    std::string header(kSlotHeaderSize, '\0');
    if (!s.read_at(header.data(), header.size(), slot).ok()) continue;
    Result<SlotHeader> h = decode_slot_header(header, out->label.layout.slot_size);
    if (!h.ok() || h->seqno <= out->seqno) continue;
    std::string text(h->text_length, '\0');
    if (!s.read_at(text.data(), text.size(), slot + kSlotHeaderSize).ok() ||
        crc32c(text.data(), text.size()) != h->text_crc)
      continue;
    if (Result<VgMetadata> md = decode_metadata(text, s.name); md.ok()) {
      out->vg_name = md->name;
      out->seqno = h->seqno;
    }
  }
  return out;
}

// Probes one source: LVM2's label first, then vgfs's. True when a PV was found.
bool probe(const ByteSource& s, const std::string& path, int partition, uint64_t offset, FoundPvs* r) {
  Result<lvm2::PvScan> scan = lvm2::scan_pv(s);
  if (scan.ok()) {
    for (const std::string& w : scan->warnings) r->warnings.push_back(w);
    r->pvs.push_back(FoundPv{path, partition, offset, s.size, std::move(*scan), std::nullopt});
    return true;
  }
  if (scan.status().code() != ENOENT) {
    r->errors.push_back(scan.status().message());
    return true;
  }
  std::optional<VgfsPv> v = probe_vgfs(s, &r->warnings);
  if (!v) return false;
  r->pvs.push_back(FoundPv{path, partition, offset, s.size, std::nullopt, std::move(v)});
  return true;
}

}  // namespace

std::string FoundPv::where() const {
  return partition ? fmt::format("{} (partition {}, byte {})", path, partition, offset) : path;
}

FoundPvs find_pvs(const std::vector<std::string>& paths) {
  FoundPvs r;
  for (const std::string& path : paths) {
    Result<ByteSource> whole = open_source(path);
    if (!whole.ok()) {
      r.errors.push_back(whole.status().message());
      continue;
    }
    if (probe(*whole, path, 0, 0, &r)) continue;
    bool any = false;
    for (const Partition& p : partitions_of(path)) {
      ByteSource w = whole->window(p.offset, p.size, fmt::format("{} (partition {})", path, p.number));
      any |= probe(w, path, p.number, p.offset, &r);
    }
    if (!any) r.no_pv.push_back(path);
  }
  return r;
}

std::vector<Lvm2VgFound> group_lvm2_vgs(const FoundPvs& found, std::vector<std::string>* errors) {
  // By the VG uuid their newest copy names; PVs without metadata join the
  // VG whose text lists them.
  std::map<std::string, std::vector<const FoundPv*>> groups;
  std::vector<const FoundPv*> without;
  for (const FoundPv& f : found.pvs) {
    if (!f.lvm2) continue;
    const lvm2::MdaCopy* newest = nullptr;
    for (const lvm2::MdaCopy& c : f.lvm2->copies)
      if (!newest || c.summary.seqno > newest->summary.seqno) newest = &c;
    if (newest) groups[newest->summary.uuid].push_back(&f);
    else without.push_back(&f);
  }
  auto read_group = [](const std::vector<const FoundPv*>& members, const std::string& uuid) {
    std::vector<lvm2::PvScan> scans;
    for (const FoundPv* f : members) scans.push_back(*f->lvm2);
    return lvm2::read_vg_from(scans, uuid);
  };
  std::vector<Lvm2VgFound> vgs;
  for (auto& [uuid, members] : groups) {
    Result<lvm2::VgRead> read = read_group(members, uuid);
    if (read.ok()) {
      bool joined = false;
      for (auto it = without.begin(); it != without.end();) {
        if (read->vg.pv_by_uuid((*it)->lvm2->label.uuid)) {
          members.push_back(*it);
          it = without.erase(it);
          joined = true;
        } else {
          ++it;
        }
      }
      if (joined) read = read_group(members, uuid);
    }
    if (!read.ok()) {
      errors->push_back(read.status().message());
      continue;
    }
    vgs.push_back(Lvm2VgFound{members, std::move(*read)});
  }
  return vgs;
}

}  // namespace vgfs::cli
