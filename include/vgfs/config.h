// VgConfig: the YAML file `vgfs create` reads and `vgfs mount` uses to find
// the PVs (docs/config.md).
//
// Invariant: a VgConfig returned by load_config() has only known keys,
// well-formed names and sizes, absolute PV paths (relative ones resolved
// against the config's folder) and remembers the line and column of each
// entry so later checks (create, mount) can point at the line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vgfs/extent_map.h"
#include "vgfs/status.h"

namespace vgfs {

// "file:line:col" of a YAML node, for error messages.
struct ConfigPlace {
  std::string file;
  int line = 0;
  int column = 0;
  std::string str() const;
};

// A byte range of a path that is the PV: a partition of a disk image.
struct PvWindow {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct PvConfig {
  std::string name;               // empty when found from a path: the metadata names it
  std::string path;               // absolute
  std::optional<uint64_t> size;   // bytes; absent = whole existing file/device
  ConfigPlace place;
  std::optional<PvWindow> window = std::nullopt;  // the PV is this range of `path` (never from a config file)
};

struct ExplicitRun {
  uint64_t le = 0;
  uint64_t count = 0;
  std::string pv;
  uint64_t pe = 0;
  ConfigPlace place;
};

struct LvConfig {
  std::string name;
  std::optional<uint64_t> size;   // bytes, for allocator placement
  std::vector<ExplicitRun> extents;
  uint32_t mode = 0600;
  std::optional<uint32_t> uid{}, gid{};  // unset = the mounting user
  ConfigPlace place;
};

struct VgConfig {
  std::string path;  // absolute path of the config file
  std::string name;
  uint64_t extent_size = 0;
  uint64_t region_size = 0;
  std::vector<PvConfig> pvs;
  std::vector<LvConfig> lvs;
  // False when the PVs were found on paths the user gave and the metadata's
  // paths are hints from another machine (LVM2's `device`): VgStore then
  // opens only `pvs`, and a PV the metadata lists but `pvs` lacks is missing.
  bool follow_metadata_paths = true;
};

// What of the file a caller needs. A mount and the offline readers take
// the VG's LVs from the PVs' metadata, not from the file; the `lvs:` list,
// nearly all of a big config (a million extents: a second of YAML parsing
// per read), is then skipped where it can be cut out of the text: a block
// under a top-level `lvs:` key (see without_top_level_block). Whatever the
// cut text fails on is read again whole, so an error is always the whole
// file's, and a config that loads whole gives the same VG and PVs either way
// (fuzz/config_fuzz.cc checks it). kVgAndPvs returns no LVs either way.
enum class ConfigParts { kAll, kVgAndPvs };

Result<VgConfig> load_config(const std::string& path, ConfigParts parts = ConfigParts::kAll);

// `text` with the block of the top-level key `key` (block style: the line
// `key:` at column 0 and the lines after it that are indented, blank,
// comments or column-0 sequence entries `- `; every such block, if the key
// is repeated) blanked, so every other line keeps its number and column.
// None when there is no such line, or when the text has what would make
// the cut change another part (a quoted scalar or a flow collection going
// on over lines, a backslash escape, an anchor in the block): the caller
// then parses it whole.
std::optional<std::string> without_top_level_block(const std::string& text, std::string_view key);

}  // namespace vgfs
