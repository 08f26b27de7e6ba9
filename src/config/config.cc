// Parsing of the VG configuration file (docs/config.md; include/vgfs/config.h).
#include "vgfs/config.h"
#include "vgfs/owner_id.h"

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <fmt/format.h>
#include <set>
#include <yaml-cpp/yaml.h>

#include "vgfs/metadata.h"
#include "vgfs/nbd_uri.h"
#include "vgfs/units.h"

namespace vgfs {

std::string ConfigPlace::str() const { return fmt::format("{}:{}:{}", file, line, column); }

namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  ConfigPlace place(const YAML::Node& n) const {
    return ConfigPlace{file_, n.Mark().line + 1, n.Mark().column + 1};
  }
  Status error(const YAML::Node& n, const std::string& what) const {
    return Status::Error(EINVAL, fmt::format("{}: {}", place(n).str(), what));
  }
  // A mapping with only `known` keys.
  Status check_map(const YAML::Node& n, std::string_view where, std::initializer_list<std::string_view> known) const {
    if (!n.IsMap()) return error(n, fmt::format("{} must be a mapping", where));
    for (const auto& kv : n) {
      std::string key = kv.first.Scalar();
      if (std::find(known.begin(), known.end(), key) == known.end()) {
        std::string list;
        for (std::string_view k : known) list += (list.empty() ? "" : ", ") + std::string(k);
        return error(kv.first, fmt::format("unknown key \"{}\" in {} (known: {})", key, where, list));
      }
    }
    return Status::Ok();
  }
  Result<std::string> scalar(const YAML::Node& parent, const char* key, std::string_view where) const {
    YAML::Node v = parent[key];
    if (!v) return error(parent, fmt::format("{} has no \"{}\"", where, key));
    if (!v.IsScalar()) return error(v, fmt::format("{}.{} must be a single value", where, key));
    return v.Scalar();
  }
  Result<uint64_t> size(const YAML::Node& parent, const char* key, std::string_view where) const {
    Result<std::string> s = scalar(parent, key, where);
    if (!s.ok()) return s.status();
    Result<uint64_t> v = parse_size(*s);
    if (!v.ok()) return error(parent[key], fmt::format("{}.{}: {}", where, key, v.status().message()));
    return v;
  }
  Result<std::string> name(const YAML::Node& parent, std::string_view what, std::string_view where) const {
    Result<std::string> s = scalar(parent, "name", where);
    if (!s.ok()) return s.status();
    Status st = check_name(what, *s);
    if (!st.ok()) return error(parent["name"], fmt::format("{}: {}", where, st.message()));
    return s;
  }
  Result<IndexRange> range(const YAML::Node& parent, const char* key, std::string_view where) const {
    Result<std::string> s = scalar(parent, key, where);
    if (!s.ok()) return s.status();
    Result<IndexRange> r = parse_range(*s);
    if (!r.ok()) return error(parent[key], fmt::format("{}.{}: {}", where, key, r.status().message()));
    return r;
  }

 private:
  std::string file_;
};

Result<VgConfig> parse(const YAML::Node& root, const std::string& path) {
  Reader in(path);
  VgConfig cfg;
  cfg.path = path;
  std::filesystem::path base = std::filesystem::path(path).parent_path();

  VGFS_RETURN_IF_ERROR(in.check_map(root, "the config", {"vg", "pvs", "lvs"}));
  YAML::Node vg = root["vg"];
  if (!vg) return in.error(root, "the config has no \"vg\" section");
  VGFS_RETURN_IF_ERROR(in.check_map(vg, "vg", {"name", "extent_size", "region_size"}));
  VGFS_ASSIGN_OR_RETURN(cfg.name, in.name(vg, "VG", "vg"));
  cfg.extent_size = kDefaultExtentSize;
  cfg.region_size = kDefaultRegionSize;
  if (vg["extent_size"]) {
    VGFS_ASSIGN_OR_RETURN(cfg.extent_size, in.size(vg, "extent_size", "vg"));
    if (!is_power_of_two(cfg.extent_size) || cfg.extent_size < kMinExtentSize || cfg.extent_size > kMaxExtentSize)
      return in.error(vg["extent_size"], fmt::format("vg.extent_size {} must be a power of two from 64KiB to 1GiB",
                                                     vg["extent_size"].Scalar()));
  }
  // The default region size shrinks with small extents: it must divide them.
  cfg.region_size = std::min(kDefaultRegionSize, cfg.extent_size);
  if (vg["region_size"]) {
    VGFS_ASSIGN_OR_RETURN(cfg.region_size, in.size(vg, "region_size", "vg"));
    if (!is_power_of_two(cfg.region_size) || cfg.region_size < 4 * KiB || cfg.extent_size % cfg.region_size)
      return in.error(vg["region_size"], fmt::format("vg.region_size {} must be a power of two of at least 4KiB "
                                                     "that divides the extent size",
                                                     vg["region_size"].Scalar()));
  }

  YAML::Node pvs = root["pvs"];
  if (!pvs || !pvs.IsSequence() || pvs.size() == 0) return in.error(pvs ? pvs : root, "\"pvs\" must be a non-empty list");
  std::set<std::string> pv_names, pv_paths;
  for (size_t i = 0; i < pvs.size(); ++i) {
    const YAML::Node& n = pvs[i];
    std::string where = fmt::format("pvs[{}]", i);
    VGFS_RETURN_IF_ERROR(in.check_map(n, where, {"name", "path", "size"}));
    PvConfig pv;
    pv.place = in.place(n);
    VGFS_ASSIGN_OR_RETURN(pv.name, in.name(n, "PV", where));
    std::string raw;
    VGFS_ASSIGN_OR_RETURN(raw, in.scalar(n, "path", where));
    if (raw.empty()) return in.error(n["path"], fmt::format("{}.path is empty", where));
    // An NBD URI names an export, not a file: kept as written (docs/nbd.md).
    pv.path = is_nbd_uri(raw) ? raw : std::filesystem::absolute(base / raw).lexically_normal().string();
    if (n["size"]) {
      uint64_t size = 0;
      VGFS_ASSIGN_OR_RETURN(size, in.size(n, "size", where));
      if (size == 0) return in.error(n["size"], fmt::format("{}.size must not be 0", where));
      pv.size = size;
    }
    if (!pv_names.insert(pv.name).second) return in.error(n["name"], fmt::format("PV name {} is used twice", pv.name));
    if (!pv_paths.insert(pv.path).second) return in.error(n["path"], fmt::format("PV path {} is used twice", pv.path));
    cfg.pvs.push_back(std::move(pv));
  }

  YAML::Node lvs = root["lvs"];
  if (lvs && !lvs.IsNull() && !lvs.IsSequence()) return in.error(lvs, "\"lvs\" must be a list");
  std::set<std::string> lv_names;
  for (size_t i = 0; lvs && lvs.IsSequence() && i < lvs.size(); ++i) {
    const YAML::Node& n = lvs[i];
    std::string where = fmt::format("lvs[{}]", i);
    VGFS_RETURN_IF_ERROR(in.check_map(n, where, {"name", "size", "mode", "uid", "gid", "extents"}));
    LvConfig lv;
    lv.place = in.place(n);
    VGFS_ASSIGN_OR_RETURN(lv.name, in.name(n, "LV", where));
    if (!lv_names.insert(lv.name).second) return in.error(n["name"], fmt::format("LV name {} is used twice", lv.name));
    if (n["mode"]) {
      std::string mode;
      VGFS_ASSIGN_OR_RETURN(mode, in.scalar(n, "mode", where));
      auto [p, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), lv.mode, 8);
      if (mode.empty() || ec != std::errc() || p != mode.data() + mode.size() || lv.mode > 0777)
        return in.error(n["mode"], fmt::format("{}.mode \"{}\" is not an octal permission mode like \"0640\"", where, mode));
    }
    for (const char* key : {"uid", "gid"}) {  // a number, or a name looked up here (include/vgfs/owner_id.h)
      if (!n[key]) continue;
      std::string id;
      VGFS_ASSIGN_OR_RETURN(id, in.scalar(n, key, where));
      Result<uint32_t> resolved = resolve_owner_id(id, key[0] == 'u' ? OwnerKind::kUser : OwnerKind::kGroup);
      if (!resolved.ok()) return in.error(n[key], fmt::format("{}.{}: {}", where, key, resolved.status().message()));
      const uint32_t value = *resolved;
      (key[0] == 'u' ? lv.uid : lv.gid) = value;
    }
    if (n["size"] && n["extents"])
      return in.error(n, fmt::format("LV {} has both \"size\" and \"extents\"; give one", lv.name));
    if (n["size"]) {
      uint64_t size = 0;
      VGFS_ASSIGN_OR_RETURN(size, in.size(n, "size", where));
      if (size == 0) return in.error(n["size"], fmt::format("LV {}: size must not be 0", lv.name));
      lv.size = size;
    } else if (n["extents"]) {
      const YAML::Node& runs = n["extents"];
      if (!runs.IsSequence() || runs.size() == 0)
        return in.error(runs, fmt::format("LV {}: \"extents\" must be a non-empty list", lv.name));
      for (size_t j = 0; j < runs.size(); ++j) {
        const YAML::Node& r = runs[j];
        std::string rwhere = fmt::format("{}.extents[{}]", where, j);
        VGFS_RETURN_IF_ERROR(in.check_map(r, rwhere, {"le", "pv", "pe"}));
        ExplicitRun run;
        run.place = in.place(r);
        IndexRange le, pe;
        VGFS_ASSIGN_OR_RETURN(le, in.range(r, "le", rwhere));
        VGFS_ASSIGN_OR_RETURN(pe, in.range(r, "pe", rwhere));
        VGFS_ASSIGN_OR_RETURN(run.pv, in.scalar(r, "pv", rwhere));
        if (le.count != pe.count)
          return in.error(r, fmt::format("LV {}: LE {} and PE {} have different lengths", lv.name,
                                         format_range(le.first, le.count), format_range(pe.first, pe.count)));
        run.le = le.first;
        run.count = le.count;
        run.pe = pe.first;
        lv.extents.push_back(std::move(run));
      }
    } else {
      return in.error(n, fmt::format("LV {} needs \"size\" or \"extents\"", lv.name));
    }
    cfg.lvs.push_back(std::move(lv));
  }
  return cfg;
}

}  // namespace

std::optional<std::string> without_top_level_block(const std::string& text, std::string_view key) {
  // The line that opens the block: `key`, optional blanks, `:`, then a blank
  // or the end of the line.
  auto opens = [&](size_t at, size_t end) {
    if (text.compare(at, key.size(), key) != 0) return false;
    size_t i = at + key.size();
    while (i < end && (text[i] == ' ' || text[i] == '\t')) ++i;
    if (i >= end || text[i] != ':') return false;
    ++i;
    return i >= end || text[i] == ' ' || text[i] == '\t' || text[i] == '\r';
  };
  // A line that belongs to the block above it.
  auto continues = [&](size_t at, size_t end) {
    if (at == end) return true;
    const char c = text[at];
    if (c == ' ' || c == '\t' || c == '\r' || c == '#') return true;
    return c == '-' && (at + 1 == end || text[at + 1] == ' ' || text[at + 1] == '\t' || text[at + 1] == '\r');
  };
  // A column-0 line is a top-level key only outside a quoted scalar and a
  // flow collection that go on over lines, and blanking a block changes
  // nothing else only if no anchor in it is used (or redefined) outside.
  // Without a YAML parser that is not sure in general, so the cut is made
  // only where it is: quotes that close on their line, no backslash escape,
  // [ ] { } balanced at every column-0 line, no `&` in the block. Anything
  // else is parsed whole.
  int depth = 0;  // open [ and { outside quotes and comments
  auto scan = [&](size_t at, size_t end) {
    bool in_single = false, in_double = false;
    for (size_t i = at; i < end; ++i) {
      const char c = text[i];
      if (c == '\\') return false;
      if (in_double) {
        in_double = c != '"';
      } else if (in_single) {
        in_single = c != '\'';
      } else if (c == '"') {
        in_double = true;
      } else if (c == '\'') {
        in_single = true;
      } else if (c == '#' && (i == at || text[i - 1] == ' ' || text[i - 1] == '\t')) {
        break;
      } else if (c == '[' || c == '{') {
        ++depth;
      } else if (c == ']' || c == '}') {
        if (--depth < 0) return false;
      }
    }
    return !in_single && !in_double;
  };
  std::string out = text;
  bool cut = false, inside = false;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    if (inside && !continues(at, end)) {
      if (depth != 0) return std::nullopt;
      inside = false;
    }
    if (!inside && opens(at, end)) {  // every such block: YAML readers differ on repeated keys
      if (depth != 0) return std::nullopt;
      inside = cut = true;
    }
    if (!scan(at, end)) return std::nullopt;
    if (inside) {
      if (text.find('&', at) < end) return std::nullopt;
      out.replace(at, end - at, end - at, ' ');
    }
    at = end + 1;
  }
  if (!cut || depth != 0) return std::nullopt;
  return out;
}

Result<VgConfig> load_config(const std::string& path_in, ConfigParts parts) {
  std::string path = std::filesystem::absolute(path_in).lexically_normal().string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    return Status::Error(ENOENT, fmt::format("{}: config file not found", path_in));
  if (parts == ConfigParts::kVgAndPvs) {
    std::ifstream in(path, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (std::optional<std::string> cut = in ? without_top_level_block(text, "lvs") : std::nullopt) {
      try {
        Result<VgConfig> cfg = parse(YAML::Load(*cut), path);
        if (cfg.ok()) return cfg;
      } catch (const YAML::Exception&) {
      }
      // Read whole below: its error, not the cut text's.
    }
  }
  try {
    YAML::Node root = YAML::LoadFile(path);
    Result<VgConfig> cfg = parse(root, path);
    if (cfg.ok() && parts == ConfigParts::kVgAndPvs) cfg->lvs.clear();  // the same answer, cut or not
    return cfg;
  } catch (const YAML::BadFile&) {
    return Status::Error(ENOENT, fmt::format("{}: cannot read the config file", path_in));
  } catch (const YAML::Exception& e) {
    return Status::Error(EINVAL, fmt::format("{}:{}:{}: malformed YAML: {}", path, e.mark.line + 1,
                                             e.mark.column + 1, e.msg));
  }
}

}  // namespace vgfs
