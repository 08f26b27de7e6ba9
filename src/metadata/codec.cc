// The metadata text: YAML, as held in every PV's metadata slots and printed
// by `vgfs dump` (see encode_metadata/decode_metadata in
// include/vgfs/metadata.h and docs/format.md).
//
// Each LV's map is one literal block with a run per line in the FIG.3 form
// "LE-range PV PE-range", so a VG with many runs stays compact and quick to
// parse.
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
  out << YAML::Key << "next_job_id" << YAML::Value << md.next_job_id;
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
    std::string runs;
    for (const MapRun& r : lv.map.runs())
      runs += fmt::format("{} {} {}\n", format_range(r.le, r.count), md.pvs[r.pv].name, format_range(r.pe, r.count));
    out << YAML::Key << "extents" << YAML::Value << YAML::Literal << runs;
    out << YAML::EndMap;
  }
  out << YAML::EndSeq;

  if (!md.jobs.empty()) {
    out << YAML::Key << "jobs" << YAML::Value << YAML::BeginSeq;
    for (const JobInfo& j : md.jobs) {
      out << YAML::Flow << YAML::BeginMap;
      out << YAML::Key << "id" << YAML::Value << j.id;
      out << YAML::Key << "lv" << YAML::Value << j.lv;
      out << YAML::Key << "le" << YAML::Value << format_range(j.le, j.count);
      out << YAML::Key << "source" << YAML::Value << fmt::format("{} {}", md.pvs[j.src_pv].name, j.src_pe);
      out << YAML::Key << "destination" << YAML::Value << fmt::format("{} {}", md.pvs[j.dst_pv].name, j.dst_pe);
      out << YAML::Key << "state" << YAML::Value << std::string(job_state_name(j.state));
      out << YAML::Key << "reason" << YAML::Value << YAML::DoubleQuoted << j.reason;
      out << YAML::Key << "record" << YAML::Value << fmt::format("{} {}", j.record_offset, j.record_size);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
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
  VGFS_RETURN_IF_ERROR(top.check({"vg", "pvs", "lvs", "jobs"}));
  Fields vg(root["vg"], "vg", origin);
  VGFS_RETURN_IF_ERROR(vg.check({"name", "uuid", "extent_size", "region_size", "seqno", "next_job_id"}));
  VGFS_ASSIGN_OR_RETURN(md.name, vg.str("name"));
  VGFS_ASSIGN_OR_RETURN(md.uuid, vg.uuid("uuid"));
  VGFS_ASSIGN_OR_RETURN(md.extent_size, vg.u64("extent_size"));
  VGFS_ASSIGN_OR_RETURN(md.region_size, vg.u64("region_size"));
  VGFS_ASSIGN_OR_RETURN(md.seqno, vg.u64("seqno"));
  if (root["vg"]["next_job_id"]) VGFS_ASSIGN_OR_RETURN(md.next_job_id, vg.u64("next_job_id"));

  YAML::Node pvs = root["pvs"], lvs = root["lvs"];
  if (!pvs.IsSequence()) return top.error("has no \"pvs\" list");
  for (size_t i = 0; i < pvs.size(); ++i) {
    Fields f(pvs[i], fmt::format("pvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "path", "pe_start", "pe_count"}));
    PvInfo pv;
    VGFS_ASSIGN_OR_RETURN(pv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(pv.uuid, f.uuid("uuid"));
    VGFS_ASSIGN_OR_RETURN(pv.path, f.str("path"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_start, f.u64("pe_start"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_count, f.u64("pe_count"));
    md.pvs.push_back(std::move(pv));
  }
  if (lvs && !lvs.IsSequence()) return top.error("\"lvs\" is not a list");
  for (size_t i = 0; lvs && i < lvs.size(); ++i) {
    Fields f(lvs[i], fmt::format("lvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "mode", "extents"}));
    LvInfo lv;
    VGFS_ASSIGN_OR_RETURN(lv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(lv.uuid, f.uuid("uuid"));
    std::string mode;
    VGFS_ASSIGN_OR_RETURN(mode, f.str("mode"));
    auto [p, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), lv.mode, 8);
    if (ec != std::errc() || p != mode.data() + mode.size()) return f.error(fmt::format("bad mode \"{}\"", mode));
    // One literal block, a run per line (a YAML node per run would cost far
    // more time and memory for maps of many runs).
    YAML::Node runs = lvs[i]["extents"];
    std::string joined;  // a list of run strings, as early builds wrote, reads too
    if (runs.IsSequence())
      for (const YAML::Node& run : runs) joined += (run.IsScalar() ? run.Scalar() : std::string("?")) + "\n";
    else if (runs.IsScalar())
      joined = runs.Scalar();
    else
      return f.error("has no \"extents\" block");
    std::string_view text = joined;
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string_view::npos) end = text.size();
      if (end > at) VGFS_RETURN_IF_ERROR(parse_run(text.substr(at, end - at), md, &lv, f));
      at = end + 1;
    }
    md.lvs.push_back(std::move(lv));
  }
  YAML::Node jobs = root["jobs"];
  if (jobs && !jobs.IsSequence()) return top.error("\"jobs\" is not a list");
  for (size_t i = 0; jobs && i < jobs.size(); ++i) {
    Fields f(jobs[i], fmt::format("jobs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"id", "lv", "le", "source", "destination", "state", "reason", "record"}));
    JobInfo j;
    VGFS_ASSIGN_OR_RETURN(j.id, f.u64("id"));
    VGFS_ASSIGN_OR_RETURN(j.lv, f.str("lv"));
    VGFS_ASSIGN_OR_RETURN(j.reason, f.str("reason"));
    std::string le, src, dst, state, record;
    VGFS_ASSIGN_OR_RETURN(le, f.str("le"));
    VGFS_ASSIGN_OR_RETURN(src, f.str("source"));
    VGFS_ASSIGN_OR_RETURN(dst, f.str("destination"));
    VGFS_ASSIGN_OR_RETURN(state, f.str("state"));
    VGFS_ASSIGN_OR_RETURN(record, f.str("record"));
    Result<IndexRange> range = parse_range(le);
    if (!range.ok()) return f.error(range.status().message());
    j.le = range->first;
    j.count = range->count;
    auto pv_pe = [&](const std::string& text, uint32_t* pv, uint64_t* pe) -> Status {
      size_t sp = text.find(' ');
      int index = sp == std::string::npos ? -1 : md.find_pv(std::string_view(text).substr(0, sp));
      Result<IndexRange> at = parse_range(sp == std::string::npos ? "" : text.substr(sp + 1));
      if (index < 0 || !at.ok() || at->count != 1) return f.error(fmt::format("bad \"PV PE\" value \"{}\"", text));
      *pv = static_cast<uint32_t>(index);
      *pe = at->first;
      return Status::Ok();
    };
    VGFS_RETURN_IF_ERROR(pv_pe(src, &j.src_pv, &j.src_pe));
    VGFS_RETURN_IF_ERROR(pv_pe(dst, &j.dst_pv, &j.dst_pe));
    bool known = false;
    for (JobState st : {JobState::kRunning, JobState::kCompleted, JobState::kAborted, JobState::kFailed})
      if (job_state_name(st) == state) {
        j.state = st;
        known = true;
      }
    if (!known) return f.error(fmt::format("unknown job state \"{}\"", state));
    size_t sp = record.find(' ');
    auto [p1, e1] = std::from_chars(record.data(), record.data() + (sp == std::string::npos ? 0 : sp), j.record_offset);
    auto [p2, e2] = std::from_chars(record.data() + sp + 1, record.data() + record.size(), j.record_size);
    if (sp == std::string::npos || e1 != std::errc() || e2 != std::errc() || p2 != record.data() + record.size())
      return f.error(fmt::format("bad record place \"{}\"", record));
    md.jobs.push_back(std::move(j));
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
