// `vgfs scan` (src/cli/scan.h, docs/lvm2.md "vgfs scan"): finds LVM2 and
// vgfs PVs on whole images and devices and, through libblkid, in the
// partitions of disk images; reads every metadata area of the LVM2 PVs and
// lists each VG with its LVs and whether vgfs can serve their segments.
#include "cli/scan.h"

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
#include <nlohmann/json.hpp>
#include <optional>

#include "vgfs/escape.h"
#include "vgfs/lvm2_scan.h"
#include "vgfs/metadata.h"
#include "vgfs/pv_format.h"
#include "vgfs/units.h"

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

// A vgfs PV: its label and the VG name and seqno of its newest slot.
struct VgfsPv {
  PvLabel label;
  std::string vg_name;
  uint64_t seqno = 0;
};

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

// One PV found: on a whole path or in one of its partitions.
struct Found {
  std::string path;
  int partition = 0;  // 0: the whole path
  uint64_t offset = 0;
  std::optional<lvm2::PvScan> lvm2;
  std::optional<VgfsPv> vgfs;
};

struct Report {
  std::vector<Found> pvs;
  std::vector<std::string> no_pv;  // paths where nothing was found
  std::vector<std::string> warnings, errors;
};

// Probes one source: LVM2's label first, then vgfs's. True when a PV was found.
bool probe(const ByteSource& s, const std::string& path, int partition, uint64_t offset, Report* r) {
  std::vector<std::string> warnings;
  Result<lvm2::PvScan> scan = lvm2::scan_pv(s);
  if (scan.ok()) {
    for (const std::string& w : scan->warnings) r->warnings.push_back(w);
    r->pvs.push_back(Found{path, partition, offset, std::move(*scan), std::nullopt});
    return true;
  }
  if (scan.status().code() != ENOENT) {
    r->errors.push_back(scan.status().message());
    return true;
  }
  std::optional<VgfsPv> v = probe_vgfs(s, &r->warnings);
  if (!v) return false;
  r->pvs.push_back(Found{path, partition, offset, std::nullopt, std::move(v)});
  return true;
}

std::string segment_kind(const lvm2::Lvm2Segment& s) {
  if (s.type == "striped") return s.stripe_count == 1 ? "linear" : "striped";
  return s.type;
}

nlohmann::json vg_json(const lvm2::VgRead& read, const std::vector<const Found*>& members) {
  const lvm2::Lvm2Vg& vg = read.vg;
  const uint64_t extent_bytes = vg.extent_size * lvm2::kSectorSize;
  nlohmann::json j = {{"name", vg.name}, {"uuid", lvm2::format_lvm2_uuid(vg.uuid)}, {"seqno", vg.seqno},
                      {"format", "lvm2"},  {"status", vg.status},   {"flags", vg.flags},
                      {"extent_size", extent_bytes}, {"system_id", vg.system_id}, {"lock_type", vg.lock_type},
                      {"metadata_from", read.from}, {"warnings", read.warnings}};
  j["pvs"] = nlohmann::json::array();
  for (size_t i = 0; i < vg.pvs.size(); ++i) {
    const lvm2::Lvm2Pv& p = vg.pvs[i];
    nlohmann::json pj = {{"key", p.key},           {"uuid", lvm2::format_lvm2_uuid(p.uuid)},
                         {"device_hint", p.device_hint}, {"pe_start", p.pe_start * lvm2::kSectorSize},
                         {"pe_count", p.pe_count}, {"status", p.status}};
    if (read.pvs[i] == SIZE_MAX) {
      pj["path"] = nullptr;
      pj["missing"] = true;
    } else {
      const Found& f = *members[read.pvs[i]];
      pj["path"] = f.path;
      pj["partition"] = f.partition;
      pj["offset"] = f.offset;
      pj["missing"] = false;
    }
    j["pvs"].push_back(pj);
  }
  j["lvs"] = nlohmann::json::array();
  for (const lvm2::Lvm2Lv& l : vg.lvs) {
    nlohmann::json lj = {{"name", l.name}, {"uuid", lvm2::format_lvm2_uuid(l.uuid)}, {"visible", l.visible()},
                         {"status", l.status}, {"extent_count", l.extent_count()},
                         {"size", l.extent_count() * extent_bytes}, {"servable", l.unsupported().empty()},
                         {"reason", l.unsupported()}};
    lj["segments"] = nlohmann::json::array();
    for (const lvm2::Lvm2Segment& s : l.segments) {
      nlohmann::json sj = {{"start_extent", s.start_extent}, {"extent_count", s.extent_count}, {"type", s.type},
                           {"kind", segment_kind(s)}, {"stripe_count", s.stripe_count},
                           {"stripe_size", s.stripe_size * lvm2::kSectorSize}, {"reason", s.unsupported}};
      sj["stripes"] = nlohmann::json::array();
      for (const lvm2::StripeArea& a : s.stripes) sj["stripes"].push_back({{"pv", a.pv}, {"pe", a.pe}});
      lj["segments"].push_back(sj);
    }
    j["lvs"].push_back(lj);
  }
  return j;
}

std::string where_of(const Found& f) {
  return f.partition ? fmt::format("{} (partition {}, byte {})", f.path, f.partition, f.offset) : f.path;
}

}  // namespace

ScanCommand::ScanCommand(CLI::App& app) {
  command_ = app.add_subcommand("scan", "list the PVs and VGs (LVM2 or vgfs) on images, devices and their partitions");
  command_->add_option("PATH", paths_, "image files or block devices")->required();
  command_->add_flag("--json", json_, "print JSON");
}

int ScanCommand::run() const {
  Report r;
  for (const std::string& path : paths_) {
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

  // Group the LVM2 PVs by the VG their newest copy names; PVs without
  // metadata join the VG whose text lists them.
  std::map<std::string, std::vector<const Found*>> groups;
  std::vector<const Found*> without;
  for (const Found& f : r.pvs) {
    if (!f.lvm2) continue;
    const lvm2::MdaCopy* newest = nullptr;
    for (const lvm2::MdaCopy& c : f.lvm2->copies)
      if (!newest || c.summary.seqno > newest->summary.seqno) newest = &c;
    if (newest) groups[newest->summary.uuid].push_back(&f);
    else without.push_back(&f);
  }
  struct VgOut {
    std::vector<const Found*> members;
    std::optional<lvm2::VgRead> read;
  };
  std::vector<VgOut> vgs;
  auto read_group = [](const std::vector<const Found*>& members, const std::string& uuid) {
    std::vector<lvm2::PvScan> scans;
    for (const Found* f : members) scans.push_back(*f->lvm2);
    return lvm2::read_vg_from(scans, uuid);
  };
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
      r.errors.push_back(read.status().message());
      continue;
    }
    vgs.push_back(VgOut{members, std::move(*read)});
  }

  std::map<const Found*, std::string> vg_of;
  for (const VgOut& v : vgs)
    for (const Found* f : v.members) vg_of[f] = v.read->vg.name;

  if (json_) {
    nlohmann::json out = {{"pvs", nlohmann::json::array()}, {"vgs", nlohmann::json::array()},
                          {"no_pv", r.no_pv}, {"warnings", r.warnings}, {"errors", r.errors}};
    for (const Found& f : r.pvs) {
      nlohmann::json pj = {{"path", f.path}, {"partition", f.partition}, {"offset", f.offset}};
      if (f.lvm2) {
        const lvm2::PvLabel& l = f.lvm2->label;
        pj.update({{"format", "lvm2"}, {"uuid", lvm2::format_lvm2_uuid(l.uuid)}, {"label_sector", l.sector},
                   {"device_size", l.device_size}, {"pe_start", l.pe_start()},
                   {"metadata_areas", l.metadata_areas.size()}, {"in_vg", l.in_vg()},
                   {"bootloader_areas", l.bootloader_areas.size()},
                   {"vg", vg_of.count(&f) ? nlohmann::json(vg_of[&f]) : nlohmann::json(nullptr)}});
      } else {
        pj.update({{"format", "vgfs"}, {"uuid", format_uuid(f.vgfs->label.pv_uuid)},
                   {"vg_uuid", format_uuid(f.vgfs->label.vg_uuid)}, {"vg", f.vgfs->vg_name},
                   {"seqno", f.vgfs->seqno}, {"pe_start", f.vgfs->label.layout.pe_start}});
      }
      out["pvs"].push_back(pj);
    }
    for (const VgOut& v : vgs) out["vgs"].push_back(vg_json(*v.read, v.members));
    fmt::print("{}\n", out.dump(2));
  } else {
    for (const Found& f : r.pvs) {
      if (f.lvm2) {
        const lvm2::PvLabel& l = f.lvm2->label;
        fmt::print("PV {}  format lvm2  uuid {}  VG {}  {} mda{}{}\n", printable(where_of(f)),
                   lvm2::format_lvm2_uuid(l.uuid), vg_of.count(&f) ? printable(vg_of[&f]) : "-",
                   l.metadata_areas.size(), l.metadata_areas.size() == 1 ? "" : "s",
                   l.bootloader_areas.empty() ? "" : "  bootloader area");
      } else {
        fmt::print("PV {}  format vgfs  uuid {}  VG {}  seqno {}\n", printable(where_of(f)),
                   format_uuid(f.vgfs->label.pv_uuid), f.vgfs->vg_name.empty() ? "?" : printable(f.vgfs->vg_name),
                   f.vgfs->seqno);
      }
    }
    for (const std::string& p : r.no_pv)
      fmt::print("{}: no PV (no LVM2 or vgfs label on it or in a partition of it)\n", printable(p));
    for (const VgOut& v : vgs) {
      const lvm2::Lvm2Vg& vg = v.read->vg;
      const uint64_t extent_bytes = vg.extent_size * lvm2::kSectorSize;
      size_t present = 0;
      for (size_t i : v.read->pvs) present += i != SIZE_MAX;
      fmt::print("VG {}  format lvm2  uuid {}  seqno {}  extent {}  PVs {}/{}  LVs {}\n", printable(vg.name),
                 lvm2::format_lvm2_uuid(vg.uuid), vg.seqno, human_size(extent_bytes), present, vg.pvs.size(),
                 vg.lvs.size());
      for (const lvm2::Lvm2Lv& l : vg.lvs) {
        std::string kinds;
        for (const lvm2::Lvm2Segment& s : l.segments) {
          std::string k = segment_kind(s);
          if (k == "striped") k += fmt::format("({}x{})", s.stripe_count, human_size(s.stripe_size * lvm2::kSectorSize));
          if (kinds.find(k) == std::string::npos) kinds += (kinds.empty() ? "" : ",") + k;
        }
        const std::string why = l.unsupported();
        fmt::print("  LV {:<20} {:>9}  {:<24} {}\n", printable(l.visible() ? l.name : "[" + l.name + "]"),
                   human_size(l.extent_count() * extent_bytes), printable(kinds),
                   why.empty() ? "vgfs can serve it" : "not served: " + printable(why));
      }
    }
    for (const VgOut& v : vgs)
      for (const std::string& w : v.read->warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  }
  if (!json_)
    for (const std::string& w : r.warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  for (const std::string& e : r.errors) fmt::print(stderr, "vgfs: {}\n", printable(e));
  return r.errors.empty() ? 0 : 1;
}

}  // namespace vgfs::cli
