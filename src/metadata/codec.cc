// The metadata text: YAML, as held in every PV's metadata slots and printed
// by `vgfs dump` (see encode_metadata/decode_metadata in
// include/vgfs/metadata.h and docs/format.md).
//
// Each LV's map is one literal block with a run per line in the LE→PE form
// "LE-range PV PE-range" (docs/records.md), so a VG with many runs stays compact and quick to
// parse.
#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <set>
#include <sstream>
#include <unordered_map>

#include "vgfs/metadata.h"

namespace vgfs {

namespace {

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above
// U+10FFFF, no noncharacters. yaml-cpp's emitter replaces anything else with
// U+FFFD, so only this goes into the text as it is.
bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    // Noncharacters, which yaml-cpp's emitter also replaces.
    if ((cp & 0xFFFE) == 0xFFFE || (cp >= 0xFDD0 && cp <= 0xFDEF)) return false;
    i += n;
  }
  return true;
}

// A string the text must carry byte for byte (paths, reasons): double-quoted
// when it is UTF-8, otherwise `!!binary` base64, which YAML defines for
// exactly this and which decodes back to the same bytes.
void emit_bytes(YAML::Emitter& out, const std::string& s) {
  if (valid_utf8(s))
    out << YAML::DoubleQuoted << s;
  else
    out << YAML::Binary(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

}  // namespace

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
    out << YAML::Key << "path" << YAML::Value;
    emit_bytes(out, pv.path);
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
      out << YAML::Key << "reason" << YAML::Value;
      emit_bytes(out, j.reason);
      out << YAML::Key << "record" << YAML::Value << fmt::format("{} {}", j.record_offset, j.record_size);
      out << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

namespace {

// A parsed YAML node of the metadata text. The text is turned into this
// small tree by TreeBuilder (yaml-cpp's event parser) instead of
// YAML::Node: a YAML::Node costs about 450 bytes, and an alias would be
// materialised once per use. Here every node comes from text it consumed.
struct YNode {
  enum Kind : uint8_t { kNull, kScalar, kSequence, kMap };
  Kind kind = kNull;
  std::string value;          // scalars; `!!binary` ones already decoded
  std::vector<YNode> items;   // sequence items; maps: key, value, key, value...
  YAML::Mark mark;

  // The value of `key` in a map, or nullptr.
  const YNode* get(std::string_view key) const {
    if (kind != kMap) return nullptr;
    for (size_t i = 0; i + 1 < items.size(); i += 2)
      if (items[i].kind == kScalar && items[i].value == key) return &items[i + 1];
    return nullptr;
  }
  bool is_scalar() const { return kind == kScalar; }
};

// Builds a YNode tree from parser events. Refuses what vgfs never writes
// and what would let a small text cost a lot: anchors and aliases (an alias
// bomb expands kilobytes into gigabytes), more than one document, nesting
// deeper than kMaxDepth, and more nodes than the text can honestly hold
// (vgfs's own texts spend over 6 bytes per node).
class TreeBuilder : public YAML::EventHandler {
 public:
  static constexpr size_t kMaxDepth = 8;
  explicit TreeBuilder(size_t text_size) : max_nodes_(text_size / 4 + 64) {}

  YNode& root() { return root_; }
  bool has_root() const { return documents_ > 0; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0) throw YAML::ParserException(mark, "more than one YAML document");
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override { add(mark, anchor, YNode::kNull); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw YAML::ParserException(mark, "YAML aliases are not allowed in vgfs metadata");
  }
  void OnAnchor(const YAML::Mark& mark, const std::string&) override {
    throw YAML::ParserException(mark, "YAML anchors are not allowed in vgfs metadata");
  }
  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YNode& n = add(mark, anchor, YNode::kScalar);
    if (tag == "tag:yaml.org,2002:binary") {
      std::vector<unsigned char> bytes = YAML::DecodeBase64(value);
      bool blank = std::all_of(value.begin(), value.end(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); });
      if (bytes.empty() && !blank) throw YAML::ParserException(mark, "bad base64 in a !!binary value");
      n.value.assign(bytes.begin(), bytes.end());
    } else {
      n.value = value;
    }
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(add(mark, anchor, YNode::kSequence));
  }
  void OnSequenceEnd() override { stack_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(add(mark, anchor, YNode::kMap));
  }
  void OnMapEnd() override { stack_.pop_back(); }

 private:
  YNode& add(const YAML::Mark& mark, YAML::anchor_t anchor, YNode::Kind kind) {
    if (anchor != YAML::NullAnchor) throw YAML::ParserException(mark, "YAML anchors are not allowed in vgfs metadata");
    if (++nodes_ > max_nodes_)
      throw YAML::ParserException(mark, fmt::format("more YAML nodes than {} bytes of vgfs metadata can hold",
                                                    max_nodes_ * 4));
    // Only the innermost open node grows, so the pointers below it on the
    // stack stay valid.
    YNode& n = stack_.empty() ? root_ : stack_.back()->items.emplace_back();
    n.kind = kind;
    n.mark = mark;
    return n;
  }
  void open(YNode& n) {
    if (stack_.size() >= kMaxDepth) throw YAML::ParserException(n.mark, "YAML nesting is deeper than vgfs metadata");
    stack_.push_back(&n);
  }

  const size_t max_nodes_;
  size_t nodes_ = 0;
  int documents_ = 0;
  YNode root_;
  std::vector<YNode*> stack_;
};

// Reads the fields of one YAML map, rejecting unknown and repeated keys.
class Fields {
 public:
  Fields(const YNode* node, std::string where, std::string_view origin)
      : node_(node), where_(std::move(where)), origin_(origin) {}

  Status check(std::initializer_list<std::string_view> known) const {
    if (!node_ || node_->kind != YNode::kMap) return error("is not a mapping");
    std::set<std::string_view> seen;
    for (size_t i = 0; i + 1 < node_->items.size(); i += 2) {
      const YNode& key = node_->items[i];
      if (!key.is_scalar()) return error("has a key that is not a plain string");
      if (std::find(known.begin(), known.end(), key.value) == known.end())
        return error(fmt::format("unknown key \"{}\"", printable(key.value)));
      if (!seen.insert(key.value).second) return error(fmt::format("repeats key \"{}\"", key.value));
    }
    return Status::Ok();
  }
  bool has(const char* key) const { return node_ && node_->get(key); }
  const YNode* get(const char* key) const { return node_ ? node_->get(key) : nullptr; }
  Result<std::string> str(const char* key) const {
    const YNode* v = get(key);
    if (!v || !v->is_scalar()) return error(fmt::format("missing key \"{}\"", key));
    return v->value;
  }
  Result<uint64_t> u64(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    uint64_t value = 0;
    auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), value);
    if (ec != std::errc() || p != s->data() + s->size())
      return error(fmt::format("\"{}\" is not a whole number below 2^64: {}", key, printable(*s)));
    return value;
  }
  Result<Uuid> uuid(const char* key) const {
    Result<std::string> s = str(key);
    if (!s.ok()) return s.status();
    Result<Uuid> u = parse_uuid(*s);
    if (!u.ok()) return error(fmt::format("\"{}\" is not a UUID: {}", key, printable(*s)));
    return u;
  }
  Status error(const std::string& what) const {
    return Status::Error(EINVAL, fmt::format("{}: metadata {} {}", origin_, where_, what));
  }

 private:
  const YNode* node_;
  std::string where_;
  std::string_view origin_;
};

// "OFFSET SIZE", two whole numbers and one blank.
bool parse_two_u64(std::string_view text, uint64_t* a, uint64_t* b) {
  size_t sp = text.find(' ');
  if (sp == std::string_view::npos) return false;
  const char* end = text.data() + text.size();
  auto [p1, e1] = std::from_chars(text.data(), text.data() + sp, *a);
  auto [p2, e2] = std::from_chars(text.data() + sp + 1, end, *b);
  return e1 == std::errc() && p1 == text.data() + sp && sp > 0 && e2 == std::errc() && p2 == end &&
         sp + 1 < text.size();
}

Status parse_run(std::string_view text, const VgMetadata& md, const std::unordered_map<std::string_view, uint32_t>& pvs,
                 LvInfo* lv, const Fields& where) {
  size_t a = text.find(' '), b = text.rfind(' ');
  if (a == std::string_view::npos || a == b)
    return where.error(fmt::format("run \"{}\" is not \"LE-range PV PE-range\"", printable(text)));
  Result<IndexRange> le = parse_range(text.substr(0, a));
  Result<IndexRange> pe = parse_range(text.substr(b + 1));
  std::string_view pv_name = text.substr(a + 1, b - a - 1);
  if (!le.ok() || !pe.ok() || le->count != pe->count)
    return where.error(fmt::format("run \"{}\" is not \"LE-range PV PE-range\" with equal lengths", printable(text)));
  auto pv = pvs.find(pv_name);
  if (pv == pvs.end())
    return where.error(fmt::format("run \"{}\" names unknown PV {}", printable(text), printable(pv_name)));
  // Runs are contiguous and each fits a PV (validate() checks), so the LE
  // count of an LV can never wrap; refuse the one run that would.
  if (le->first != lv->map.extent_count() || le->count > UINT64_MAX - le->first)
    return where.error(fmt::format("run \"{}\" does not start at LE {}", printable(text), lv->map.extent_count()));
  (void)md;
  lv->map.append(pv->second, pe->first, pe->count);
  return Status::Ok();
}

Result<VgMetadata> decode(const YNode& root, std::string_view origin) {
  VgMetadata md;
  Fields top(&root, "top level", origin);
  VGFS_RETURN_IF_ERROR(top.check({"vg", "pvs", "lvs", "jobs"}));
  Fields vg(root.get("vg"), "vg", origin);
  VGFS_RETURN_IF_ERROR(vg.check({"name", "uuid", "extent_size", "region_size", "seqno", "next_job_id"}));
  VGFS_ASSIGN_OR_RETURN(md.name, vg.str("name"));
  VGFS_ASSIGN_OR_RETURN(md.uuid, vg.uuid("uuid"));
  VGFS_ASSIGN_OR_RETURN(md.extent_size, vg.u64("extent_size"));
  VGFS_ASSIGN_OR_RETURN(md.region_size, vg.u64("region_size"));
  VGFS_ASSIGN_OR_RETURN(md.seqno, vg.u64("seqno"));
  if (vg.has("next_job_id")) VGFS_ASSIGN_OR_RETURN(md.next_job_id, vg.u64("next_job_id"));

  const YNode* pvs = root.get("pvs");
  const YNode* lvs = root.get("lvs");
  if (!pvs || pvs->kind != YNode::kSequence) return top.error("has no \"pvs\" list");
  std::unordered_map<std::string_view, uint32_t> pv_index;  // find_pv is linear; runs may be many
  for (size_t i = 0; i < pvs->items.size(); ++i) {
    Fields f(&pvs->items[i], fmt::format("pvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "path", "pe_start", "pe_count"}));
    PvInfo pv;
    VGFS_ASSIGN_OR_RETURN(pv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(pv.uuid, f.uuid("uuid"));
    VGFS_ASSIGN_OR_RETURN(pv.path, f.str("path"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_start, f.u64("pe_start"));
    VGFS_ASSIGN_OR_RETURN(pv.pe_count, f.u64("pe_count"));
    md.pvs.push_back(std::move(pv));
  }
  if (md.pvs.size() > kMaxPvs) return top.error(fmt::format("lists {} PVs, more than {}", md.pvs.size(), kMaxPvs));
  for (size_t i = 0; i < md.pvs.size(); ++i)
    if (!pv_index.emplace(md.pvs[i].name, static_cast<uint32_t>(i)).second)
      return top.error(fmt::format("names PV {} twice", printable(md.pvs[i].name)));
  if (lvs && lvs->kind != YNode::kSequence && lvs->kind != YNode::kNull) return top.error("\"lvs\" is not a list");
  for (size_t i = 0; lvs && i < lvs->items.size(); ++i) {
    Fields f(&lvs->items[i], fmt::format("lvs[{}]", i), origin);
    VGFS_RETURN_IF_ERROR(f.check({"name", "uuid", "mode", "extents"}));
    LvInfo lv;
    VGFS_ASSIGN_OR_RETURN(lv.name, f.str("name"));
    VGFS_ASSIGN_OR_RETURN(lv.uuid, f.uuid("uuid"));
    std::string mode;
    VGFS_ASSIGN_OR_RETURN(mode, f.str("mode"));
    auto [p, ec] = std::from_chars(mode.data(), mode.data() + mode.size(), lv.mode, 8);
    if (ec != std::errc() || p != mode.data() + mode.size())
      return f.error(fmt::format("bad mode \"{}\"", printable(mode)));
    // One literal block, a run per line (a YAML node per run would cost far
    // more time and memory for maps of many runs).
    const YNode* runs = f.get("extents");
    std::string joined;  // a list of run strings, as early builds wrote, reads too
    if (runs && runs->kind == YNode::kSequence)
      for (const YNode& run : runs->items) joined += (run.is_scalar() ? run.value : std::string("?")) + "\n";
    else if (runs && runs->is_scalar())
      joined = runs->value;
    else
      return f.error("has no \"extents\" block");
    std::string_view text = joined;
    for (size_t at = 0; at < text.size();) {
      size_t end = text.find('\n', at);
      if (end == std::string_view::npos) end = text.size();
      if (end > at) VGFS_RETURN_IF_ERROR(parse_run(text.substr(at, end - at), md, pv_index, &lv, f));
      at = end + 1;
    }
    md.lvs.push_back(std::move(lv));
  }
  const YNode* jobs = root.get("jobs");
  if (jobs && jobs->kind != YNode::kSequence && jobs->kind != YNode::kNull) return top.error("\"jobs\" is not a list");
  for (size_t i = 0; jobs && i < jobs->items.size(); ++i) {
    Fields f(&jobs->items[i], fmt::format("jobs[{}]", i), origin);
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
    if (!range.ok()) return f.error(fmt::format("bad LE range \"{}\"", printable(le)));
    j.le = range->first;
    j.count = range->count;
    auto pv_pe = [&](const std::string& text, uint32_t* pv, uint64_t* pe) -> Status {
      size_t sp = text.find(' ');
      auto it = sp == std::string::npos ? pv_index.end() : pv_index.find(std::string_view(text).substr(0, sp));
      Result<IndexRange> at = parse_range(sp == std::string::npos ? "" : std::string_view(text).substr(sp + 1));
      if (it == pv_index.end() || !at.ok() || at->count != 1)
        return f.error(fmt::format("bad \"PV PE\" value \"{}\"", printable(text)));
      *pv = it->second;
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
    if (!known) return f.error(fmt::format("unknown job state \"{}\"", printable(state)));
    if (!parse_two_u64(record, &j.record_offset, &j.record_size))
      return f.error(fmt::format("bad record place \"{}\"", printable(record)));
    md.jobs.push_back(std::move(j));
  }
  VGFS_RETURN_IF_ERROR(md.validate().prefixed(std::string(origin)));
  return md;
}

}  // namespace

Result<VgMetadata> decode_metadata(std::string_view text, std::string_view origin) {
  if (text.size() > kMaxMetadataText)
    return Status::Error(EINVAL, fmt::format("{}: metadata text of {} bytes is larger than any slot ({})", origin,
                                             text.size(), format_size(kMaxMetadataText)));
  try {
    std::istringstream in{std::string(text)};
    YAML::Parser parser(in);
    TreeBuilder builder(text.size());
    while (parser.HandleNextDocument(builder)) {
    }
    if (!builder.has_root()) return Status::Error(EINVAL, fmt::format("{}: metadata text is empty", origin));
    return decode(builder.root(), origin);
  } catch (const YAML::Exception& e) {
    return Status::Error(EINVAL, fmt::format("{}: metadata is not valid YAML at line {}, column {}: {}", origin,
                                             e.mark.line + 1, e.mark.column + 1, e.msg));
  } catch (const std::bad_alloc&) {
    return Status::Error(ENOMEM, fmt::format("{}: out of memory decoding {} bytes of metadata", origin, text.size()));
  }
}

}  // namespace vgfs
