// Running migration jobs as hidden LVs of an LVM2 VG, both ways
// (include/vgfs/lvm2_move.h, docs/lvm2.md "Moves").
#include "vgfs/lvm2_move.h"

#include <boost/uuid/name_generator_sha1.hpp>
#include <boost/uuid/uuid.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>

#include "vgfs/job_record.h"
#include "vgfs/lvm2_config.h"
#include "vgfs/lvm2_label.h"
#include "vgfs/units.h"

namespace vgfs::lvm2 {

namespace {

constexpr std::string_view kLvTag = "vgfs.lv=";
constexpr std::string_view kLeTag = "vgfs.le=";
constexpr std::string_view kSourceTag = "vgfs.source=";
constexpr std::string_view kLegTag = "vgfs.leg=";  // only on leg moves: texts without it are linear moves
constexpr std::string_view kRecordTag = "vgfs.record";

// Namespace of the derived LV ids: a fixed, arbitrary UUID ("vgfs move lvs").
constexpr boost::uuids::uuid kMoveIdNamespace = {{0x76, 0x67, 0x66, 0x73, 0x2d, 0x6d, 0x6f, 0x76, 0x8e, 0x51,
                                                  0x3a, 0x0c, 0x71, 0x2b, 0x94, 0xd6}};

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quoted(v[i]);
  return out + "]";
}

// 32 characters of LVM2's id alphabet, a function of the VG's id and the
// LV's name: every commit of a running job writes the same id.
std::string derived_id(const VgMetadata& md, std::string_view lv_name) {
  static constexpr std::string_view kChars = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#";
  std::string vg_id;
  for (const auto& [k, v] : md.kept)
    if (k == "id") vg_id = v;
  boost::uuids::name_generator_sha1 gen(kMoveIdNamespace);
  std::string out;
  for (int half = 0; half < 2; ++half) {
    const std::string seed = fmt::format("{}/{}/{}", vg_id, lv_name, half);
    const boost::uuids::uuid u = gen(seed.data(), seed.size());
    for (uint8_t b : u) out += kChars[b % kChars.size()];
  }
  return out;
}

LvInfo hidden_lv(const VgMetadata& md, std::string name, uint32_t pv, uint64_t pe, uint64_t count,
                 const std::vector<std::string>& tags) {
  LvInfo lv;
  lv.hidden = true;
  lv.map.append(pv, pe, count);
  lv.kept = {{"id", quoted(format_lvm2_uuid(derived_id(md, name)))},
             {"status", R"(["READ", "WRITE"])"},
             {"flags", "[]"},
             {"tags", quoted_list(tags)}};
  lv.name = std::move(name);
  return lv;
}

// The job id in a name "vgfs_move<ID>" (record: "vgfs_move<ID>_rec"), or nothing.
std::optional<uint64_t> job_of(std::string_view name, bool record) {
  if (name.substr(0, kMoveLvPrefix.size()) != kMoveLvPrefix) return std::nullopt;
  name.remove_prefix(kMoveLvPrefix.size());
  if (record) {
    if (name.size() < kRecordLvSuffix.size() || name.substr(name.size() - kRecordLvSuffix.size()) != kRecordLvSuffix)
      return std::nullopt;
    name.remove_suffix(kRecordLvSuffix.size());
  }
  uint64_t id = 0;
  if (name.empty() || name[0] == '0') return std::nullopt;  // one spelling per id
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), id);
  if (ec != std::errc() || p != name.data() + name.size() || id == 0 || id >= kMaxJobId) return std::nullopt;
  return id;
}

std::optional<uint64_t> number(std::string_view s) {
  uint64_t v = 0;
  if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// The strings of a kept list key (`tags`), or nothing when it is not one.
std::optional<std::vector<std::string>> kept_strings(const LvInfo& lv, std::string_view key) {
  for (const auto& [k, v] : lv.kept) {
    if (k != key) continue;
    Result<ConfigTree> t = parse_config("k = " + v, "tags");
    if (!t.ok() || t->top.size() != 1 || t->top[0].section) return std::nullopt;
    std::vector<std::string> out;
    for (const ConfigValue& c : t->top[0].values) {
      if (c.kind != ConfigValue::Kind::kString) return std::nullopt;
      out.push_back(c.text);
    }
    return out;
  }
  return std::nullopt;
}

// The one linear run of a hidden LV, or null.
const MapRun* only_run(const LvInfo& lv) {
  if (lv.map.runs().size() != 1 || lv.map.runs()[0].striped()) return nullptr;
  return &lv.map.runs()[0];
}

// The job a pair of hidden LVs describes, checked against `md`'s LVs as
// validate() will check it, or nothing.
std::optional<JobInfo> job_from(const VgMetadata& md, uint64_t id, const LvInfo& move, const LvInfo& rec) {
  const MapRun* dst = only_run(move);
  const MapRun* place = only_run(rec);
  std::optional<std::vector<std::string>> tags = kept_strings(move, "tags");
  std::optional<std::vector<std::string>> rec_tags = kept_strings(rec, "tags");
  if (!dst || !place || !tags || !rec_tags ||
      std::find(rec_tags->begin(), rec_tags->end(), kRecordTag) == rec_tags->end())
    return std::nullopt;
  JobInfo j;
  j.id = id;
  std::optional<uint64_t> le, leg;
  std::string source;
  bool bad_leg = false;
  for (const std::string& t : *tags) {
    if (t.starts_with(kLvTag)) j.lv = t.substr(kLvTag.size());
    else if (t.starts_with(kLeTag)) le = number(std::string_view(t).substr(kLeTag.size()));
    else if (t.starts_with(kSourceTag)) source = t.substr(kSourceTag.size());
    else if (t.starts_with(kLegTag)) bad_leg = bad_leg || leg || !(leg = number(std::string_view(t).substr(kLegTag.size())));
  }
  const size_t colon = source.rfind(':');
  if (j.lv.empty() || !le || colon == std::string::npos || bad_leg || (leg && *leg >= kMaxStripes))
    return std::nullopt;
  if (leg) j.leg = static_cast<uint32_t>(*leg);
  const int src = md.find_pv(std::string_view(source).substr(0, colon));
  std::optional<uint64_t> src_pe = number(std::string_view(source).substr(colon + 1));
  if (src < 0 || !src_pe) return std::nullopt;
  j.le = *le;
  j.count = dst->count;
  j.src_pv = static_cast<uint32_t>(src);
  j.src_pe = *src_pe;
  j.dst_pv = dst->pv;
  j.dst_pe = dst->pe;
  j.state = JobState::kRunning;
  // The LEs must still be where the job copies them from: a record of
  // another source would resume a copy of the wrong data.
  const int lv = md.find_lv(j.lv);
  if (lv < 0 || job_of(j.lv, false) || job_of(j.lv, true) || j.le > UINT64_MAX - j.count) return std::nullopt;
  if (!md.check_job_source(j).ok()) return std::nullopt;  // as validate() will check it
  if (j.count > UINT64_MAX / md.extent_size) return std::nullopt;
  j.record_size = job_record_size(div_ceil(j.count * md.extent_size, md.region_size));
  j.record_offset = 0;
  j.record_pv = place->pv;
  j.record_pe = place->pe;
  if (j.record_extents(md.extent_size) > place->count) return std::nullopt;  // the record does not fit
  return j;
}

}  // namespace

std::string move_lv_name(uint64_t job) { return fmt::format("{}{}", kMoveLvPrefix, job); }
std::string record_lv_name(uint64_t job) { return fmt::format("{}{}{}", kMoveLvPrefix, job, kRecordLvSuffix); }

std::vector<LvInfo> job_lvs(const VgMetadata& md) {
  std::vector<LvInfo> out;
  for (const JobInfo& j : md.jobs) {
    if (!j.running() || !j.record_pv) continue;
    std::vector<std::string> tags = {std::string(kLvTag) + j.lv, fmt::format("{}{}", kLeTag, j.le),
                                     fmt::format("{}{}:{}", kSourceTag, md.pvs[j.src_pv].name, j.src_pe)};
    if (j.leg) tags.push_back(fmt::format("{}{}", kLegTag, *j.leg));
    out.push_back(hidden_lv(md, move_lv_name(j.id), j.dst_pv, j.dst_pe, j.count, tags));
    out.push_back(hidden_lv(md, record_lv_name(j.id), *j.record_pv, j.record_pe, j.record_extents(md.extent_size),
                            {std::string(kRecordTag)}));
  }
  return out;
}

void jobs_from_lvs(VgMetadata* md) {
  std::map<uint64_t, size_t> moves, records;
  for (size_t i = 0; i < md->lvs.size(); ++i) {
    const LvInfo& lv = md->lvs[i];
    if (!lv.hidden || !lv.unsupported.empty()) continue;
    if (std::optional<uint64_t> id = job_of(lv.name, false)) moves[*id] = i;
    else if (std::optional<uint64_t> rid = job_of(lv.name, true)) records[*rid] = i;
  }
  struct Found {
    JobInfo job;
    size_t move, rec;
    bool bad = false;
  };
  std::vector<Found> found;
  for (const auto& [id, mi] : moves) {
    auto ri = records.find(id);
    if (ri == records.end()) continue;
    if (std::optional<JobInfo> j = job_from(*md, id, md->lvs[mi], md->lvs[ri->second]))
      found.push_back(Found{std::move(*j), mi, ri->second});
  }
  // Two jobs on one LE would both switch it: neither is trusted.
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    return a.job.lv != b.job.lv ? a.job.lv < b.job.lv : a.job.le < b.job.le;
  });
  for (size_t i = 1, reach = 0; i < found.size(); ++i) {
    const Found& prev = found[reach];
    if (prev.job.lv != found[i].job.lv) {
      reach = i;
      continue;
    }
    if (found[i].job.le < prev.job.le + prev.job.count) found[i].bad = found[reach].bad = true;
    if (found[i].job.le + found[i].job.count > prev.job.le + prev.job.count) reach = i;
  }
  std::erase_if(found, [](const Found& f) { return f.bad; });
  std::set<size_t> taken;
  for (const Found& f : found) {
    taken.insert(f.move);
    taken.insert(f.rec);
  }
  if (found.empty()) return;
  std::vector<LvInfo> kept;
  for (size_t i = 0; i < md->lvs.size(); ++i)
    if (!taken.count(i)) kept.push_back(std::move(md->lvs[i]));
  md->lvs = std::move(kept);
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.job.id < b.job.id; });
  for (Found& f : found) {  // a job names its LV by name: the LV indices may move
    md->next_job_id = std::max(md->next_job_id, f.job.id + 1);
    md->jobs.push_back(std::move(f.job));
  }
}

}  // namespace vgfs::lvm2
