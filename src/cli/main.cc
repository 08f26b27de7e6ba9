// The `vgfs` command line (SPEC §8).
//
// Every failure prints one "vgfs: ..." line to stderr and exits 1; CLI11
// reports usage errors itself and exits 2.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "fuse/vgfs_fs.h"
#include "vgfs/config.h"
#include "vgfs/vg_store.h"
#include "views/views.h"

namespace vgfs {
namespace {

int fail(const std::string& message) {
  fmt::print(stderr, "vgfs: {}\n", message);
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
  Result<VgConfig> config = load_config(config_path);
  if (!config.ok()) return fail(config.status().message());
  std::vector<std::string> notes;
  Status st = VgStore::create(*config, force, &notes);
  for (const std::string& n : notes) fmt::print("{}\n", n);
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
  std::error_code ec;
  if (std::filesystem::is_directory(target, ec)) {
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
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", w);
  if (!store.ok()) return store.status();
  return views::vg_json((*store)->metadata());
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

int cmd_dump(const std::string& config) {
  std::vector<std::string> warnings;
  auto store = open_offline(config, &warnings);
  for (const std::string& w : warnings) fmt::print(stderr, "vgfs: warning: {}\n", w);
  if (!store.ok()) return fail(store.status().message());
  fmt::print("{}", encode_metadata((*store)->metadata()));
  return 0;
}

int cmd_check(const std::string& config) {
  std::vector<std::string> problems;
  auto store = open_offline(config, &problems);
  for (const std::string& p : problems) fmt::print(stderr, "vgfs: {}\n", p);
  if (!store.ok()) return fail(store.status().message());
  const VgMetadata& md = (*store)->metadata();
  if (!problems.empty()) return fail(fmt::format("VG {}: {} problem(s) found; a read-write mount repairs them", md.name, problems.size()));
  fmt::print("VG {}: {} PVs, {} LVs, metadata seqno {}: labels, checksums and maps are consistent\n", md.name,
             md.pvs.size(), md.lvs.size(), md.seqno);
  return 0;
}

int run(int argc, char** argv) {
  // mount.fuse3 runs `vgfs CONFIG MOUNTPOINT -o OPTS`: treat that as `vgfs mount`.
  static const std::set<std::string> commands = {"create", "mount", "lvs", "pvs", "dump", "check", "-h", "--help"};
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && !commands.count(args[0]) && args[0][0] != '-') args.insert(args.begin(), "mount");

  CLI::App app{"vgfs: a logical volume manager in user space"};
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

  std::vector<const char*> cargv = {argv[0]};
  for (const std::string& a : args) cargv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargv.size()), cargv.data());
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (*create) return cmd_create(config, force);
  if (*mount) return cmd_mount(config, mountpoint, foreground, mount_opts);
  if (*lists[0]) return cmd_list(target, false, maps, json);
  if (*lists[1]) return cmd_list(target, true, maps, json);
  if (*dump) return cmd_dump(config);
  if (*check) return cmd_check(config);
  return 2;
}

}  // namespace
}  // namespace vgfs

int main(int argc, char** argv) { return vgfs::run(argc, argv); }
