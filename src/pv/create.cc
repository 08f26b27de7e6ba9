// `vgfs create`: the first metadata from a config, and writing it onto the
// PVs (include/vgfs/vg_store.h, docs/config.md).
//
// Why two phases: every check (config, existing files, sizes, placement)
// runs before the first byte is written, so a create that fails leaves the
// disk as it was; the only writes that can still fail are I/O errors, and
// then every file this create made is removed again.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "vgfs/nbd_uri.h"
#include "vgfs/vg_store.h"

namespace vgfs {

namespace {

// True when the device holds any non-zero byte in its data extents (holes of
// a sparse file are skipped). Block devices are checked over their first
// 16 MiB, where partition tables and filesystem signatures live.
Result<bool> holds_data(const PvDevice& dev) {
  std::vector<char> buf(MiB);
  auto scan = [&](uint64_t from, uint64_t to) -> Result<bool> {
    for (uint64_t at = from; at < to;) {
      uint64_t n = std::min<uint64_t>(buf.size(), to - at);
      VGFS_RETURN_IF_ERROR(dev.read_at(buf.data(), n, at));
      if (std::any_of(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n), [](char c) { return c != 0; })) return true;
      at += n;
    }
    return false;
  };
  if (dev.is_block_device()) return scan(0, std::min<uint64_t>(dev.size(), 16 * MiB));
  for (uint64_t at = 0, end = dev.size(); at < end;) {
    // Bounded, so a data run reported past its data costs one chunk's read.
    Result<PvExtent> run = dev.backend().extent_at(at, std::min<uint64_t>(end - at, 16 * MiB));
    if (!run.ok()) return run.status();
    if (run->data) {
      Result<bool> found = scan(at, at + run->length);
      if (!found.ok() || *found) return found;
    }
    at += run->length;
  }
  return false;
}

}  // namespace

Status check_unused(const PvDevice& dev) {
  std::string head(2 * kLabelSize, '\0');
  if (dev.size() >= head.size()) {
    VGFS_RETURN_IF_ERROR(dev.read_at(head.data(), head.size(), 0));
    if (looks_like_label(head) || looks_like_label(std::string_view(head).substr(kLabelSize)))
      return Status::Error(EEXIST, fmt::format("{}: already holds a vgfs label", dev.label()));
  }
  Result<bool> data = holds_data(dev);
  if (!data.ok()) return data.status();
  if (*data) return Status::Error(EEXIST, fmt::format("{}: holds data vgfs did not create", dev.label()));
  return Status::Ok();
}

Status wipe_label(const PvDevice& dev) {
  std::string zero(kLabelSize, '\0');
  for (uint64_t at : kLabelOffsets) VGFS_RETURN_IF_ERROR(dev.write_at(zero.data(), zero.size(), at));
  return dev.sync();
}

Result<VgMetadata> metadata_from_config(const VgConfig& config, const std::vector<uint64_t>& device_sizes,
                                        std::vector<std::string>* notes) {
  VgMetadata md;
  md.name = config.name;
  md.uuid = new_uuid();
  md.extent_size = config.extent_size;
  md.region_size = config.region_size;
  md.seqno = 1;
  for (size_t i = 0; i < config.pvs.size(); ++i) {
    const PvConfig& pc = config.pvs[i];
    PvLayout layout = PvLayout::standard(device_sizes[i], config.extent_size);
    if (layout.pe_count == 0)
      return Status::Error(EINVAL, fmt::format("{}: PV {} ({}) has {} bytes, too small for one {} extent after "
                                               "its {} bytes of label and metadata",
                                               pc.place.str(), pc.name, pc.path, device_sizes[i],
                                               format_size(config.extent_size), layout.pe_start));
    md.pvs.push_back(PvInfo{pc.name, new_uuid(), pc.path, layout.pe_start, layout.pe_count});
  }

  // Explicit maps first: they claim fixed PEs; sized LVs fill in around them.
  struct Claim {
    uint32_t pv;
    uint64_t pe, count;
    const LvConfig* lv;
  };
  std::vector<Claim> claims;
  for (const LvConfig& lc : config.lvs) {
    if (lc.extents.empty()) continue;
    std::vector<const ExplicitRun*> runs;
    for (const ExplicitRun& r : lc.extents) runs.push_back(&r);
    std::sort(runs.begin(), runs.end(), [](auto* a, auto* b) { return a->le < b->le; });
    LvInfo lv{lc.name, new_uuid(), lc.mode, lc.uid, lc.gid};
    for (const ExplicitRun* r : runs) {
      int pv = md.find_pv(r->pv);
      if (pv < 0) return Status::Error(EINVAL, fmt::format("{}: LV {} names unknown PV \"{}\"", r->place.str(), lc.name, r->pv));
      const PvInfo& info = md.pvs[static_cast<size_t>(pv)];
      if (r->pe >= info.pe_count || r->count > info.pe_count - r->pe)
        return Status::Error(EINVAL, fmt::format("{}: LV {}: PE {} is out of range: PV {} has PEs 0-{}", r->place.str(),
                                                 lc.name, format_range(r->pe, r->count), info.name, info.pe_count - 1));
      uint64_t next = lv.map.extent_count();
      if (r->le < next)
        return Status::Error(EINVAL, fmt::format("{}: LV {}: LE {} overlaps LEs mapped already", r->place.str(),
                                                 lc.name, format_range(r->le, r->count)));
      if (r->le > next)
        return Status::Error(EINVAL, fmt::format("{}: LV {}: LE {} is not mapped (LEs must run from 0 without gaps)",
                                                 r->place.str(), lc.name, format_range(next, r->le - next)));
      for (const Claim& c : claims)
        if (c.pv == static_cast<uint32_t>(pv) && r->pe < c.pe + c.count && c.pe < r->pe + r->count) {
          uint64_t first = std::max(r->pe, c.pe), last = std::min(r->pe + r->count, c.pe + c.count) - 1;
          return Status::Error(EINVAL, fmt::format("{}: LV {}: PE {} of PV {} is already used by LV {}", r->place.str(),
                                                   lc.name, format_range(first, last - first + 1), info.name, c.lv->name));
        }
      claims.push_back(Claim{static_cast<uint32_t>(pv), r->pe, r->count, &lc});
      lv.map.append(static_cast<uint32_t>(pv), r->pe, r->count);
    }
    md.lvs.push_back(std::move(lv));
  }
  for (const LvConfig& lc : config.lvs) {
    if (!lc.size) continue;
    uint64_t extents = div_ceil(*lc.size, config.extent_size);
    if (extents * config.extent_size != *lc.size && notes)
      notes->push_back(fmt::format("LV {}: size {} rounded up to {} extents ({})", lc.name, format_size(*lc.size),
                                   extents, format_size(extents * config.extent_size)));
    Result<std::vector<MapRun>> runs = allocate_extents(md, extents, {});
    if (!runs.ok())
      return Status::Error(ENOSPC, fmt::format("{}: LV {} of {}: {}", lc.place.str(), lc.name, format_size(*lc.size),
                                               runs.status().message()));
    LvInfo lv{lc.name, new_uuid(), lc.mode, lc.uid, lc.gid};
    for (const MapRun& r : *runs) lv.map.append(r.pv, r.pe, r.count);
    md.lvs.push_back(std::move(lv));
  }
  // Keep the config's LV order.
  std::vector<LvInfo> ordered;
  for (const LvConfig& lc : config.lvs) ordered.push_back(std::move(md.lvs[static_cast<size_t>(md.find_lv(lc.name))]));
  md.lvs = std::move(ordered);
  VGFS_RETURN_IF_ERROR(md.validate().prefixed(config.path));
  return md;
}

Status VgStore::create(const VgConfig& config, bool force, std::vector<std::string>* notes) {
  // Phase 1: look at every PV without writing anything.
  std::vector<uint64_t> sizes;
  std::vector<bool> exists;
  for (const PvConfig& pc : config.pvs) {
    std::string label = fmt::format("{}: PV {} ({})", pc.place.str(), pc.name, pc.path);
    std::error_code ec;
    if (!is_nbd_uri(pc.path) && !std::filesystem::exists(pc.path, ec)) {
      std::filesystem::path parent = std::filesystem::path(pc.path).parent_path();
      if (!std::filesystem::is_directory(parent, ec))
        return Status::Error(ENOENT, fmt::format("{}: folder {} does not exist", label, parent.string()));
      if (!pc.size) return Status::Error(EINVAL, fmt::format("{}: the file does not exist and no size is given", label));
      sizes.push_back(*pc.size);
      exists.push_back(false);
      continue;
    }
    Result<PvDevice> dev = PvDevice::open(pc.path, false, label);
    if (!dev.ok()) return dev.status();
    VGFS_RETURN_IF_ERROR(dev->lock(false));
    uint64_t size = dev->size();
    if (pc.size && *pc.size > size)
      return Status::Error(EINVAL, fmt::format("{}: it has {} bytes, less than its size {}", label, size,
                                               format_size(*pc.size)));
    if (pc.size) size = *pc.size;
    if (!force) {
      Status unused = check_unused(*dev);
      if (!unused.ok()) return Status::Error(unused.code(), unused.message() + "; use --force to overwrite it");
    }
    sizes.push_back(size);
    exists.push_back(true);
  }
  Result<VgMetadata> md = metadata_from_config(config, sizes, notes);
  if (!md.ok()) return md.status();
  const std::string text = encode_metadata(*md);

  // Phase 2: create, write, sync; undo the files made here on any failure.
  std::vector<std::string> created;
  auto undo = [&](Status st) {
    for (const std::string& path : created) ::unlink(path.c_str());
    return st;
  };
  std::vector<PvDevice> devs;
  for (size_t i = 0; i < config.pvs.size(); ++i) {
    const PvConfig& pc = config.pvs[i];
    if (!exists[i]) {
      int fd = ::open(pc.path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) return undo(Status::Error(errno, fmt::format("PV {} ({}): cannot create: {}", pc.name, pc.path, std::strerror(errno))));
      created.push_back(pc.path);
      int rc = ftruncate(fd, static_cast<off_t>(sizes[i]));
      int err = errno;
      ::close(fd);
      if (rc != 0) return undo(Status::Error(err, fmt::format("PV {} ({}): cannot size to {}: {}", pc.name, pc.path, sizes[i], std::strerror(err))));
    }
    Result<PvDevice> dev = PvDevice::open(pc.path, true, fmt::format("PV {} ({})", pc.name, pc.path));
    if (!dev.ok()) return undo(dev.status());
    Status st = dev->lock(true);
    if (!st.ok()) return undo(st);
    devs.push_back(std::move(*dev));
  }
  for (size_t i = 0; i < devs.size(); ++i) {
    const PvDevice& dev = devs[i];
    PvLabel label{md->pvs[i].uuid, md->uuid, PvLayout::standard(sizes[i], md->extent_size)};
    const PvLayout& l = label.layout;
    // Slots and migration area first (clearing what an old VG left there),
    // the labels last: a crash before them leaves no half-made PV.
    // The first metadata has no predecessor: both slots hold it.
    std::string zero(kSlotHeaderSize, '\0');
    Status st = write_metadata_slot(dev, l, 0, md->seqno, text);
    if (st.ok()) st = write_metadata_slot(dev, l, 1, md->seqno, text);
    if (st.ok()) st = dev.write_at(zero.data(), zero.size(), l.migration_offset);
    if (st.ok()) st = dev.sync();
    std::string block = encode_label(label);
    for (uint64_t at : kLabelOffsets)
      if (st.ok()) st = dev.write_at(block.data(), block.size(), at);
    if (st.ok()) st = dev.sync();
    if (!st.ok()) return undo(st);
  }
  return Status::Ok();
}

}  // namespace vgfs
