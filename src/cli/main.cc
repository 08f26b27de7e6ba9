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

#include "cli/confirm.h"
#include "cli/lv_size.h"
#include "cli/lvm_display.h"
#include "cli/mount_helper.h"
#include "cli/mounted_metadata.h"
#include "cli/scan.h"
#include "cli/report.h"
#include "cli/targets.h"
#include "cli/vg_source.h"
#include "fuse/vgfs_fs.h"
#include "vgfs/config.h"
#include "vgfs/control.h"
#include "vgfs/escape.h"
#include "vgfs/lvm2_format.h"
#include "vgfs/nbd_backend.h"
#include "vgfs/nbd_uri.h"
#include "vgfs/owner_id.h"
#include "vgfs/pv_format.h"
#include "vgfs/vg_store.h"
#include "vgfs/volume_manager.h"
#include "views/views.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstring>
#include <map>
#include <thread>
#include <tuple>

namespace vgfs {
namespace {

// Messages may hold paths and reasons read from disk: their control bytes
// are escaped (include/vgfs/escape.h), so they cannot drive the terminal.
int fail(const std::string& message) {
  fmt::print(stderr, "vgfs: {}\n", printable(message));
  return 1;
}

std::string absolute(const std::string& path) { return std::filesystem::absolute(path).lexically_normal().string(); }

// Opens a VG for reading without a mount, from its config file or its PVs
// (src/cli/vg_source.h); a mounted VG is refused by its lock.
Result<std::unique_ptr<VgStore>> open_offline(const std::vector<std::string>& sources, const std::string& vg_name,
                                              std::vector<std::string>* warnings) {
  Result<cli::VgSource> source = cli::find_vg_source(sources, vg_name);
  if (!source.ok()) return source.status();
  warnings->insert(warnings->end(), source->warnings.begin(), source->warnings.end());
  auto store = VgStore::open(source->config, OpenMode::kReadOnly, warnings, *source->format);
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
    // fstab's options for mount(8) and systemd, not for the filesystem.
    if (opt.empty() || ignored.count(opt) || opt == "nofail" || opt.rfind("x-", 0) == 0 || opt.rfind("comment=", 0) == 0)
      continue;
    if (opt == "ro") o->read_only = true;
    else if (opt == "allow_other") o->allow_other = true;
    else if (opt == "debug") o->debug = true;
    else if (opt == "splice_read") o->splice_read = true;
    else if (opt == "no_splice_read") o->splice_read = false;
    else if (opt == "splice_write") o->splice_write = true;
    else if (opt == "no_splice_write") o->splice_write = false;
    else if (opt == "io_uring") o->io_uring = true;
    else if (opt.rfind("nbd_", 0) == 0) VGFS_RETURN_IF_ERROR(NbdBackend::set_option(opt));
    else if (opt.rfind("lvm_lock_dir=", 0) == 0 && opt.size() > 13) o->lvm_lock_dir = opt.substr(13);
    else if (opt.rfind("archive=", 0) == 0 && opt.size() > 8) o->archive_dir = absolute(opt.substr(8));
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

// `vgfs mount SOURCE... MOUNTPOINT`: SOURCE is a config file or PV paths
// (src/cli/vg_source.h).
int cmd_mount(const std::vector<std::string>& sources, const std::string& mountpoint, const std::string& vg_name,
              bool foreground, const std::vector<std::string>& opts) {
  for (const std::string& source : sources)
    if (Status st = cli::require_config("mount", source); !st.ok()) return fail(st.message());
  if (Status st = cli::require_mount_folder(mountpoint); !st.ok()) return fail(st.message());
  MountOptions o;
  Result<cli::VgSource> source = cli::find_vg_source(sources, vg_name);
  if (!source.ok()) return fail(source.status().message());
  for (const std::string& w : source->warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  o.found = std::move(source->config);  // parsed once, not again by run_mount; its paths are absolute
  if (source->from_config) {
    o.config = absolute(sources[0]);  // the daemon changes its folder to /
  } else {
    o.format = source->format;
    o.lvm2 = source->lvm2;
    o.lvm2_vg_id = source->lvm2_vg_id;
    // Tests point it at a fake sysfs (this check's only input).
    if (const char* sysfs = std::getenv("VGFS_SYSFS_ROOT"); sysfs && *sysfs) o.sysfs_root = sysfs;
  }
  o.mountpoint = absolute(mountpoint);
  o.foreground = foreground;
  // `nonempty` is fuse2's option (util-linux and fstab lines still pass
  // it): libfuse 3 mounts over a non-empty folder silently, hiding its
  // files; vgfs refuses that unless asked, as fuse2 did.
  bool nonempty = false;
  for (std::string list : opts) {
    std::string rest;
    std::stringstream in(list);
    for (std::string opt; std::getline(in, opt, ',');) {
      if (opt == "nonempty") nonempty = true;
      else rest += (rest.empty() ? "" : ",") + opt;
    }
    Status st = parse_mount_options(rest, &o);
    if (!st.ok()) return fail(st.message());
  }
  std::error_code ec;
  if (!std::filesystem::is_directory(o.mountpoint, ec))
    return fail(fmt::format("mount point {} is not a folder", o.mountpoint));
  if (!nonempty && !std::filesystem::is_empty(o.mountpoint, ec) && !ec)
    return fail(fmt::format("mount point {} is not empty: its files would be hidden under the mount; empty it, "
                            "or mount with -o nonempty", o.mountpoint));
  return run_mount(o);
}

// The VG as JSON, from a mount point's vg.json or offline from a config or
// PV paths (--vg NAME picks among their VGs).
Result<nlohmann::json> vg_json_of(const std::vector<std::string>& targets, const std::string& vg_name = "") {
  const std::string& target = targets.at(0);
  const cli::TargetKind kind = targets.size() == 1 ? cli::classify_target(target) : cli::TargetKind::kOther;
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
  auto store = open_offline(targets, vg_name, &warnings);
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
  if (fd < 0 && errno == EROFS)
    return Status::Error(EROFS, fmt::format("the VG at {} is mounted read-only (-o ro): nothing can change it "
                                            "until it is mounted without ro", mountpoint));
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

// Set by SIGINT while following jobs: stop following, the jobs go on.
volatile std::sig_atomic_t interrupted = 0;
extern "C" void on_interrupt(int) { interrupted = 1; }

// An ETA as 45s, 1m23s, 2h05m.
std::string eta_text(uint64_t seconds) {
  if (seconds < 60) return fmt::format("{}s", seconds);
  if (seconds < 3600) return fmt::format("{}m{:02}s", seconds / 60, seconds % 60);
  return fmt::format("{}h{:02}m", seconds / 3600, seconds % 3600 / 60);
}

// Follows jobs until each has ended: a bar on a terminal, plain lines
// otherwise. On a terminal the bar is redrawn in place and cleared to the
// end of the line, so a shorter line leaves nothing behind; a message (a
// job that failed) goes on a line of its own above the bar. Ctrl-C stops
// following and says how to follow again; the jobs keep running.
int wait_for(const std::string& mountpoint, const std::vector<uint64_t>& ids) {
  const bool tty = isatty(STDOUT_FILENO);
  interrupted = 0;
  struct sigaction action {}, previous {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, &previous);
  auto last_line = std::chrono::steady_clock::now() - std::chrono::seconds(10);
  std::set<uint64_t> reported;
  bool bar_shown = false;
  auto clear_bar = [&] {
    if (bar_shown) fmt::print("\r\033[K");
    bar_shown = false;
  };
  int failed = 0;
  int status = 0;
  for (;;) {
    uint64_t size = 0, done = 0, rate = 0;
    std::string states;
    bool running = false;
    failed = 0;
    for (uint64_t id : ids) {
      auto f = job_status(mountpoint, id);
      if (!f.ok()) {
        clear_bar();
        ::sigaction(SIGINT, &previous, nullptr);
        return fail(f.status().message());
      }
      std::map<std::string, std::string>& m = *f;
      size += std::stoull(m["size"]);
      done += std::stoull(m["progress_pointer"]);
      rate += std::stoull(m["rate"]);
      const std::string& st = m["sync_status"];
      if (st != "completed" && st != "aborted" && st != "failed") running = true;
      if (st == "aborted" || st == "failed") {
        ++failed;
        if (reported.insert(id).second) {
          clear_bar();
          std::fflush(stdout);
          fmt::print(stderr, "vgfs: job {} {}: {}\n", id, printable(st), printable(m["reason"]));
        }
      }
      if (states.find(st) == std::string::npos) states += (states.empty() ? "" : ",") + st + (m["paused"] == "yes" ? "(paused)" : "");
    }
    double pct = size ? 100.0 * static_cast<double>(done) / static_cast<double>(size) : 100.0;
    std::string eta = rate && running ? eta_text((size - std::min(done, size)) / rate) : running ? "-" : "0s";
    auto now = std::chrono::steady_clock::now();
    if (tty) {
      int filled = static_cast<int>(pct / 4);
      fmt::print("\r[{:<25}] {:5.1f}% {:>10}/s ETA {:>6} {}\033[K", std::string(static_cast<size_t>(filled), '#'), pct,
                 human_size(rate), eta, states);
      bar_shown = true;
      std::fflush(stdout);
    } else if (!running || now - last_line >= std::chrono::seconds(1)) {
      fmt::print("{:5.1f}% {}/s ETA {} {}\n", pct, human_size(rate), eta, states);
      std::fflush(stdout);
      last_line = now;
    }
    if (!running) break;
    for (int i = 0; i < 4 && !interrupted; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (interrupted) {
      if (tty) fmt::print("\n");
      std::fflush(stdout);
      std::string list;
      for (uint64_t id : ids) list += (list.empty() ? "" : ",") + std::to_string(id);
      fmt::print(stderr, "vgfs: stopped following; job{} {} keep{} running: follow {} with `vgfs jobs {} --wait`, "
                 "stop {} with `vgfs abort {} JOB`\n", ids.size() == 1 ? "" : "s", list, ids.size() == 1 ? "s" : "",
                 ids.size() == 1 ? "it" : "them", mountpoint, ids.size() == 1 ? "it" : "one", mountpoint);
      status = 130;
      break;
    }
  }
  ::sigaction(SIGINT, &previous, nullptr);
  if (status) return status;
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

int cmd_control(const std::string& mountpoint, const std::vector<std::string>& words, bool wait);

// A PV given by the path of its image or device (`/dev/loop3`, as LVM2's
// pvmove takes it; `PATH:PE` for move) becomes its name in the mounted VG,
// found in the PV paths of the mount's vg.json; a name passes as it is.
Result<std::string> pv_name_of(const std::string& mountpoint, const std::string& arg) {
  if (arg.find('/') == std::string::npos) return arg;
  std::string path = arg, suffix;
  if (size_t colon = arg.rfind(':'); colon != std::string::npos && colon + 1 < arg.size() &&
                                     arg.find_first_not_of("0123456789", colon + 1) == std::string::npos) {
    path = arg.substr(0, colon);
    suffix = arg.substr(colon);
  }
  Result<nlohmann::json> vg = vg_json_of({mountpoint});
  if (!vg.ok()) return vg.status();
  std::error_code ec;
  const std::filesystem::path want = std::filesystem::weakly_canonical(path, ec);
  for (const nlohmann::json& pv : (*vg)["pvs"]) {
    Result<std::string> p = unescape_bytes(pv["path"].get<std::string>());
    Result<std::string> name = unescape_bytes(pv["name"].get<std::string>());
    if (!p.ok() || !name.ok()) continue;
    std::error_code ec2;
    if (*p == path || (!ec && std::filesystem::weakly_canonical(*p, ec2) == want && !ec2)) return *name + suffix;
  }
  return Status::Error(ENOENT, fmt::format("{} is not a PV of the VG mounted on {}", printable(path), mountpoint));
}

// lvremove asks first, as LVM2 does, unless -y (src/cli/confirm.h). An LV
// the VG does not have is left to the control file to refuse.
int cmd_lvremove(const std::string& mountpoint, const std::vector<std::string>& operands, bool yes) {
  if (Status st = cli::require_mount_point("lvremove", mountpoint); !st.ok()) return fail(st.message());
  if (operands.size() != 1) return fail("lvremove: give one LV name (vgfs lvremove MOUNTPOINT LV [-y])");
  if (!yes) {
    Result<nlohmann::json> vg = vg_json_of({mountpoint});
    if (!vg.ok()) return fail(vg.status().message());
    for (const nlohmann::json& l : (*vg)["lvs"])
      if (l["name"] == escape_bytes(operands[0]) &&
          !cli::confirm(fmt::format("Do you really want to remove active logical volume {}/{}?",
                                    printable(vg->at("name").get<std::string>()), printable(operands[0]))))
        return fail(fmt::format("lvremove: LV {} not removed (answer y, or give -y)", printable(operands[0])));
  }
  return cmd_control(mountpoint, {"lvremove", operands[0]}, false);
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

int cmd_jobs(const std::string& mountpoint, bool json, bool wait) {
  if (Status st = cli::require_mount_point("jobs", mountpoint); !st.ok()) return fail(st.message());
  Result<nlohmann::json> vg = vg_json_of({mountpoint});
  if (!vg.ok()) return fail(vg.status().message());
  if (wait) {  // follow the jobs running now
    std::vector<uint64_t> ids;
    for (const nlohmann::json& j : (*vg)["jobs"]) {
      const std::string state = j["sync_status"].get<std::string>();
      if (state != "completed" && state != "aborted" && state != "failed") ids.push_back(j["job"].get<uint64_t>());
    }
    if (ids.empty()) {
      fmt::print("no job is running on {}\n", mountpoint);
      return 0;
    }
    return wait_for(mountpoint, ids);
  }
  if (json) fmt::print("{}\n", (*vg)["jobs"].dump(2));
  else fmt::print("{}", views::jobs_table(*vg));
  return 0;
}

// `vgfs lvs|pvs|vgs`: LVM2's report (src/cli/report.h), or with --json the
// vg.json records as they are.
int cmd_list(const std::vector<std::string>& targets, const std::string& vg_name, cli::ReportOptions options,
             bool json) {
  const char* verb = options.kind == cli::ReportKind::kLv ? "lvs" : options.kind == cli::ReportKind::kPv ? "pvs" : "vgs";
  if (std::find(options.fields.begin(), options.fields.end(), "help") != options.fields.end()) {
    fmt::print("{}", cli::report_fields_help(options.kind));
    return 0;
  }
  if (targets.empty())
    return fail(fmt::format("{}: TARGET is required: a mount point, or CONFIG or the PVs of an unmounted VG", verb));
  const std::string& target = targets[0];
  if (json && options.json) return fail(fmt::format("{}: give --json or --reportformat json, not both", verb));
  if (options.maps && options.json) return fail(fmt::format("{}: --maps is for the text report", verb));
  Result<nlohmann::json> vg = vg_json_of(targets, vg_name);
  if (!vg.ok()) return fail(vg.status().message());
  if (json) {
    if (options.kind == cli::ReportKind::kVg) {
      nlohmann::json summary = *vg;
      for (const char* list : {"pvs", "lvs", "jobs"}) summary.erase(list);
      fmt::print("{}\n", summary.dump(2));
    } else {
      fmt::print("{}\n", (*vg)[options.kind == cli::ReportKind::kPv ? "pvs" : "lvs"].dump(2));
    }
    return 0;
  }
  Result<std::string> text = Status::Error(EIO, "");
  try {
    text = cli::render_report(*vg, options);
  } catch (const std::exception& e) {  // a vg.json of an unexpected shape
    return fail(fmt::format("{}: {}: {}", verb, target, e.what()));
  }
  if (!text.ok()) return fail(text.status().message());
  fmt::print("{}", *text);
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

// `--lvm2`: an LVM2 VG's metadata as vgcfgbackup writes it, which
// `vgcfgrestore -f` reads; else YAML.
int print_dump(const VgMetadata& md, bool is_lvm2, bool lvm2_text, const std::string& source) {
  if (lvm2_text && !is_lvm2)
    return fail(fmt::format("dump --lvm2: VG {} ({}) is a vgfs VG, not an LVM2 one; its metadata is YAML (drop --lvm2)",
                            printable(md.name), printable(source)));
  fmt::print("{}", lvm2_text ? lvm2::encode_vg_backup(md) : encode_metadata(md));
  return 0;
}

int cmd_dump(const std::vector<std::string>& sources, const std::string& vg_name, bool lvm2_text) {
  const std::string& config = sources.at(0);
  bool mounted = false;
  Result<cli::MountedMetadata> m = mounted_or_none("dump", config, &mounted);
  if (!m.ok()) return fail(m.status().message());
  if (mounted) {
    for (const std::string& p : m->problems) fmt::print(stderr, "vgfs: warning: {}\n", printable(p));
    return print_dump(m->metadata, m->lvm2, lvm2_text, config);
  }
  std::vector<std::string> warnings;
  auto store = open_offline(sources, vg_name, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", printable(w));
  if (!store.ok()) return fail(store.status().message());
  return print_dump((*store)->metadata(), (*store)->format().name() == "lvm2", lvm2_text, config);
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

int cmd_check(const std::vector<std::string>& sources, const std::string& vg_name) {
  const std::string& config = sources.at(0);
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
  auto store = open_offline(sources, vg_name, &problems);
  for (const std::string& p : problems) fmt::print(stderr, "vgfs: {}\n", printable(p));
  if (!store.ok()) return fail(store.status().message());
  const VgMetadata& md = (*store)->metadata();
  if (!problems.empty()) return fail(fmt::format("VG {}: {} problem(s) found; a read-write mount repairs them", md.name, problems.size()));
  fmt::print("VG {}: {} PVs, {} LVs, metadata seqno {}: labels, checksums and maps are consistent\n", md.name,
             md.pvs.size(), md.lvs.size(), md.seqno);
  return 0;
}

// lvcreate/lvextend/lvreduce: the size as an LVM2 user gives it, resolved
// against the mount's vg.json (src/cli/lv_size.h) into the absolute byte
// size the control file takes; LVM2's notes (rounding) go to stderr.
int cmd_sized(const std::string& verb, const std::string& mountpoint, std::vector<std::string> operands,
              const std::string& name_option, const std::string& size_option, const std::string& extents_option,
              bool yes, const std::vector<std::string>& owner_words = {}) {
  if (Status st = cli::require_mount_point(verb, mountpoint); !st.ok()) return fail(st.message());
  cli::LvSizeRequest request;
  request.verb = verb;
  if (!name_option.empty()) request.lv = name_option;
  else if (!operands.empty()) {
    request.lv = operands.front();
    operands.erase(operands.begin());
  } else {
    return fail(fmt::format("{}: no LV name given", verb));
  }
  if (!size_option.empty()) request.size = size_option;
  if (!extents_option.empty()) request.extents = extents_option;
  if (!request.size && !request.extents && !operands.empty()) {
    request.size = operands.front();
    operands.erase(operands.begin());
  }
  if (verb != "lvcreate" && !operands.empty())
    return fail(fmt::format("{}: unexpected argument \"{}\" (vgfs {} MOUNTPOINT LV [+|-]SIZE, or -L/-l)", verb,
                            operands.front(), verb));
  request.pvs = operands;
  Result<nlohmann::json> vg = vg_json_of({mountpoint});
  if (!vg.ok()) return fail(vg.status().message());
  Result<cli::LvSize> size = Status::Error(EIO, "");
  try {
    size = cli::resolve_lv_size(request, *vg);
  } catch (const std::exception& e) {  // a vg.json of an unexpected shape
    return fail(fmt::format("{}/.vgfs/vg.json: {}", mountpoint, e.what()));
  }
  if (!size.ok()) return fail(size.status().message());
  for (const std::string& note : size->notes) fmt::print(stderr, "  {}\n", note);
  if (verb == "lvreduce" && !yes) {
    // As LVM2: the new size, the warning, then the question (src/cli/confirm.h).
    const uint64_t extent = (*vg)["extent_size"].get<uint64_t>();
    const uint64_t to = (size->bytes / extent + (size->bytes % extent != 0)) * extent;
    for (const nlohmann::json& l : (*vg)["lvs"])
      if (l["name"] == escape_bytes(request.lv) && to < l["size"].get<uint64_t>()) {
        fmt::print(stderr, "  WARNING: Reducing active logical volume to {}.\n  THIS MAY DESTROY YOUR DATA (filesystem etc.)\n",
                   cli::lvm_display_size(to, 'h', true, cli::SuffixForm::kWord));
        if (!cli::confirm(fmt::format("Do you really want to reduce {}/{}?", printable(vg->at("name").get<std::string>()),
                                      printable(request.lv))))
          return fail(fmt::format("lvreduce: LV {} NOT reduced (answer y, or give -y)", printable(request.lv)));
      }
  }
  std::vector<std::string> words = {verb, request.lv, format_size(size->bytes)};
  words.insert(words.end(), request.pvs.begin(), request.pvs.end());
  words.insert(words.end(), owner_words.begin(), owner_words.end());  // lvcreate's uid=/gid=/mode=
  return cmd_control(mountpoint, words, false);
}

// lvchange: owner and mode of an LV are those of its file, so this is
// chown/chmod on MOUNTPOINT/LV (the daemon commits them to the metadata).
int cmd_lvchange(const std::string& mountpoint, const std::string& lv, const std::string& uid, const std::string& gid,
                 const std::string& mode) {
  if (Status st = cli::require_mount_point("lvchange", mountpoint); !st.ok()) return fail(st.message());
  if (uid.empty() && gid.empty() && mode.empty()) return fail("lvchange: nothing to change (give --uid, --gid or --mode)");
  auto number = [](const std::string& text, int base, uint32_t most, uint32_t* out) {
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
    return !text.empty() && ec == std::errc() && p == text.data() + text.size() && *out <= most;
  };
  uint32_t u = UINT32_MAX, g = UINT32_MAX, m = 0;
  if (!uid.empty() && !number(uid, 10, UINT32_MAX - 1, &u))
    return fail(fmt::format("lvchange: bad --uid \"{}\" (a number from 0 to 4294967294)", uid));
  if (!gid.empty() && !number(gid, 10, UINT32_MAX - 1, &g))
    return fail(fmt::format("lvchange: bad --gid \"{}\" (a number from 0 to 4294967294)", gid));
  if (!mode.empty() && !number(mode, 8, 0777, &m))
    return fail(fmt::format("lvchange: bad --mode \"{}\" (octal permission bits like 0640)", mode));
  const std::string path = mountpoint + "/" + lv;
  // ENOTSUP: the daemon refused, as the VG's format keeps no owner or mode.
  auto failed = [&](const char* call) {
    if (errno == ENOTSUP)
      return fail(fmt::format("lvchange: {}: the VG is an lvm2 VG, whose metadata has no place for an LV's owner, "
                              "group or mode; nothing was changed", path));
    return fail(fmt::format("lvchange: {} {}: {}", call, path, std::strerror(errno)));
  };
  if ((u != UINT32_MAX || g != UINT32_MAX) && ::chown(path.c_str(), u, g) != 0) return failed("chown");
  if (!mode.empty() && ::chmod(path.c_str(), m) != 0) return failed("chmod");
  return 0;
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
  bool force = false, foreground = false, json = false;
  std::vector<std::string> mount_opts;

  auto* create = app.add_subcommand("create", "write labels and metadata onto the PVs of CONFIG");
  create->add_option("CONFIG", config, "VG configuration (YAML)")->required();
  create->add_flag("--force", force, "overwrite PVs that hold a vgfs label or other data");

  // SOURCE... MOUNTPOINT: the last word is the mount point (src/cli/vg_source.h).
  std::vector<std::string> sources;
  std::string vg_name;
  auto* mount = app.add_subcommand("mount", "serve the VG's LVs as files under MOUNTPOINT: SOURCE... MOUNTPOINT");
  mount->add_option("SOURCE", sources, "VG configuration (YAML), or the PVs: images, devices, disk images; then "
                                       "MOUNTPOINT")->required();
  mount->add_option("--vg", vg_name, "the VG to mount when the PVs hold several");
  mount->add_flag("-f,--foreground", foreground, "stay in the foreground");
  mount->add_option("-o", mount_opts,
                    "options: ro, allow_other, debug, nonempty, threads=N, [no_]splice_read, [no_]splice_write, io_uring, "
                    "lvm_lock_dir=DIR, archive=DIR");

  // lvs, pvs, vgs: LVM2's report options (src/cli/report.h).
  CLI::App* lists[3];
  cli::ReportOptions report;
  std::string report_format = "basic";
  bool nosuffix = false, noheadings = false;
  const cli::ReportKind kinds[3] = {cli::ReportKind::kLv, cli::ReportKind::kPv, cli::ReportKind::kVg};
  for (int i = 0; i < 3; ++i) {
    const char* name = i == 0 ? "lvs" : i == 1 ? "pvs" : "vgs";
    lists[i] = app.add_subcommand(name, i == 0 ? "report the LVs" : i == 1 ? "report the PVs" : "report the VG");
    lists[i]->add_option("TARGET", sources, "mount point, or CONFIG or the PVs (images, devices) of an unmounted VG");
    lists[i]->add_option("--vg", vg_name, "the VG to report when the PVs hold several");
    if (i == 0) lists[i]->add_flag("-a,--all", report.all, "hidden LVs too, in brackets (as LVM2's lvs -a)");
    lists[i]->add_option("-o,--options", report.fields, "FIELD,... as LVM2 names them; +FIELD,... appends; help lists them")
        ->allow_extra_args(false);
    lists[i]->add_option("--units", report.units, "h H r R b s k m g t p e; upper case K M G T P E: powers of 1000");
    lists[i]->add_flag("--nosuffix", nosuffix, "no unit suffix on sizes (with --units other than h, H, r, R)");
    lists[i]->add_flag("--noheadings", noheadings, "no heading line");
    lists[i]->add_option("--separator", report.separator, "between fields, no alignment")
        ->each([&](const std::string&) { report.separator_given = true; });
    lists[i]->add_option("--reportformat", report_format, "basic or json (LVM2's JSON report shape)")
        ->check(CLI::IsMember({"basic", "json"}));
    if (i < 2) lists[i]->add_flag("--maps", report.maps, "each row followed by its map runs");
    lists[i]->add_flag("--json", json, "the vg.json records, as they are");
  }
  auto* dump = app.add_subcommand("dump", "print the current metadata as YAML");
  dump->add_option("SOURCE", sources, "a mount point, VG configuration (YAML), or the PVs")->required();
  dump->add_option("--vg", vg_name, "the VG when the PVs hold several");
  bool dump_lvm2 = false;
  dump->add_flag("--lvm2", dump_lvm2, "an LVM2 VG's metadata as vgcfgbackup writes it (vgcfgrestore -f reads it)");
  auto* check = app.add_subcommand("check", "verify labels, checksums and maps");
  check->add_option("SOURCE", sources, "a mount point, VG configuration (YAML), or the PVs")->required();
  check->add_option("--vg", vg_name, "the VG when the PVs hold several");

  std::string lv_arg, pv_arg, rate;
  uint64_t job = 0;
  bool wait = false;
  auto* move = app.add_subcommand("move", "move an LV's extents (or an LE range) onto a PV, online");
  move->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  move->add_option("LV", lv_arg, "LV[:LE_FIRST-LE_LAST]")->required();
  move->add_option("PV", pv_arg, "PV[:PE_FIRST]")->required();
  move->add_flag("--wait", wait, "follow the job with a progress bar until it ends");
  std::string start_limit;
  move->add_option("--limit", start_limit, "copy at most RATE per second from the start (e.g. 50MiB)");
  std::vector<std::string> pvmove_args;
  auto* pvmove = app.add_subcommand("pvmove", "move every allocated extent off a PV, online");
  pvmove->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  pvmove->add_option("PV", pvmove_args, "PV [DEST_PV...]");
  bool pvmove_finish = false, pvmove_abort = false;  // LVM2's unfinished pvmove, job 0 (docs/lvm2.md)
  pvmove->add_flag("--finish", pvmove_finish, "finish the pvmove LVM2 left unfinished (job 0), online");
  pvmove->add_flag("--abort", pvmove_abort, "put the LVs of the pvmove LVM2 left unfinished back on its source");
  pvmove->add_flag("--wait", wait, "follow the jobs with a progress bar until they end");
  pvmove->add_option("--limit", start_limit, "copy at most RATE per second, per job, from the start");
  auto* jobs = app.add_subcommand("jobs", "list the migration jobs of a mount");
  jobs->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  jobs->add_flag("--json", json, "print JSON");
  jobs->add_flag("--wait", wait, "follow the running jobs with a progress bar until they end");
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

  // lvcreate/lvextend/lvreduce take sizes as LVM2 does (src/cli/lv_size.h).
  std::map<std::string, CLI::App*> sized;
  std::vector<std::string> sized_args;
  std::string name_option, size_option, extents_option;
  std::string owner_uid, owner_gid, owner_mode;  // lvcreate and lvchange
  bool yes = false;
  const std::pair<const char*, const char*> sized_verbs[] = {
      {"lvcreate", "create an LV: NAME SIZE [PV...], or -n NAME -L SIZE|-l EXTENTS [PV...]"},
      {"lvextend", "grow an LV: LV [+]SIZE, or LV -L [+]SIZE|-l [+]EXTENTS"},
      {"lvreduce", "shrink an LV: LV [-]SIZE, or LV -L [-]SIZE|-l [-]EXTENTS"}};
  for (auto [verb, help] : sized_verbs) {
    auto* c = app.add_subcommand(verb, help);
    c->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
    c->add_option("ARGS", sized_args, verb == std::string("lvcreate") ? "[NAME] [SIZE] [PV...]" : "LV [SIZE]");
    if (verb == std::string("lvcreate")) c->add_option("-n,--name", name_option, "the LV's name");
    c->add_option("-L,--size", size_option,
                  "SIZE as LVM2 takes it: 100M, 1.5G, 1g, 4MiB; a bare number is MiB; +SIZE grows, -SIZE shrinks");
    c->add_option("-l,--extents", extents_option, "EXTENTS: N, +N, -N, N%VG, N%FREE, N%PVS");
    if (verb == std::string("lvreduce")) c->add_flag("-y,--yes,-f,--force", yes, "do not ask for confirmation");
    if (verb == std::string("lvcreate")) {
      c->add_option("--uid", owner_uid, "owner of the LV file, a user name or number (default: the mounting user)");
      c->add_option("--gid", owner_gid, "group of the LV file, a group name or number (default: the mounting user's)");
      c->add_option("--mode", owner_mode, "octal permission bits of the LV file (default 0600)");
    }
    sized[verb] = c;
  }
  std::string lvchange_lv;
  auto* lvchange = app.add_subcommand("lvchange", "set an LV file's owner or mode: LV [--uid N] [--gid N] [--mode M] "
                                                  "(chown/chmod on the file do the same)");
  lvchange->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  lvchange->add_option("LV", lvchange_lv, "the LV")->required();
  lvchange->add_option("--uid", owner_uid, "owner: a user name or number");
  lvchange->add_option("--gid", owner_gid, "group: a group name or number");
  lvchange->add_option("--mode", owner_mode, "octal permission bits");

  // Other lifecycle commands: MOUNTPOINT, then the control-file arguments.
  std::map<std::string, CLI::App*> lifecycle;
  std::vector<std::string> lifecycle_args;
  const std::pair<const char*, const char*> lifecycle_verbs[] = {
      {"lvrename", "OLD NEW: rename an LV"},
      {"pvadd", "PATH [NAME]: add an image or device as a PV"},
      {"pvremove", "PV: take an empty PV out of the VG"}};
  for (auto [verb, help] : lifecycle_verbs) {
    auto* c = app.add_subcommand(verb, help);
    c->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
    c->add_option("ARGS", lifecycle_args, "arguments")->required();
    if (verb == std::string("pvadd"))
      c->add_flag("--force", force, "overwrite what the device holds (e.g. a PV removed from a VG earlier)");
    lifecycle[verb] = c;
  }

  std::vector<std::string> lvremove_args;
  auto* lvremove = app.add_subcommand("lvremove", "remove an LV: LV [-y]; asks first, as LVM2 does");
  lvremove->add_option("MOUNTPOINT", mountpoint, "where the VG is mounted")->required();
  lvremove->add_option("LV", lvremove_args, "the LV")->required();
  lvremove->add_flag("-y,--yes,-f,--force", yes, "do not ask for confirmation");

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
  if (cli::invoked_as_mount_helper(argv[0])) {  // mount -t fuse.vgfs, fstab (src/cli/mount_helper.h)
    Result<cli::HelperCommand> helper = cli::mount_helper_command(args);
    if (!helper.ok()) return fail(helper.status().message());
    if (helper->fake) return 0;
    args = helper->args;
  }
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
  if (*mount) {
    if (sources.size() < 2) return fail("mount: give SOURCE... MOUNTPOINT (a config file or PVs, then a folder)");
    mountpoint = sources.back();
    sources.pop_back();
    return cmd_mount(sources, mountpoint, vg_name, foreground, mount_opts);
  }
  for (int i = 0; i < 3; ++i)
    if (*lists[i]) {
      report.kind = kinds[i];
      report.suffix = !nosuffix;
      report.headings = !noheadings;
      report.json = report_format == "json";
      return cmd_list(sources, vg_name, report, json);
    }
  if (*dump) return cmd_dump(sources, vg_name, dump_lvm2);
  if (*check) return cmd_check(sources, vg_name);
  if (*pvmove && (pvmove_finish || pvmove_abort || pvmove_args.empty())) {
    if (pvmove_finish && pvmove_abort) return fail("pvmove: --finish and --abort exclude each other");
    if (!pvmove_finish && !pvmove_abort)
      return fail("pvmove: needs the PV to empty (or --finish / --abort for a pvmove LVM2 left unfinished)");
    if (!pvmove_args.empty())
      return fail(fmt::format("pvmove: --{} takes no PV: it resolves the move LVM2 left unfinished, to the PEs LVM2 "
                              "chose", pvmove_finish ? "finish" : "abort"));
    std::vector<std::string> words = {pvmove_finish ? "finish" : "abort", "0"};
    if (!start_limit.empty()) {
      if (pvmove_abort) return fail("pvmove: --limit applies to --finish, not --abort");
      words.push_back("limit=" + start_limit);
    }
    return cmd_control(mountpoint, words, wait && pvmove_finish);
  }
  if (*move || *pvmove) {  // PVs given by the path of their image or device become their names
    const char* verb = *move ? "move" : "pvmove";
    if (Status st = cli::require_mount_point(verb, mountpoint); !st.ok()) return fail(st.message());
    std::vector<std::string*> pv_args;
    if (*move) pv_args.push_back(&pv_arg);
    else for (std::string& a : pvmove_args) pv_args.push_back(&a);
    for (std::string* arg : pv_args) {
      Result<std::string> name = pv_name_of(mountpoint, *arg);
      if (!name.ok()) return fail(fmt::format("{}: {}", verb, name.status().message()));
      *arg = *name;
    }
  }
  if (*move) {
    std::vector<std::string> words = {"move", lv_arg, pv_arg};
    if (!start_limit.empty()) words.push_back("limit=" + start_limit);
    return cmd_control(mountpoint, words, wait);
  }
  if (*pvmove) {
    std::vector<std::string> words = {"pvmove"};
    words.insert(words.end(), pvmove_args.begin(), pvmove_args.end());
    if (!start_limit.empty()) words.push_back("limit=" + start_limit);
    return cmd_control(mountpoint, words, wait);
  }
  if (*jobs) return cmd_jobs(mountpoint, json, wait);
  for (auto& [verb, c] : job_verbs)
    if (*c) return cmd_control(mountpoint, {verb, std::to_string(job)}, false);
  if (*limit) return cmd_control(mountpoint, {"limit", std::to_string(job), rate}, false);
  if (*restore) return cmd_restore(config, backup);
  // --uid/--gid take a name or a number, as chown(1) does; the daemon gets the number.
  for (auto [text, kind, flag] : {std::tuple{&owner_uid, OwnerKind::kUser, "--uid"},
                                  std::tuple{&owner_gid, OwnerKind::kGroup, "--gid"}}) {
    if (text->empty()) continue;
    Result<uint32_t> id = resolve_owner_id(*text, kind);
    if (!id.ok()) return fail(fmt::format("{}: {}", flag, id.status().message()));
    *text = std::to_string(*id);
  }
  for (auto& [verb, c] : sized)
    if (*c) {
      std::vector<std::string> owner_words;
      if (!owner_uid.empty()) owner_words.push_back("uid=" + owner_uid);
      if (!owner_gid.empty()) owner_words.push_back("gid=" + owner_gid);
      if (!owner_mode.empty()) owner_words.push_back("mode=" + owner_mode);
      return cmd_sized(verb, mountpoint, sized_args, name_option, size_option, extents_option, yes, owner_words);
    }
  if (*lvchange) return cmd_lvchange(mountpoint, lvchange_lv, owner_uid, owner_gid, owner_mode);
  if (*lvremove) return cmd_lvremove(mountpoint, lvremove_args, yes);
  for (auto& [verb, c] : lifecycle)
    if (*c) {
      if (verb == "pvadd" && !lifecycle_args.empty() && !is_nbd_uri(lifecycle_args[0]))
        lifecycle_args[0] = absolute(lifecycle_args[0]);
      std::vector<std::string> words = {verb};
      words.insert(words.end(), lifecycle_args.begin(), lifecycle_args.end());
      if (force) words.push_back("force=yes");  // pvadd --force
      return cmd_control(mountpoint, words, false);
    }
  return 2;
}

}  // namespace
}  // namespace vgfs

int main(int argc, char** argv) { return vgfs::run(argc, argv); }
