// Reading a mounted VG's metadata without its locks (see
// src/cli/mounted_metadata.h).
#include "cli/mounted_metadata.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <optional>
#include <thread>

#include "cli/pv_finder.h"
#include "vgfs/escape.h"
#include "vgfs/lvm2_format.h"
#include "vgfs/pv_device.h"
#include "vgfs/pv_format.h"
#include "vgfs/vg_store.h"

namespace vgfs::cli {
namespace {

Result<nlohmann::json> vg_json(const std::string& mountpoint) {
  const std::string path = mountpoint + "/.vgfs/vg.json";
  std::ifstream in(path);
  if (!in) return Status::Error(ENOENT, fmt::format("{}: cannot read", path));
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    return Status::Error(EIO, fmt::format("{}: {}", path, e.what()));
  }
}

struct Slot {
  bool ok = false;
  uint64_t seqno = 0;
  std::string text;
  std::string problem;
};

Slot read_slot(const PvDevice& dev, const PvLayout& layout, int k) {
  Slot s;
  std::string header(kSlotHeaderSize, '\0');
  Status st = dev.read_at(header.data(), header.size(), layout.slot_offset[k]);
  Result<SlotHeader> h = st.ok() ? decode_slot_header(header, layout.slot_size) : Result<SlotHeader>(st);
  if (!h.ok()) {
    s.problem = h.status().message();
    return s;
  }
  s.text.resize(h->text_length);
  st = dev.read_at(s.text.data(), s.text.size(), layout.slot_offset[k] + kSlotHeaderSize);
  if (!st.ok()) s.problem = st.message();
  else if (crc32c(s.text.data(), s.text.size()) != h->text_crc) s.problem = "metadata text checksum mismatch";
  else s.ok = true;
  s.seqno = h->seqno;
  return s;
}

// An LVM2 VG's PVs (docs/lvm2.md "Mounting"): every mda of every PV, read
// as `vgfs scan` reads them; the newest text must be the seqno the mount
// serves. Damaged or stale mdas go to `problems`.
Result<MountedMetadata> read_lvm2(const std::string& mountpoint, const FoundPvs& found, const std::string& uuid,
                                  uint64_t seqno) {
  MountedMetadata out;
  std::vector<std::string> errors = found.errors;
  std::vector<Lvm2VgFound> vgs = group_lvm2_vgs(found, &errors);
  if (!errors.empty()) return Status::Error(EIO, errors.front());
  for (const Lvm2VgFound& v : vgs) {
    if (lvm2::format_lvm2_uuid(v.read.vg.uuid) != uuid) continue;
    if (v.read.vg.seqno != seqno)
      return Status::Error(EAGAIN, fmt::format("{}: its PVs hold metadata seqno {}, the mount serves {}", mountpoint,
                                               v.read.vg.seqno, seqno));
    out.problems = found.warnings;
    out.problems.insert(out.problems.end(), v.read.warnings.begin(), v.read.warnings.end());
    Result<VgMetadata> md = lvm2_format().decode(v.read.text, v.read.from);
    if (!md.ok()) return md.status();
    out.metadata = std::move(*md);
    out.lvm2 = true;
    // Where each PV is, as the mount and an offline read say (the text's
    // `device` is a hint from whoever wrote it).
    for (size_t i = 0; i < v.read.vg.pvs.size(); ++i) {
      if (v.read.pvs[i] == SIZE_MAX) continue;
      for (PvInfo& p : out.metadata.pvs)
        if (p.uuid == lvm2::short_uuid(v.read.vg.pvs[i].uuid)) p.path = v.members[v.read.pvs[i]]->path;
    }
    return out;
  }
  return Status::Error(EIO, fmt::format("{}: no PV of its VG (uuid {}) found on the paths it serves", mountpoint, uuid));
}

// One pass over every PV vg.json lists. Damage to a copy other than the
// newest goes to `problems`; a PV without a whole newest copy fails.
Result<MountedMetadata> read_once(const std::string& mountpoint, const nlohmann::json& vg) {
  MountedMetadata out;
  const uint64_t seqno = vg.at("seqno").get<uint64_t>();
  {
    std::vector<std::string> paths;
    for (const nlohmann::json& p : vg.at("pvs")) {
      Result<std::string> path = unescape_bytes(p.at("path").get<std::string>());
      if (!path.ok()) return path.status();
      if (std::find(paths.begin(), paths.end(), *path) == paths.end()) paths.push_back(*path);
    }
    FoundPvs found = find_pvs(paths);
    for (const FoundPv& f : found.pvs)
      if (f.lvm2) return read_lvm2(mountpoint, found, vg.at("uuid").get<std::string>(), seqno);
  }
  std::optional<std::string> text;
  std::vector<PvLabel> labels;
  for (const nlohmann::json& p : vg.at("pvs")) {
    Result<std::string> path = unescape_bytes(p.at("path").get<std::string>());
    if (!path.ok()) return path.status();
    const std::string name = p.at("name").get<std::string>();
    Result<PvDevice> dev = PvDevice::open(*path, false, fmt::format("PV {} ({})", name, p.at("path").get<std::string>()));
    if (!dev.ok()) return dev.status();
    std::optional<PvLabel> label;
    for (int i = 0; i < 2; ++i) {
      std::string block(kLabelSize, '\0');
      Status st = dev->read_at(block.data(), block.size(), kLabelOffsets[i]);
      Result<PvLabel> l = st.ok() ? decode_label(block, dev->size()) : Result<PvLabel>(st);
      if (!l.ok()) out.problems.push_back(fmt::format("{}: label copy {}: {}", dev->label(), i, l.status().message()));
      else if (!label) label = *l;
    }
    if (!label) return Status::Error(EINVAL, fmt::format("{}: no valid label", dev->label()));
    labels.push_back(*label);
    std::optional<std::string> newest;
    for (int k = 0; k < 2; ++k) {
      Slot s = read_slot(*dev, label->layout, k);
      if (!s.ok) out.problems.push_back(fmt::format("{}: metadata slot {}: {}", dev->label(), k, s.problem));
      else if (s.seqno == seqno) newest = std::move(s.text);
    }
    if (!newest)
      return Status::Error(EIO, fmt::format("{}: no whole copy of metadata seqno {} (the one {} serves)", dev->label(),
                                            seqno, mountpoint));
    if (text && *text != *newest)
      return Status::Error(EIO, fmt::format("{}: its metadata seqno {} differs from the other PVs'", dev->label(), seqno));
    text = std::move(newest);
  }
  if (!text) return Status::Error(EIO, fmt::format("{}: the VG lists no PV", mountpoint));
  Result<VgMetadata> md = decode_metadata(*text, fmt::format("metadata seqno {} of {}", seqno, mountpoint));
  if (!md.ok()) return md.status();
  Status st = md->validate();
  for (uint32_t i = 0; st.ok() && i < labels.size() && i < md->pvs.size(); ++i) st = check_against_label(*md, i, labels[i]);
  if (!st.ok()) return st;
  out.metadata = std::move(*md);
  return out;
}

}  // namespace

Result<MountedMetadata> read_mounted_metadata(const std::string& mountpoint) {
  Result<MountedMetadata> last = Status::Error(EAGAIN, "not read");
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::milliseconds(100 * attempt));
    Result<nlohmann::json> before = vg_json(mountpoint);
    if (!before.ok()) return before.status();
    try {
      last = read_once(mountpoint, *before);
    } catch (const std::exception& e) {  // a vg.json of an unexpected shape
      return Status::Error(EIO, fmt::format("{}/.vgfs/vg.json: {}", mountpoint, e.what()));
    }
    Result<nlohmann::json> after = vg_json(mountpoint);
    if (!after.ok()) return after.status();
    const bool stable = (*before)["seqno"] == (*after)["seqno"];
    if (stable && last.ok() && last->problems.empty()) return last;
    if (stable && attempt >= 2) return last;  // the same damage on three quiet passes: it is real
  }
  return last;
}

}  // namespace vgfs::cli
