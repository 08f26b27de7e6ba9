// The `vgfs` command line (README.md "Commands" and "Command line").
//
// Every failure prints one "vgfs: ..." line to stderr and exits 1, a usage
// error too; `vgfs help` and `--help` print to stdout and exit 0.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "cli/mounted_metadata.h"
#include "cli/scan.h"
#include "cli/targets.h"
#include "fuse/vgfs_fs.h"
#include "vgfs/config.h"
#include "vgfs/control.h"
#include "vgfs/escape.h"
#include "vgfs/pv_format.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume_manager.h"
#include "views/views.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <map>
#include <thread>

namespace vgfs {
namespace {

// Messages may hold paths and reasons read from disk: their control bytes
// are escaped (include/vgfs/escape.h), so they cannot drive the terminal.
int fail(const std::string& message) {
  fmt::print(stderr, "vgfs: {}\n", printable(message));
  return 1;
}

std::string absolute(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// Opens a VG for reading without a mount; a mounted VG is refused by its lock.
Result<std::unique_ptr<VgStore>> open_offline(const std::string& config_path, std::vector<std::string>* warnings) {
  Result<VgConfig> config = load_config(config_path);
  if (!config.ok()) return config.status();
  auto store = VgStore::open(*config, OpenMode::kReadOnly, warnings);
  if (!store.ok() && store.status().code() == EBUSY)
    return store.status().prefixed("cannot read the VG offline while it is mounted; give the mount point instead");
  return store;
}

int cmd_create(const std::string& config_path, bool force) {
  if (Status st = cli::require_config("create", config_path); !st.ok()) return fail(st.message());
  Result<VgConfig> config = load_config(config_path);
  if (!config.ok()) return fail(config.status().message());
  std::vector<std::string> notes;
  Status st = VgStore::create(*config, force, &notes);
  for (const std::string& n : notes) fmt::print("{}\n", printable(n));
  if (!st.ok()) return fail(st.message());
  fmt::print("created VG {} on {} PV{}, {} LV{}\n", config->name, config->pvs.size(), config->pvs.size() == 1 ? "" : "s",
             config->lvs.size(), config->lvs.size() == 1 ? "" : "s");
  return 0;
}

Status parse_mount_options(const std::string& list, MountOptions* o) {
  // Generic mount(8) options that mount.fuse3 may pass along; they change nothing here.
  static const std::set<std::string> ignored = {"rw", "dev", "nodev", "suid", "nosuid", "exec", "noexec", "atime",
                                                "noatime", "relatime", "async", "auto", "noauto", "user", "nouser",
                                                "_netdev", "default_permissions", "defaults"};
  std::stringstream in(list);
  std::string opt;
  while (std::getline(in, opt, ',')) {
    if (opt.empty() || ignored.count(opt)) continue;
    if (opt == "ro") o->read_only = true;
    else if (opt == "allow_other") o->allow_other = true;
    else if (opt == "debug") o->debug = true;
    else if (opt == "splice_read") o->splice_read = true;
    else if (opt == "no_splice_read") o->splice_read = false;
    else if (opt == "splice_write") o->splice_write = true;
    else if (opt == "no_splice_write") o->splice_write = false;
    else if (opt.rfind("threads=", 0) == 0) {
      try {
        o->max_threads = static_cast<unsigned>(std::stoul(opt.substr(8)));
      } catch (const std::exception&) {
        o->max_threads = 0;
      }
      if (o->max_threads == 0 || o->max_threads > 256)
        return Status::Error(EINVAL, fmt::format("bad mount option \"{}\": threads must be 1-256", opt));
    } else {
      return Status::Error(EINVAL, fmt::format("unknown mount option \"{}\"", opt));
    }
  }
  return Status::Ok();
}

int cmd_mount(const std::string& config, const std::string& mountpoint, bool foreground,
              const std::vector<std::string>& opts) {
  if (Status st = cli::require_config("mount", config); !st.ok()) return fail(st.message());
  if (Status st = cli::require_mount_folder(mountpoint); !st.ok()) return fail(st.message());
  MountOptions o;
  o.config = absolute(config);  // the daemon changes its folder to /
  o.mountpoint = absolute(mountpoint);
  o.foreground = foreground;
  for (const std::string& list : opts) {
    Status st = parse_mount_options(list, &o);
    if (!st.ok()) return fail(st.message());
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(o.mountpoint, ec))
    return fail(fmt::format("mount point {} is not a folder", o.mountpoint));
  return run_mount(o);
}

// The VG as JSON, from a mount point's vg.json or offline from a config.
Result<nlohmann::json> vg_json_of(const std::string& target) {
  const cli::TargetKind kind = cli::classify_target(target);
  if (kind == cli::TargetKind::kStale) return Status::Error(ENOTCONN, cli::stale_message(target));
  if (kind == cli::TargetKind::kFolder || kind == cli::TargetKind::kMount) {
    std::string path = target + "/.vgfs/vg.json";
    std::ifstream in(path);
    if (!in) return Status::Error(ENOENT, fmt::format("{} is not a vgfs mount point (no .vgfs/vg.json)", target));
    try {
      return nlohmann::json::parse(in);
    } catch (const std::exception& e) {
      return Status::Error(EIO, fmt::format("{}: {}", path, e.what()));
    }
  }
  std::vector<std::string> warnings;
  auto store = open_offline(target, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  if (!store.ok()) return store.status();
  const VgMetadata& md = (*store)->metadata();
  std::vector<JobStatus> jobs;
  for (const JobInfo& j : md.jobs) jobs.push_back(recorded_job_status(md, j));
  return views::vg_json(md, jobs);
}

// Sends one command to a mount's control file and returns the reply text
// ("ok ..." or the error sentence).
Result<std::string> control(const std::string& mountpoint, const std::string& line) {
  std::string path = mountpoint + "/.vgfs/ctl";
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::Error(errno, fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  ssize_t wrote = ::write(fd, line.data(), line.size());
  int err = errno;
  char buf[4096];
  ssize_t got = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  std::string reply = got > 0 ? std::string(buf, static_cast<size_t>(got)) : std::string();
  while (!reply.empty() && reply.back() == '\n') reply.pop_back();
  if (wrote < 0) {
    if (reply.rfind("error: ", 0) == 0) reply = reply.substr(7);
    return Status::Error(err, reply.empty() ? std::strerror(err) : reply);
  }
  return reply;
}

Result<std::map<std::string, std::string>> job_status(const std::string& mountpoint, uint64_t id) {
  std::ifstream in(fmt::format("{}/.vgfs/jobs/{}/status", mountpoint, id));
  if (!in) return Status::Error(ENOENT, fmt::format("no job {} under {}", id, mountpoint));
  std::map<std::string, std::string> fields;
  for (std::string line; std::getline(in, line);) {
    size_t colon = line.find(": ");
    if (colon != std::string::npos) fields[line.substr(0, colon)] = line.substr(colon + 2);
    else if (!line.empty() && line.back() == ':') fields[line.substr(0, line.size() - 1)] = "";
  }
  return fields;
}

// Follows jobs until each has ended: a bar on a terminal, plain lines otherwise.
int wait_for(const std::string& mountpoint, const std::vector<uint64_t>& ids) {
  const bool tty = isatty(STDOUT_FILENO);
  auto last_line = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  int failed = 0;
  for (;;) {
    uint64_t size = 0, done = 0, rate = 0;
    std::string states;
    bool running = false;
    failed = 0;
    for (uint64_t id : ids) {
      auto f = job_status(mountpoint, id);
      if (!f.ok()) return fail(f.status().message());
      std::map<std::string, std::string>& m = *f;
      size += std::stoull(m["size"]);
      done += std::stoull(m["progress_pointer"]);
      rate += std::stoull(m["rate"]);
      const std::string& st = m["sync_status"];
      if (st != "completed" && st != "aborted" && st != "failed") running = true;
      if (st == "aborted" || st == "failed") {
        ++failed;
        if (!running) fmt::print(stderr, "vgfs: job {} {}: {}\n", id, printable(st), printable(m["reason"]));
      }
      if (states.find(st) == std::string::npos) states += (states.empty() ? "" : ",") + st + (m["paused"] == "yes" ? "(paused)" : "");
    }
    double pct = size ? 100.0 * static_cast<double>(done) / static_cast<double>(size) : 100.0;
    std::string eta = rate ? fmt::format("{}s", (size - done) / rate) : "-";
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      int filled = static_cast<int>(pct / 4);
      fmt::print("\r[{:<25}] {:5.1f}% {:>10}/s ETA {:>6} {:<14}", std::string(static_cast<size_t>(filled), '#'), pct,
                 human_size(rate), eta, states);
      std::fflush(stdout);
    } else if (!running || now - last_line >= std::chrono::seconds(1)) {
      fmt::print("{:5.1f}% {}/s ETA {} {}\n", pct, human_size(rate), eta, states);
      std::fflush(stdout);
      last_line = now;
    }
    if (!running) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (tty) fmt::print("\n");
  return failed ? 1 : 0;
}

// The words of a command, each quoted as the control protocol needs
// (include/vgfs/control.h), as one line.
Result<std::string> command_line(const std::vector<std::string>& words) {
  std::string line;
  for (const std::string& w : words) {
    Result<std::string> q = quote_argument(w);
    if (!q.ok()) return q.status();
    line += (line.empty() ? "" : " ") + *q;
  }
  return line;
}

int cmd_control(const std::string& mountpoint, const std::vector<std::string>& words, bool wait) {
  if (Status st = cli::require_mount_point(words[0], mountpoint); !st.ok()) return fail(st.message());
  Result<std::string> line = command_line(words);
  if (!line.ok()) return fail(fmt::format("{}: {}", words[0], line.status().message()));
  Result<std::string> reply = control(mountpoint, *line);
  if (!reply.ok()) return fail(fmt::format("{}: {}", *line, reply.status().message()));
  fmt::print("{}\n", printable(*reply));
  if (!wait) return 0;
  // "ok job N" or "ok jobs N,M,..." with an optional " (...)" note.
  std::vector<uint64_t> ids;
  std::stringstream in(*reply);
  std::string ok, what, list;
  in >> ok >> what >> list;
  std::stringstream items(list);
  for (std::string id; std::getline(items, id, ',');) {
    uint64_t n = 0;
    auto [p, ec] = std::from_chars(id.data(), id.data() + id.size(), n);
    if (ec != std::errc() || p != id.data() + id.size()) return fail(fmt::format("unexpected reply \"{}\"", *reply));
    ids.push_back(n);
  }
  int status = wait_for(mountpoint, ids);
  // pvmove moves as many runs as the PV's migration area has records for;
  // with --wait, go on until it is empty.
  if (status == 0 && words[0] == "pvmove" && reply->find("(partial: ") != std::string::npos)
    return cmd_control(mountpoint, words, wait);
  return status;
}

int cmd_jobs(const std::string& mountpoint, bool json) {
  if (Status st = cli::require_mount_point("jobs", mountpoint); !st.ok()) return fail(st.message());
  Result<nlohmann::json> vg = vg_json_of(mountpoint);
  if (!vg.ok()) return fail(vg.status().message());
  if (json) fmt::print("{}\n", (*vg)["jobs"].dump(2));
  else fmt::print("{}", views::jobs_table(*vg));
  return 0;
}

int cmd_list(const std::string& target, bool pvs, bool maps, bool json) {
  Result<nlohmann::json> vg = vg_json_of(target);
  if (!vg.ok()) return fail(vg.status().message());
  if (json)
    fmt::print("{}\n", (*vg)[pvs ? "pvs" : "lvs"].dump(2));
  else
    fmt::print("{}", pvs ? views::pvs_table(*vg, maps) : views::lvs_table(*vg, maps));
  return 0;
}

// A mounted VG's metadata, read from its PVs (src/cli/mounted_metadata.h),
// or an error for a target that is neither a mount nor a config file.
Result<cli::MountedMetadata> mounted_or_none(const std::string& verb, const std::string& target, bool* mounted) {
  switch (cli::classify_target(target)) {
    case cli::TargetKind::kMount:
      *mounted = true;
      return cli::read_mounted_metadata(target);
    case cli::TargetKind::kStale:
      return Status::Error(ENOTCONN, cli::stale_message(target));
    case cli::TargetKind::kFolder:
      return Status::Error(EINVAL, fmt::format("{} is a folder but not the mount point of a mounted VG (no .vgfs/ctl "
                                               "in it); {} needs a mount point or a config file", target, verb));
    default:
      *mounted = false;
      return cli::MountedMetadata{};
  }
}

int cmd_dump(const std::string& config) {
  bool mounted = false;
  Result<cli::MountedMetadata> m = mounted_or_none("dump", config, &mounted);
  if (!m.ok()) return fail(m.status().message());
  if (mounted) {
    for (const std::string& p : m->problems) fmt::print(stderr, "vgfs: warning: {}\n", printable(p));
    fmt::print("{}", encode_metadata(m->metadata));
    return 0;
  }
  std::vector<std::string> warnings;
  auto store = open_offline(config, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  if (!store.ok()) return fail(store.status().message());
  fmt::print("{}", encode_metadata((*store)->metadata()));
  return 0;
}

// `vgfs restore` when the VG cannot be opened because a PV its current
// metadata lists is missing (e.g. a PV that lived on a mount that is gone):
// the backup is written onto the config's PVs when it lists exactly those
// PVs, as a seqno above every copy found on them.
int restore_without_missing(const VgConfig& config, VgMetadata backup, const std::string& backup_path,
                            const std::string& why) {
  struct Found {
    PvDevice dev;
    PvLabel label;
  };
  std::vector<Found> found;
  uint64_t newest = 0;
  for (const PvConfig& pv : config.pvs) {
    Result<PvDevice> dev = PvDevice::open(pv.path, true, fmt::format("PV {} ({})", pv.name, pv.path));
    if (!dev.ok()) return fail(dev.status().message());
    Status st = dev->lock(true);
    if (!st.ok()) return fail(st.message());
    std::optional<PvLabel> label;
    for (uint64_t at : kLabelOffsets) {
      std::string block(kLabelSize, '\0');
      if (label || dev->size() < at + kLabelSize || !dev->read_at(block.data(), block.size(), at).ok()) continue;
      if (Result<PvLabel> l = decode_label(block, dev->size()); l.ok()) label = *l;
    }
    if (!label) return fail(fmt::format("{}: no valid vgfs label", dev->label()));
    if (label->vg_uuid != backup.uuid)
      return fail(fmt::format("{}: belongs to VG {}, the backup is of VG {} ({})", dev->label(),
                              format_uuid(label->vg_uuid), backup.name, format_uuid(backup.uuid)));
    for (int k = 0; k < 2; ++k) {
      std::string header(kSlotHeaderSize, '\0');
      if (!dev->read_at(header.data(), header.size(), label->layout.slot_offset[k]).ok()) continue;
      if (Result<SlotHeader> h = decode_slot_header(header, label->layout.slot_size); h.ok())
        newest = std::max(newest, h->seqno);
    }
    found.push_back(Found{std::move(*dev), *label});
  }
  for (PvInfo& p : backup.pvs) {
    auto it = std::find_if(found.begin(), found.end(), [&](const Found& f) { return f.label.pv_uuid == p.uuid; });
    if (it == found.end())
      return fail(fmt::format("{}: the backup needs PV {} (UUID {}), which is not in the config ({})", backup_path,
                              p.name, format_uuid(p.uuid), why));
    const PvLayout& l = it->label.layout;
    if (p.pe_start != l.pe_start || p.pe_count > l.pe_count || backup.extent_size != l.extent_size)
      return fail(fmt::format("{}: PV {} does not match its label in the backup", backup_path, p.name));
    p.path = it->dev.path();
  }
  if (found.size() != backup.pvs.size())
    return fail(fmt::format("{}: the config lists PVs the backup does not have ({})", backup_path, why));
  for (JobInfo& j : backup.jobs)
    if (j.running()) {
      j.state = JobState::kAborted;
      j.reason = "restored from a backup";
    }
  backup.seqno = newest + 1;
  Status st = backup.validate();
  if (!st.ok()) return fail(st.prefixed(backup_path).message());
  const std::string text = encode_metadata(backup);
  for (const Found& f : found) {
    st = write_metadata_slot(f.dev, f.label.layout, static_cast<int>(backup.seqno % 2), backup.seqno, text);
    if (st.ok()) st = f.dev.sync();
    if (!st.ok()) return fail(st.message());
  }
  fmt::print("restored VG {} from {} without its missing PV: metadata seqno {}\n", backup.name, printable(backup_path),
             backup.seqno);
  return 0;
}

// Writes a backup (a file of the metadata archive, or `vgfs dump` output)
// back as the newest metadata of an unmounted VG.
int cmd_restore(const std::string& config_path, const std::string& backup_path) {
  if (Status st = cli::require_config("restore", config_path); !st.ok()) return fail(st.message());
  Result<VgConfig> config = load_config(config_path);
  if (!config.ok()) return fail(config.status().message());
  std::ifstream in(backup_path);
  if (!in) return fail(fmt::format("{}: cannot read the backup", backup_path));
  std::stringstream text;
  text << in.rdbuf();
  Result<VgMetadata> backup = decode_metadata(text.str(), backup_path);
  if (!backup.ok()) return fail(backup.status().message());
  std::vector<std::string> warnings;
  auto store = VgStore::open(*config, OpenMode::kReadWrite, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  if (!store.ok() && store.status().code() == ENOENT)
    return restore_without_missing(*config, std::move(*backup), backup_path, store.status().message());
  if (!store.ok()) return fail(store.status().message());
  const VgMetadata& now = (*store)->metadata();
  if (backup->uuid != now.uuid)
    return fail(fmt::format("{}: the backup is of VG {} ({}), not of VG {} ({})", backup_path, backup->name,
                            format_uuid(backup->uuid), now.name, format_uuid(now.uuid)));
  std::vector<Uuid> have, want;
  for (const PvInfo& p : now.pvs) have.push_back(p.uuid);
  for (const PvInfo& p : backup->pvs) want.push_back(p.uuid);
  std::sort(have.begin(), have.end());
  std::sort(want.begin(), want.end());
  if (have != want) return fail(fmt::format("{}: the backup lists other PVs than the VG has now", backup_path));
  for (uint32_t i = 0; i < (*store)->pv_count(); ++i) {
    const PvLayout& l = (*store)->label(i).layout;
    for (const PvInfo& p : backup->pvs)
      if (p.uuid == now.pvs[i].uuid && (p.pe_start != l.pe_start || p.pe_count > l.pe_count || backup->extent_size != l.extent_size))
        return fail(fmt::format("{}: PV {} does not match its label in the backup", backup_path, p.name));
  }
  // Jobs of the backup cannot resume: their records belong to another time.
  for (JobInfo& j : backup->jobs)
    if (j.running()) {
      j.state = JobState::kAborted;
      j.reason = "restored from a backup";
    }
  (*store)->set_archive((std::filesystem::path(config->path).parent_path() / "archive").string());
  uint64_t was = now.seqno;
  Status st = (*store)->commit(std::move(*backup));
  if (!st.ok()) return fail(st.message());
  for (const std::string& p : (*store)->commit_problems()) fmt::print(stderr, "vgfs: warning: {}\n", printable(p));
  fmt::print("restored VG {} from {}: metadata seqno {} (was {})\n", (*store)->metadata().name, printable(backup_path),
             (*store)->metadata().seqno, was);
  return 0;
}

int cmd_check(const std::string& config) {
  bool mounted = false;
  Result<cli::MountedMetadata> m = mounted_or_none("check", config, &mounted);
  if (!m.ok()) return fail(m.status().message());
  if (mounted) {
    const VgMetadata& md = m->metadata;
    for (const std::string& p : m->problems) fmt::print(stderr, "vgfs: {}\n", printable(p));
    if (!m->problems.empty())
      return fail(fmt::format("VG {} (mounted on {}): {} problem(s) found; a read-write mount repairs them", md.name,
                              config, m->problems.size()));
    fmt::print("VG {} (mounted on {}): {} PVs, {} LVs, metadata seqno {}: labels, checksums and maps are consistent\n",
               md.name, config, md.pvs.size(), md.lvs.size(), md.seqno);
    return 0;
  }
  std::vector<std::string> problems;
  auto store = open_offline(config, &problems);
  for (const std::string& p : problems) fmt::print(stderr, "vgfs: {}\n", printable(p));
  if (!store.ok()) return fail(store.status().message());
  const VgMetadata& md = (*store)->metadata();
  if (!problems.empty()) return fail(fmt::format("VG {}: {} problem(s) found; a read-write mount repairs them", md.name, problems.size()));
  fmt::print("VG {}: {} PVs, {} LVs, metadata seqno {}: labels, checksums and maps are consistent\n", md.name,
             md.pvs.size(), md.lvs.size(), md.seqno);
  return 0;
}

// The SIZE of lvcreate/lvextend/lvreduce as LVM2 takes it (100M, 1.5g, a
// bare number in MiB, +1G for lvextend, -1G for lvreduce), as the exact
// byte size the control file takes (include/vgfs/units.h). A relative size
// is added to the LV's size the mount reports.
Result<std::string> lvm_size_argument(const std::string& verb, const std::string& mountpoint, const std::string& lv,
                                      const std::string& text) {
  Result<LvmSize> size = parse_lvm_size(text);
  if (!size.ok()) return size.status().prefixed(verb);
  if (size->sign == 0) return format_size(size->bytes);
  if ((size->sign == '+') != (verb == "lvextend") || verb == "lvcreate")
    return Status::Error(EINVAL, fmt::format("{}: a relative size \"{}\" is for {}", verb, text,
                                             size->sign == '+' ? "lvextend (+SIZE)" : "lvreduce (-SIZE)"));
  if (Status st = cli::require_mount_point(verb, mountpoint); !st.ok()) return st;
  Result<nlohmann::json> vg = vg_json_of(mountpoint);
  if (!vg.ok()) return vg.status();
  for (const nlohmann::json& l : (*vg)["lvs"]) {
    if (l["name"] != lv) continue;
    const uint64_t now = l["size"].get<uint64_t>();
    if (size->sign == '+') {
      if (size->bytes > UINT64_MAX - now) return Status::Error(EINVAL, fmt::format("{}: size \"{}\" is too large", verb, text));
      return format_size(now + size->bytes);
    }
    if (size->bytes >= now)
      return Status::Error(EINVAL, fmt::format("{}: LV {} is {}; it cannot shrink by {}", verb, lv, format_size(now), text));
    return format_size(now - size->bytes);
  }
  return Status::Error(ENOENT, fmt::format("{}: no LV {} in the VG mounted on {}", verb, lv, mountpoint));
}

// Optimal string alignment distance (edits, with adjacent swaps as one),
// for "did you mean" on a mistyped verb.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// "; did you mean 'lvs'?" for the verbs closest to `word` (at most 2 edits,
// and fewer than the word has letters), or "".
std::string suggestion(const std::string& word, const std::vector<std::string>& verbs) {
  size_t best = std::min<size_t>(3, word.size());
  std::vector<std::string> close;
  for (const std::string& v : verbs) {
    size_t d = edit_distance(word, v);
    if (d < best) {
      best = d;
      close.clear();
    }
    if (d == best) close.push_back(v);
  }
  if (close.empty() || best >= std::min<size_t>(3, word.size())) return "";
  std::string out = "; did you mean ";
  for (size_t i = 0; i < close.size(); ++i)
    out += fmt::format("{}'{}'", i == 0 ? "" : i + 1 == close.size() ? " or " : ", ", close[i]);
  return out + "?";
}

// mount.fuse3 (for `mount -t fuse.vgfs` and fstab) runs
// `vgfs SOURCE MOUNTPOINT [-o OPTS]`. That form is recognised by its shape
// alone, never by what exists on disk: a first word that is not a verb, looks
// like a path (holds a '/' or a '.', as a config file name does), is
// followed by one more operand and then only -o options.
bool is_mount_helper_form(const std::vector<std::string>& args) {
  if (args.size() < 2 || args[0].empty() || args[0][0] == '-' || args[1].empty() || args[1][0] == '-') return false;
  for (size_t i = 2; i < args.size(); ++i) {
    if (args[i] == "-o" && i + 1 < args.size()) ++i;
    else if (args[i].rfind("-o", 0) != 0 || args[i].size() == 2) return false;
  }
  return true;
}
bool looks_like_path(const std::string& word) { return word.find_first_of("/.") != std::string::npos; }

std::string usage(const CLI::App& app) {
  std::string out = fmt::format(
      "usage: vgfs COMMAND ARGS...   (vgfs help COMMAND, or vgfs COMMAND --help, for one command)\n"
      "       vgfs --version\n"
      "       vgfs CONFIG MOUNTPOINT [-o OPTS]   (the form mount -t fuse.vgfs runs)\n\ncommands:\n");
  for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; }))
    out += fmt::format("  {:<9} {}\n", c->get_name(), c->get_description());
  out += "\nCONFIG is the VG's YAML file; MOUNTPOINT the folder a VG is mounted on (see README.md).\n";
  return out;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);

  CLI::App app{"vgfs: a logical volume manager in user space", "vgfs"};
  app.require_subcommand(1);
  std::string config, mountpoint, target;
  bool force = false, foreground = false, maps = false, json = false;
  std::vector<std::string> mount_opts;

  auto* create = app.add_subcommand("create", "write labels and metadata onto the PVs of CONFIG");
  create->add_option("CONFIG", config, "VG configuration (YAML)")->required();
  create->add_flag("--force", force, "overwrite PVs that hold a vgfs label or other data");

  auto* mount = app.add_subcommand("mount", "serve the VG's LVs as files under MOUNTPOINT");
  mount->add_option("CONFIG", config, "VG configuration (YAML)")->required();
  mount->add_option("MOUNTPOINT", mountpoint, "folder to mount on")->required();
  mount->add_flag("-f,--foreground", foreground, "stay in the foreground");
  mount->add_option("-o", mount_opts, "options: ro, allow_other, debug, threads=N, [no_]splice_read, [no_]splice_write");

  CLI::App* lists[2];
  for (int i = 0; i < 2; ++i) {
    lists[i] = app.add_subcommand(i ? "pvs" : "lvs", i ? "list the PVs" : "list the LVs");
    lists[i]->add_option("TARGET", target, "mount point, or CONFIG for an unmounted VG")->required();
    lists[i]->add_flag("--maps", maps, "print the maps as runs");
    lists[i]->add_flag("--json", json, "print JSON");
  }
  auto* dump = app.add_subcommand("dump", "print the current metadata as YAML");
  dump->add_option("CONFIG", config, "VG configuration (YAML)")->required();
  auto* check = app.add_subcommand("check", "verify labels, checksums and maps");
  check->add_option("CONFIG", config, "VG configuration (YAML)")->required();

  std::string lv_arg, pv_arg, rate;
  uint64_t job = 0;
  bool wait = false;
  auto* move = app.add_subcommand("move", "move an LV's extents (or an LE range) onto a PV, online");
  move->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  move->add_option("LV", lv_arg, "LV[:LE_FIRST-LE_LAST]")->required();
  move->add_option("PV", pv_arg, "PV[:PE_FIRST]")->required();
  move->add_flag("--wait", wait, "follow the job with a progress bar until it ends");
  std::vector<std::string> pvmove_args;
  auto* pvmove = app.add_subcommand("pvmove", "move every allocated extent off a PV, online");
  pvmove->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  pvmove->add_option("PV", pvmove_args, "PV [DEST_PV...]")->required();
  pvmove->add_flag("--wait", wait, "follow the jobs with a progress bar until they end");
  auto* jobs = app.add_subcommand("jobs", "list the migration jobs of a mount");
  jobs->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  jobs->add_flag("--json", json, "print JSON");
  std::map<std::string, CLI::App*> job_verbs;
  for (const char* verb : {"abort", "pause", "resume"}) {
    auto* c = app.add_subcommand(verb, fmt::format("{} a migration job", verb));
    c->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
    c->add_option("JOB", job, "job number")->required();
    job_verbs[verb] = c;
  }
  std::string backup;
  auto* restore = app.add_subcommand("restore", "write a metadata backup back onto an unmounted VG");
  restore->add_option("CONFIG", config, "VG configuration (YAML)")->required();
  restore->add_option("BACKUP", backup, "a file of the archive folder or of vgfs dump")->required();

  // Lifecycle commands: MOUNTPOINT, then the control-file arguments.
  std::map<std::string, CLI::App*> lifecycle;
  std::vector<std::string> lifecycle_args;
  const std::pair<const char*, const char*> lifecycle_verbs[] = {
      {"lvcreate", "NAME SIZE [PV...]: create an LV (SIZE as LVM2: 100M, 1.5G; a bare number is MiB)"},
      {"lvextend", "NAME [+]SIZE: grow an LV"},
      {"lvreduce", "NAME [-]SIZE: shrink an LV"},          {"lvremove", "NAME: remove an LV"},
      {"lvrename", "OLD NEW: rename an LV"},            {"pvadd", "PATH [NAME]: add an image or device as a PV"},
      {"pvremove", "PV: take an empty PV out of the VG"}};
  for (auto [verb, help] : lifecycle_verbs) {
    auto* c = app.add_subcommand(verb, help);
    c->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
    c->add_option("ARGS", lifecycle_args, "arguments")->required();
    lifecycle[verb] = c;
  }

  auto* limit = app.add_subcommand("limit", "cap a job's copy rate (0 = none)");
  limit->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  limit->add_option("JOB", job, "job number")->required();
  limit->add_option("RATE", rate, "bytes per second, e.g. 50MiB")->required();

  cli::ScanCommand scan(app);  // src/cli/scan.cc

  std::vector<std::string> verbs;
  for (const CLI::App* c : app.get_subcommands([](const CLI::App*) { return true; })) verbs.push_back(c->get_name());
  auto is_verb = [&](const std::string& w) { return std::find(verbs.begin(), verbs.end(), w) != verbs.end(); };
  auto unknown = [&](const std::string& word) {
    std::string hint = suggestion(word, verbs);
    if (hint.empty() && is_mount_helper_form(args))
      hint = fmt::format("; to mount, give the config as a path: vgfs mount ./{} ...", word);
    return fail(fmt::format("unknown command '{}'{}", word, hint.empty() ? "; vgfs help lists the commands" : hint));
  };
  // Like git, no command is a usage error (exit 1, usage on stderr); asking
  // for help is not (exit 0, stdout). LVM2's `lvm` alone opens its shell,
  // which vgfs does not have.
  if (args.empty()) {
    fmt::print(stderr, "{}", usage(app));
    return 1;
  }
  if (args[0] == "--version" || args[0] == "version") {
    fmt::print("vgfs {}\n", VGFS_VERSION);
    return 0;
  }
  if (args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    if (args.size() == 1) {
      fmt::print("{}", usage(app));
      return 0;
    }
    if (!is_verb(args[1])) return unknown(args[1]);
    fmt::print("{}", app.get_subcommand(args[1])->help("vgfs"));
    return 0;
  }
  if (!is_verb(args[0]) && args[0][0] != '-') {
    if (looks_like_path(args[0]) && is_mount_helper_form(args)) args.insert(args.begin(), "mount");
    else return unknown(args[0]);
  }

  std::vector<const char*> cargv = {argv[0]};
  for (const std::string& a : args) cargv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, like every other error; --help has the details.
    return fail(fmt::format("{} (see vgfs --help)", e.what()));
  }
  if (scan.chosen()) return scan.run();
  if (*create) return cmd_create(config, force);
  if (*mount) return cmd_mount(config, mountpoint, foreground, mount_opts);
  if (*lists[0]) return cmd_list(target, false, maps, json);
  if (*lists[1]) return cmd_list(target, true, maps, json);
  if (*dump) return cmd_dump(config);
  if (*check) return cmd_check(config);
  if (*move) return cmd_control(mountpoint, {"move", lv_arg, pv_arg}, wait);
  if (*pvmove) {
    std::vector<std::string> words = {"pvmove"};
    words.insert(words.end(), pvmove_args.begin(), pvmove_args.end());
    return cmd_control(mountpoint, words, wait);
  }
  if (*jobs) return cmd_jobs(mountpoint, json);
  for (auto& [verb, c] : job_verbs)
    if (*c) return cmd_control(mountpoint, {verb, std::to_string(job)}, false);
  if (*limit) return cmd_control(mountpoint, {"limit", std::to_string(job), rate}, false);
  if (*restore) return cmd_restore(config, backup);
  for (auto& [verb, c] : lifecycle)
    if (*c) {
      if (verb == "pvadd" && !lifecycle_args.empty()) lifecycle_args[0] = absolute(lifecycle_args[0]);
      if ((verb == "lvcreate" || verb == "lvextend" || verb == "lvreduce") && lifecycle_args.size() >= 2) {
        Result<std::string> size = lvm_size_argument(verb, mountpoint, lifecycle_args[0], lifecycle_args[1]);
        if (!size.ok()) return fail(size.status().message());
        lifecycle_args[1] = *size;
      }
      std::vector<std::string> words = {verb};
      words.insert(words.end(), lifecycle_args.begin(), lifecycle_args.end());
      return cmd_control(mountpoint, words, false);
    }
  return 2;
}

}  // namespace
}  // namespace vgfs

int main(int argc, char** argv) { return vgfs::run(argc, argv); }
