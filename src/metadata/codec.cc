// The metadata text: YAML, as held in every PV's metadata slots and printed
// by `vgfs dump` (see encode_metadata/decode_metadata in
// include/vgfs/metadata.h and docs/format.md).
//
// Map runs are one scalar each in the FIG.3 form "LE-range PV PE-range", so
// a VG with many runs stays compact and quick to parse.
#include <charconv>
#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include "vgfs/metadata.h"

namespace vgfs {

std::string encode_metadata(const VgMetadata& md) {
  YAML::Emitter out;
  out << YAML::Comment("vgfs metadata; edit only through vgfs commands") << YAML::BeginMap;
  out << YAML::Key << "vg" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << md.name;
  out << YAML::Key << "uuid" << YAML::Value << format_uuid(md.uuid);
  out << YAML::Key << "extent_size" << YAML::Value << md.extent_size;
  out << YAML::Key << "region_size" << YAML::Value << md.region_size;
  out << YAML::Key << "seqno" << YAML::Value << md.seqno;
  out << YAML::EndMap;

  out << YAML::Key << "pvs" << YAML::Value << YAML::BeginSeq;
  for (const PvInfo& pv : md.pvs) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << pv.name;
    out << YAML::Key << "uuid" << YAML::Value << format_uuid(pv.uuid);
    out << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted << pv.path;
    out << YAML::Key << "pe_start" << YAML::Value << pv.pe_start;
    out << YAML::Key << "pe_count" << YAML::Value << pv.pe_count;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  out << YAML::Key << "lvs" << YAML::Value << YAML::BeginSeq;
  for (const LvInfo& lv : md.lvs) {
    out << YAML::BeginMap;
    out << YAML::Key << "name" << YAML::Value << lv.name;
    out << YAML::Key << "uuid" << YAML::Value << format_uuid(lv.uuid);
    out << YAML::Key << "mode" << YAML::Value << YAML::DoubleQuoted << fmt::format("{:04o}", lv.mode);
    out << YAML::Key << "extents" << YAML::Value << YAML::BeginSeq;
    for (const MapRun& r : lv.map.runs())
      out << fmt::format("{} {} {}", format_range(r.le, r.count), md.pvs[r.pv].name, format_range(r.pe, r.count));
    out << YAML::EndSeq << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

// Reads the fields of one YAML map, rejecting unknown keys.
class Fields {
 public:
  Fields(YAML::Node node, std::string where, std::string_view origin)
      : node_(node), where_(std::move(where)), origin_(origin) {}

  Status check(std::initializer_list<std::string_view> known) const {
    if (!node_.IsMap()) return error("is not a mapping");
    for (const auto& kv : node_) {
      std::string key = kv.first.as<std::string>();
      if (std::find(known.begin(), known.end(), key) == known.end())
        return error(fmt::format("unknown key \"{}\"", key));
    }
    return Status::Ok();
  }
  Result<std::string> str(const char* key) const {
    YAML::Node v = node_[key];
    if (!v || !v.IsScalar()) return error(fmt::format("missing key \"{}\"", key));
    return v.as<std::string>();
  }
  Result<uint64_t> u64(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    uint64_t value = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
    if (ec != std::errc() || p != s->data() + s->size())
      return error(fmt::format("\"{}\" is not a whole number: {}", key, *s));
    return value;
  }
  Result<Uuid> uuid(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    Result<Uuid> u = parse_uuid(*s);
    if (!u.ok()) return error(u.status().message());
    return u;
  }
  Status error(const std::string& what) const {
    return Status::Error(EINVAL, fmt::format("{}: metadata {} {}", origin_, where_, what));
  }

 private:
  YAML::Node node_;  // a handle (cheap to copy); callers pass temporaries
  std::string where_;
  std::string_view origin_;
};

#define VGFS_ASSIGN(lhs, expr)            \
  do {                                    \
    auto vgfs_r_ = (expr);                \
    if (!vgfs_r_.ok()) return vgfs_r_.status(); \
    lhs = std::move(*vgfs_r_);            \
  } while (0)

Status parse_run(std::string_view text, const VgMetadata& md, LvInfo* lv, const Fields& where) {
  size_t a = text.find(' '), b = text.rfind(' ');
  if (a == std::string_view::npos || a == b)
    return where.error(fmt::format("run \"{}\" is not \"LE-range PV PE-range\"", text));
  Result<IndexRange> le = parse_range(text.substr(0, a));
  Result<IndexRange> pe = parse_range(text.substr(b + 1));
  std::string_view pv_name = text.substr(a + 1, b - a - 1);
  if (!le.ok() || !pe.ok() || le->count != pe->count)
    return where.error(fmt::format("run \"{}\" is not \"LE-range PV PE-range\" with equal lengths", text));
  int pv = md.find_pv(pv_name);
  if (pv < 0) return where.error(fmt::format("run \"{}\" names unknown PV {}", text, pv_name));
  if (le->first != lv->map.extent_count())
    return where.error(fmt::format("run \"{}\" does not start at LE {}", text, lv->map.extent_count()));
  lv->map.append(static_cast<uint32_t>(pv), pe->first, pe->count);
  return Status::Ok();
}

Result<VgMetadata> decode(const YAML::Node& root, std::string_view origin) {
  VgMetadata md;
  Fields top(root, "top level", origin);
  VGFS_RETURN_IF_ERROR(top.check({"vg", "pvs", "lvs"}));
  Fields vg(root["vg"], "vg", origin);
  VGFS_RETURN_IF_ERROR(vg.check({"name", "uuid", "extent_size", "region_size", "seqno"}));
  VGFS_ASSIGN(md.name, vg.str("name"));
  VGFS_ASSIGN(md.uuid, vg.uuid("uuid"));
  VGFS_ASSIGN(md.extent_size, vg.u64("extent_size"));
  VGFS_ASSIGN(md.region_size, vg.u64("region_size"));
  VGFS_ASSIGN(md.seqno, vg.u64("seqno"));

  YAML::Node pvs = root["pvs"], lvs = root["lvs"];
  if (!pvs.IsSequence()) return top.error("has no \"pvs\" list");
  for (size_t i = 0; i < pvs.size(); ++i) {
    Fields f(pvs[i], fmt::format("pvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "path", "pe_start", "pe_count"}));
    PvInfo pv;
    VGFS_ASSIGN(pv.name, f.str("name"));
    VGFS_ASSIGN(pv.uuid, f.uuid("uuid"));
    VGFS_ASSIGN(pv.path, f.str("path"));
    VGFS_ASSIGN(pv.pe_start, f.u64("pe_start"));
    VGFS_ASSIGN(pv.pe_count, f.u64("pe_count"));
    md.pvs.push_back(std::move(pv));
  }
  if (lvs && !lvs.IsSequence()) return top.error("\"lvs\" is not a list");
  for (size_t i = 0; lvs && i < lvs.size(); ++i) {
    Fields f(lvs[i], fmt::format("lvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "mode", "extents"}));
    LvInfo lv;
    VGFS_ASSIGN(lv.name, f.str("name"));
    VGFS_ASSIGN(lv.uuid, f.uuid("uuid"));
    std::string mode;
    VGFS_ASSIGN(mode, f.str("mode"));
    auto [p, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), lv.mode, 8);
    if (ec != std::errc() || p != mode.data() + mode.size()) return f.error(fmt::format("bad mode \"{}\"", mode));
    YAML::Node runs = lvs[i]["extents"];
    if (!runs.IsSequence()) return f.error("has no \"extents\" list");
    for (const YAML::Node& run : runs) {
      if (!run.IsScalar()) return f.error("has an extent run that is not a string");
      VGFS_RETURN_IF_ERROR(parse_run(run.Scalar(), md, &lv, f));
    }
    md.lvs.push_back(std::move(lv));
  }
  VGFS_RETURN_IF_ERROR(md.validate().prefixed(std::string(origin)));
  return md;
}

}  // namespace

Result<VgMetadata> decode_metadata(std::string_view text, std::string_view origin) {
  try {
    return decode(YAML::Load(std::string(text)), origin);
  } catch (const YAML::Exception& e) {
    return Status::Error(EINVAL, fmt::format("{}: metadata is not valid YAML at line {}, column {}: {}", origin,
                                             e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace vgfs
