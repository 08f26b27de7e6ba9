// Finding the VG that SOURCE... names (src/cli/vg_source.h).
#include "cli/vg_source.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

#include "cli/pv_finder.h"
#include "vgfs/escape.h"
#if __has_include("vgfs/lvm2_format.h")
#include "vgfs/lvm2_format.h"
#define VGFS_HAVE_LVM2_FORMAT 1
#endif

namespace vgfs::cli {

namespace {

std::string absolute(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// One VG among the PVs found.
struct Candidate {
  std::string name, uuid;
  bool lvm2 = false;
  std::vector<const FoundPv*> members;
  const lvm2::VgRead* read = nullptr;  // LVM2's
};

PvConfig pv_config_of(const FoundPv& f) {
  PvConfig pc;
  pc.path = absolute(f.path);
  if (f.partition) pc.window = PvWindow{f.offset, f.size};
  return pc;
}

}  // namespace

bool looks_like_config(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return true;  // load_config names the problem
  char buf[4096];
  ssize_t got = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  if (got < 0) return true;
  return std::memchr(buf, '\0', static_cast<size_t>(got)) == nullptr;
}

Result<VgSource> find_vg_source(const std::vector<std::string>& sources, const std::string& vg_name) {
  if (sources.empty()) return Status::Error(EINVAL, "no SOURCE given: a config file, or the PVs' images or devices");
  VgSource out;
  if (sources.size() == 1 && looks_like_config(sources[0])) {
    if (!vg_name.empty())
      return Status::Error(EINVAL, fmt::format("{} is a config file: --vg is for PV paths", sources[0]));
    Result<VgConfig> config = load_config(sources[0], ConfigParts::kVgAndPvs);
    if (!config.ok()) return config.status();
    out.config = std::move(*config);
    out.from_config = true;
    return out;
  }
  for (const std::string& s : sources)
    if (looks_like_config(s))
      return Status::Error(EINVAL, fmt::format("{} is a config file (text, not a PV image); give either one config "
                                               "file or PV paths", s));

  FoundPvs found = find_pvs(sources);
  std::vector<std::string> errors = found.errors;
  std::vector<Lvm2VgFound> lvm2_vgs = group_lvm2_vgs(found, &errors);
  if (!errors.empty()) return Status::Error(EINVAL, errors.front());
  if (!found.no_pv.empty())
    return Status::Error(ENOENT, fmt::format("{}: no PV (no LVM2 or vgfs label on it or in a partition of it)",
                                             found.no_pv.front()));
  out.warnings = found.warnings;

  std::vector<Candidate> vgs;
  for (const Lvm2VgFound& v : lvm2_vgs)
    vgs.push_back(Candidate{v.read.vg.name, lvm2::format_lvm2_uuid(v.read.vg.uuid), true, v.members, &v.read});
  std::map<Uuid, size_t> vgfs_by_uuid;
  for (const FoundPv& f : found.pvs) {
    if (!f.vgfs) continue;
    auto [it, fresh] = vgfs_by_uuid.emplace(f.vgfs->label.vg_uuid, vgs.size());
    if (fresh) vgs.push_back(Candidate{f.vgfs->vg_name, format_uuid(f.vgfs->label.vg_uuid), false, {}, nullptr});
    Candidate& c = vgs[it->second];
    c.members.push_back(&f);
    if (c.name.empty()) c.name = f.vgfs->vg_name;
  }
  auto listing = [&] {
    std::string names;
    for (const Candidate& c : vgs)
      names += fmt::format("{}{} ({}, {})", names.empty() ? "" : ", ", printable(c.name.empty() ? "?" : c.name),
                           c.lvm2 ? "lvm2" : "vgfs", c.uuid);
    return names;
  };
  const Candidate* chosen = nullptr;
  if (!vg_name.empty()) {
    for (const Candidate& c : vgs) {
      if (c.name != vg_name) continue;
      if (chosen)
        return Status::Error(EINVAL, fmt::format("two VGs named {} are on the paths given ({}); give the PVs of one",
                                                 printable(vg_name), listing()));
      chosen = &c;
    }
    if (!chosen)
      return Status::Error(ENOENT, fmt::format("no VG {} on the paths given; they hold: {}", printable(vg_name),
                                               listing()));
  } else if (vgs.size() == 1) {
    chosen = &vgs[0];
  } else {
    return Status::Error(EINVAL, fmt::format("the paths given hold {} VGs: {}; choose one with --vg NAME", vgs.size(),
                                             listing()));
  }

  VgConfig& config = out.config;
  config.name = chosen->name;
  if (chosen->lvm2) {
    const lvm2::VgRead& read = *chosen->read;
    for (size_t i = 0; i < read.vg.pvs.size(); ++i)
      if (read.pvs[i] == SIZE_MAX)
        return Status::Error(ENOENT, fmt::format("PV {} (uuid {}, last seen as {}) of VG {} is missing: it is not on "
                                                 "the paths given; give its image or device too (vgfs serves no "
                                                 "partial VG)",
                                                 printable(read.vg.pvs[i].key), lvm2::format_lvm2_uuid(read.vg.pvs[i].uuid),
                                                 printable(read.vg.pvs[i].device_hint.empty() ? "?" : read.vg.pvs[i].device_hint),
                                                 printable(read.vg.name)));
    for (const std::string& w : read.warnings) out.warnings.push_back(w);
    // Only the PVs of the metadata, in its order (a stray PV of the same VG
    // that the newest text no longer lists is left alone).
    for (size_t i = 0; i < read.vg.pvs.size(); ++i) config.pvs.push_back(pv_config_of(*chosen->members[read.pvs[i]]));
    config.follow_metadata_paths = false;
    out.lvm2 = true;
    out.lvm2_vg_id = read.vg.uuid;
#ifdef VGFS_HAVE_LVM2_FORMAT
    out.format = &lvm2_format();
#else
    return Status::Error(ENOTSUP, fmt::format("VG {} is in LVM2's format, which this vgfs build cannot serve yet",
                                              printable(read.vg.name)));
#endif
  } else {
    for (const FoundPv* f : chosen->members) config.pvs.push_back(pv_config_of(*f));
    // vgfs's own PVs: the metadata's paths are this host's, so a PV not
    // given is looked for where it was last seen, as with a config.
    config.follow_metadata_paths = true;
  }
  return out;
}

}  // namespace vgfs::cli
